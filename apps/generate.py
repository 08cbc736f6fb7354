"""Continue a prompt, streaming the text to the terminal.

    python -m apps.generate "ROMEO. O, she doth teach the torches" --max-new-tokens 80
    python -m apps.generate --model http://localhost:8501/v1/models/lm "To be" --temperature 0
    >>> from apps.generate import generate
    >>> generate("To be, or not to be", max_new_tokens=20, temperature=0)
"""

import sys

from apps._common import base_parser, client_from_args, get_client, print_json, read_texts, run


def generate(prompts, model=None, max_new_tokens=64, temperature=0.8, top_k=40, top_p=1.0,
             repetition_penalty=1.0, seed=0, stream=None):
    """The continuation of a string (a string) or of each prompt of a list (a list).

    `stream(row, text)` receives pieces of text as they are generated.
    """
    from gpt_tf.tasks.generate import generate as generate_texts

    out = [c.text for c in generate_texts(get_client(model), prompts, max_new_tokens, temperature,
                                          top_k, top_p, repetition_penalty, seed, stream)]
    return out[0] if isinstance(prompts, str) else out


def main(argv=None):
    from gpt_tf.tasks.generate import generate as generate_texts
    from gpt_tf.validation import check_sampling, check_sampling_values, check_seed, check_texts

    parser = base_parser("generate", "Continue prompts with a gpt-tf model.")
    parser.add_argument("prompt", nargs="*", help="prompts (default: stdin lines)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--repetition-penalty", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stream", action="store_true", help="print when done")
    args = parser.parse_args(argv)
    prompts = read_texts(args.prompt, "prompt")
    # Bad settings fail before the model loads, and before the prompt is echoed.
    check_texts(prompts)
    check_sampling_values(args.temperature, args.top_k, args.top_p, args.repetition_penalty)
    check_seed(args.seed)
    client = client_from_args(args)
    check_sampling(args.max_new_tokens, client.max_new_tokens_limit, args.temperature,
                   args.top_k, args.top_p, args.repetition_penalty)
    stream = None
    if len(prompts) == 1 and not args.no_stream and not args.json:
        sys.stdout.write(prompts[0])
        sys.stdout.flush()

        def stream(row, text):
            sys.stdout.write(text)
            sys.stdout.flush()

    completions = generate_texts(client, prompts, args.max_new_tokens, args.temperature,
                                 args.top_k, args.top_p, args.repetition_penalty, args.seed,
                                 stream)
    if stream is not None:
        sys.stdout.write("\n")
    elif args.json:
        print_json([{"prompt": p, "completion": c.text, "num_tokens": c.num_tokens,
                     "stop_reason": c.stop_reason,
                     "prompt_tokens_truncated": c.prompt_tokens_truncated}
                    for p, c in zip(prompts, completions)])
    else:
        for number, (prompt, completion) in enumerate(zip(prompts, completions)):
            print(prompt + completion.text)
            if number < len(prompts) - 1:
                print("---")
    for completion in completions:
        if completion.prompt_tokens_truncated:
            print(f"note: the prompt was cut to its last tokens "
                  f"({completion.prompt_tokens_truncated} dropped) to fit the model's window",
                  file=sys.stderr)
            break
    return 0


if __name__ == "__main__":
    sys.exit(run("apps.generate", main))
