"""`gpt-tf` command line: parses arguments, calls one library function, prints.

User errors (`UserError`) print one line `gpt-tf: error: ...` and exit 2,
never a traceback. TensorFlow's own log lines are hidden unless `gpt-tf --verbose`
or `GPT_TF_LOG` asks for them (`gpt_tf.logs`).
"""

import argparse
import importlib
import json
import math
import os
import sys
import time

from gpt_tf import logs
from gpt_tf.errors import UserError
from gpt_tf.training_cli import add_run_arguments, run_prepared


def _add_model_options(parser):
    parser.add_argument("--preset", default="mini",
                        help="config preset: nano, mini, small, gpt2-124m (default mini)")
    parser.add_argument("--config", help="JSON config file (instead of a preset)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="gpt-tf",
        description="Train, evaluate and run GPT models on Keras 3 / TensorFlow.",
        epilog="Config overrides: add --model.KEY=VALUE, --data.KEY=VALUE or --train.KEY=VALUE "
               "to train (e.g. --model.num_layers=6 --train.steps=500). TensorFlow's own "
               f"log lines are hidden; {logs.ENV_VAR}=warning|info|debug or --verbose show them.")
    # Read by `logs.configure` before parsing (TensorFlow may load while the parser is built);
    # declared here for --help. Before the command: `gpt-tf serve --verbose` logs requests.
    parser.add_argument(logs.VERBOSE_FLAG, action="store_true", help=logs.VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    tokenizer = commands.add_parser("tokenizer", help="train a SentencePiece tokenizer")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", required=True)
    tok_train = tokenizer_commands.add_parser("train", help="train on text files")
    tok_train.add_argument("inputs", nargs="+", help="text files, directories or globs")
    tok_train.add_argument("--output", required=True, help="directory for tokenizer.model")
    tok_train.add_argument("--vocab-size", type=int, default=8192)
    tok_train.add_argument("--model-type", default="bpe", choices=["bpe", "unigram"])
    tok_train.set_defaults(func=cmd_tokenizer_train)

    train = commands.add_parser(
        "train", help="pretrain a GPT (creates or resumes a run directory)",
        description="Pretrain a GPT. A new --run-dir needs --data; an existing one resumes "
                    "at its last checkpoint (train.* overrides may change, e.g. train.steps).")
    train.add_argument("--run-dir", required=True, help="run directory (created or resumed)")
    train.add_argument("--data", nargs="+", help="training text: files, directories or globs")
    train.add_argument("--dataset", help="a prepared data set name instead of --data (e.g. lm-en)")
    train.add_argument("--validation-data", nargs="+",
                       help="held-out text (default: hold out whole documents)")
    train.add_argument("--tokenizer", help="reuse this tokenizer.model instead of training one")
    _add_model_options(train)
    add_run_arguments(train)
    train.set_defaults(func=cmd_train)

    generate = commands.add_parser("generate", help="continue a prompt with a trained run")
    generate.add_argument("run_dir")
    generate.add_argument("--prompt", action="append", required=True,
                          help="prompt text (repeat for a batch)")
    generate.add_argument("--max-new-tokens", type=int, default=100)
    generate.add_argument("--temperature", type=float, default=0.8,
                          help="0 is greedy (default 0.8)")
    generate.add_argument("--top-k", type=int, default=40)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--repetition-penalty", type=float, default=1.0)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"])
    generate.add_argument("--stream", action="store_true", help="print tokens as they come")
    generate.add_argument("--no-xla", action="store_true", help="do not compile with XLA")
    generate.set_defaults(func=cmd_generate)

    evaluate = commands.add_parser(
        "evaluate", help="validation loss, perplexity and bits per byte of a run; "
                         "with --task, the task report against baselines")
    evaluate.add_argument("run_dir", nargs="?", help="the run (optional with --task --model)")
    evaluate.add_argument("--data", nargs="+",
                          help="held-out text (default: the run's validation split)")
    evaluate.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"])
    evaluate.add_argument("--max-batches", type=int, default=0, help="0: all")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    from gpt_tf.evaluation.cli import add_task_arguments

    add_task_arguments(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    for module_name in _PLUGIN_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not (module_name + ".").startswith(error.name + "."):
                raise
            continue
        module.register(commands)
    return parser


# Subcommand groups living next to their library code; each module has
# `register(subparsers)` and handlers taking `args` (with `args.overrides`).
_PLUGIN_COMMANDS = ("gpt_tf.datasets.cli", "gpt_tf.export.cli", "gpt_tf.interop.cli",
                    "gpt_tf.serving.cli", "gpt_tf.tasks.cli")


def _split_overrides(argv):
    """Separates `--section.key=value` overrides from regular arguments."""
    regular, overrides = [], []
    for arg in argv:
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        if "." in name and name.split(".", 1)[0] in ("model", "data", "train"):
            if "=" not in arg:
                raise UserError(f"override '{arg}' needs a value: {arg}=VALUE")
            overrides.append(arg[2:])
        else:
            regular.append(arg)
    return regular, overrides


def _load_config(args, overrides):
    from gpt_tf.config import RunConfig, apply_overrides, preset

    if args.config:
        if not os.path.isfile(args.config):
            raise UserError(f"config file '{args.config}' not found")
        with open(args.config) as handle:
            config = RunConfig.from_json(handle.read(), source=args.config)
    else:
        config = preset(args.preset)
    return apply_overrides(config, overrides)


def cmd_tokenizer_train(args):
    from gpt_tf.textfiles import resolve_text_files
    from gpt_tf.tokenizer import train_tokenizer

    files = resolve_text_files(args.inputs)
    started = time.perf_counter()
    tokenizer = train_tokenizer(files, args.output, vocab_size=args.vocab_size,
                                model_type=args.model_type)
    print(f"trained a {args.model_type} tokenizer: {tokenizer.vocab_size} tokens from "
          f"{len(files)} file(s) in {time.perf_counter() - started:.1f}s -> "
          f"{tokenizer.model_path}")
    return 0


def cmd_train(args):
    overrides = args.overrides
    from gpt_tf import training

    if training.is_run_dir(args.run_dir):
        if args.data or args.dataset:
            print(f"note: '{args.run_dir}' exists; resuming it (its stored data split is used)",
                  file=sys.stderr)
    else:
        data = args.data
        validation = args.validation_data
        if args.dataset:
            from gpt_tf.datasets import lm_split_files, registry

            registry.check_trainable(args.dataset, "--dataset")
            splits = lm_split_files(args.dataset)
            data, validation = splits["train"], validation or splits.get("validation")
        if not data:
            raise UserError(f"'{args.run_dir}' is a new run: pass --data FILES or --dataset NAME")
        config = _load_config(args, overrides)
        training.prepare_run(args.run_dir, config, data, validation, args.tokenizer)
        overrides = []
    return run_prepared(args, overrides)


def cmd_generate(args):
    from gpt_tf.generation import Generator
    from gpt_tf.sampling import Sampler
    from gpt_tf.training import load_model

    sampler = Sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                      repetition_penalty=args.repetition_penalty)
    model, tokenizer, _ = load_model(args.run_dir, args.checkpoint)
    generator = Generator(model, jit_compile=not args.no_xla)
    prompts = [[tokenizer.end_of_text_id] + tokenizer.encode(p) for p in args.prompt]
    stop = [tokenizer.end_of_text_id]
    if args.stream and len(prompts) == 1:
        from gpt_tf.text_stream import StreamDecoder

        sys.stdout.write(args.prompt[0])
        decoder = StreamDecoder(tokenizer.decode)

        def on_token(step, tokens):
            if tokens[0] is None or tokens[0] in stop:
                return
            sys.stdout.write(decoder.push(tokens[0]))
            sys.stdout.flush()

        generator.generate(prompts, args.max_new_tokens, sampler, args.seed, stop, on_token)
        sys.stdout.write(decoder.finish() + "\n")
        return 0
    result = generator.generate(prompts, args.max_new_tokens, sampler, args.seed, stop)
    for prompt, ids in zip(args.prompt, result.token_ids):
        print(prompt + tokenizer.decode(ids))
        if len(args.prompt) > 1:
            print("---")
    return 0


