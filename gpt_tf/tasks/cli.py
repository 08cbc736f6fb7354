"""`gpt-tf finetune`: a fine-tuning run from a pretrained run, then training.

    gpt-tf finetune --base runs/lm --run-dir runs/tasks \\
        --task translate=mt-en-fr --task qa=qa-en --task sentiment=sentiment-en \\
        [--lora-rank 8] [--train.steps=2000 ...]

An existing --run-dir resumes (train.* overrides may change, as for `train`).
"""

import sys

from gpt_tf.errors import UserError
from gpt_tf.training_cli import add_run_arguments, run_prepared


def register(subparsers):
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a pretrained run on tasks (loss masked on prompts)",
        description="Fine-tune a pretrained run on translate/qa/sentiment/generate data. "
                    "Each --task is TASK=DATA, DATA a prepared data set name (mt-en-fr, qa-en, "
                    "sentiment-en, lm-en, ...) or your own file (TSV/JSONL pairs, SQuAD JSON, "
                    "JSONL/CSV sentiment, text). Add --train.KEY=VALUE overrides (e.g. "
                    "--train.steps=1000 --train.learning_rate=3e-4). A new learning rate scales the base "
                    "run's train.min_learning_rate with it unless that is given too.")
    parser.add_argument("--base", help="the pretrained run directory (needed for a new run)")
    parser.add_argument("--run-dir", required=True, help="the fine-tuning run (created or resumed)")
    parser.add_argument("--task", action="append", default=[], metavar="TASK=DATA",
                        help="translate=mt-en-fr, qa=qa-en, sentiment=sentiment-en, "
                             "generate=lm-en or a file (repeatable)")
    parser.add_argument("--validation", action="append", default=[], metavar="TASK=DATA",
                        help="that task's validation data instead of the default (a user "
                             "file's --holdout share, or a data set's validation split): a file "
                             "or a data set, e.g. sentiment=sentiment-en (repeatable)")
    parser.add_argument("--weight", action="append", default=[], metavar="TASK=W",
                        help="copies of each TASK example per epoch, e.g. qa=3 (repeatable)")
    parser.add_argument("--lora-rank", type=int, default=0,
                        help="train rank-R LoRA adapters only (same as --train.lora_rank=R)")
    parser.add_argument("--holdout", type=float, default=0.1,
                        help="share of a user file held out for validation (default 0.1)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="write the run directory and stop (no training)")
    add_run_arguments(parser)
    parser.set_defaults(func=cmd_finetune, accepts_overrides=True)


def _weights(values):
    weights = {}
    for text in values:
        task, _, value = text.partition("=")
        try:
            weights[task.strip()] = float(value)
        except ValueError:
            raise UserError(f"--weight '{text}' must look like TASK=NUMBER, e.g. qa=3") from None
    return weights


def cmd_finetune(args):
    from gpt_tf import training
    from gpt_tf.tasks.finetune import keep_floor_ratio, prepare_finetune_run

    overrides = list(getattr(args, "overrides", []) or [])
    if args.lora_rank < 0:
        raise UserError(f"--lora-rank must be >= 0 (got {args.lora_rank})")
    if args.lora_rank:
        overrides.append(f"train.lora_rank={args.lora_rank}")
    if training.is_run_dir(args.run_dir):
        if args.task or args.base or args.validation:
            print(f"note: '{args.run_dir}' exists; resuming it (its tasks, validation data "
                  "and base are kept)",
                  file=sys.stderr)
        # as for a new run: a new peak rate keeps the run's floor-to-peak ratio
        train_overrides = keep_floor_ratio(training.load_run_config(args.run_dir).train,
                                           overrides)
    else:
        if not args.base:
            raise UserError(f"'{args.run_dir}' is a new run: pass --base RUN (a pretrained run)")
        if not args.task:
            raise UserError("name at least one --task TASK=DATA, e.g. --task translate=mt-en-fr")
        config = prepare_finetune_run(args.run_dir, args.base, args.task, overrides,
                                      holdout_fraction=args.holdout,
                                      weights=_weights(args.weight),
                                      validation=args.validation)
        tc = config.train
        print(f"prepared fine-tuning run '{args.run_dir}' from '{args.base}' "
              f"({', '.join(args.task)}): {tc.steps} steps, learning rate {tc.learning_rate:g} "
              f"decaying to {tc.min_learning_rate:g}", file=sys.stderr)
        train_overrides = []
    if args.prepare_only:
        return 0
    return run_prepared(args, train_overrides)
