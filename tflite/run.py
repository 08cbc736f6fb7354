"""`python -m tflite.run MODEL_DIR --prompt TEXT`: generate on device, no TensorFlow.

Prints the prompt and its completion (streamed with `--stream`). Exit status
0 on success, 2 on a usage or model error (one line, no traceback).
"""

import argparse
import sys
import time

from tflite.runtime import ModelDirError, ModelInputError, TFLiteLM
from tflite.sampling import Sampler


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m tflite.run",
        description="Generate text with a gpt-tf .tflite export (numpy + LiteRT only).")
    parser.add_argument("model_dir", help="directory written by `gpt-tf export tflite`")
    parser.add_argument("--prompt", action="append", required=True,
                        help="prompt text (repeat for several)")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--stream", action="store_true", help="print text as it is generated")
    parser.add_argument("--timing", action="store_true", help="print speed to stderr")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the sha256 check of the model files")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        sampler = Sampler(args.temperature, args.top_k, args.top_p, args.repetition_penalty)
        lm = TFLiteLM(args.model_dir, num_threads=args.threads, verify=not args.no_verify)
        for number, prompt in enumerate(args.prompt):
            started = time.perf_counter()
            if args.stream:
                sys.stdout.write(prompt)
                sys.stdout.flush()

                def on_text(piece):
                    sys.stdout.write(piece)
                    sys.stdout.flush()

                text = lm.generate_text(prompt, args.max_new_tokens, sampler, args.seed, on_text)
                sys.stdout.write("\n")
            else:
                text = lm.generate_text(prompt, args.max_new_tokens, sampler, args.seed)
                print(prompt + text)
            if args.timing:
                elapsed = time.perf_counter() - started
                tokens = len(lm.encode(text))
                print(f"[{tokens} tokens in {elapsed:.3f}s, {lm.quantization}]", file=sys.stderr)
            if len(args.prompt) > 1 and number < len(args.prompt) - 1:
                print("---")
    except (ModelDirError, ModelInputError, ValueError) as error:
        print(f"tflite.run: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