def cmd_evaluate(args):
    if args.task:
        from gpt_tf.evaluation.cli import run_task_evaluation

        return run_task_evaluation(args)
    if not args.run_dir:
        raise UserError("give a run directory (gpt-tf evaluate RUN_DIR), or --task TASK "
                        "--model TARGET for the task report")
    from gpt_tf import data as data_lib
    from gpt_tf.textfiles import resolve_text_files
    from gpt_tf.training import evaluate, load_model, load_split

    model, tokenizer, config = load_model(args.run_dir, args.checkpoint)
    if args.data:
        sources = [data_lib.Source(f) for f in resolve_text_files(args.data)]
    else:
        sources = load_split(args.run_dir)["validation"]
        if not sources:
            raise UserError(f"run '{args.run_dir}' has no validation split; pass --data FILES")
    dataset = data_lib.lm_dataset(sources, tokenizer, config.model.sequence_length,
                                  config.train.batch_size, shuffle=False, repeat=False)
    loss, tokens = evaluate(model, dataset, args.max_batches)
    total_bytes, total_tokens = data_lib.count_bytes_and_tokens(sources, tokenizer)
    report = {"validation_loss": loss, "perplexity": math.exp(min(loss, 50.0)),
              "bits_per_byte": data_lib.bits_per_byte(loss, total_bytes, total_tokens),
              "tokens_scored": tokens, "text": data_lib.describe_sources(sources)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['text']}: loss {loss:.4f} nats/token, perplexity {report['perplexity']:.2f}, "
              f"{report['bits_per_byte']:.4f} bits/byte over {tokens:,} tokens")
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        logs.configure(verbose=logs.has_verbose_flag(argv, before_command=True))
        regular, overrides = _split_overrides(argv)
        args = build_parser().parse_args(regular)
        if overrides and args.func is not cmd_train and not getattr(args, "accepts_overrides", False):
            raise UserError(f"config overrides {overrides} only apply to `gpt-tf train`")
        args.overrides = overrides
        return args.func(args)
    except UserError as error:
        print(f"gpt-tf: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpt-tf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
