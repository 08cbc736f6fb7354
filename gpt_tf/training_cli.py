"""The command-line runner that `gpt-tf train` and `gpt-tf finetune` share.

Outside `gpt_tf.training` so that building the parser imports no TensorFlow.

Both commands prepare (or find) a run directory, then `run_prepared` trains it
with the same flags (`add_run_arguments`) and the same exit statuses:

    0    completed, stopped early, or paused
    3    training stopped (the loss became NaN); the last good checkpoint is kept
    4    a peer worker failed (`--strategy multi_worker`); restart all workers to resume
    143  preempted (SIGTERM): a checkpoint of the current step was saved
    (2, user errors, is the command line's: `gpt_tf.cli.main`.)

With `--workers N` it launches N local multi-worker processes of
`gpt-tf train --run-dir DIR` (a prepared run directory of either kind) and
returns the launcher's status.
"""

import json
import sys

from gpt_tf.errors import UserError
from gpt_tf.progress import ConsoleProgress

STRATEGIES = ["auto", "one_device", "mirrored", "multi_worker", "tpu"]
EXIT_STOPPED = 3
EXIT_PEER_FAILED = 4
EXIT_PREEMPTED = 143


def add_run_arguments(parser):
    """The flags of running a prepared run directory (both commands have them)."""
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--workers", type=int, default=0,
                        help="launch N local multi-worker processes and restart them on failure")
    parser.add_argument("--max-restarts", type=int, default=3,
                        help="with --workers: restarts of the worker group after a failure")
    parser.add_argument("--cpu-devices", type=int, default=0,
                        help="split the CPU into N logical devices (for --strategy mirrored on CPU)")
    parser.add_argument("--sample-prompt", action="append", default=[],
                        help="prompt for TensorBoard text samples (repeatable)")
    parser.add_argument("--deterministic", action="store_true",
                        help="enable TensorFlow op determinism (bitwise-repeatable runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def enable_determinism(args):
    """`--deterministic`: TensorFlow op determinism, before any training op runs."""
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def run_prepared(args, overrides):
    """Trains the prepared run `args.run_dir`; prints the summary; returns the exit status.

    Args:
        args: parsed arguments with `run_dir` and those of `add_run_arguments`.
        overrides: `train.KEY=VALUE` strings applied to the stored config.
    """
    enable_determinism(args)
    if args.workers:
        return _launch_workers(args, overrides)
    import tensorflow as tf

    from gpt_tf.distribute import make_strategy
    from gpt_tf.training import TrainingStopped, train

    strategy = make_strategy(args.strategy, cpu_devices=args.cpu_devices)
    try:
        result = train(args.run_dir, strategy=strategy, on_event=ConsoleProgress(quiet=args.quiet),
                       sample_prompts=args.sample_prompt, overrides=overrides)
    except TrainingStopped as stop:
        print(f"gpt-tf: training stopped: {stop}", file=sys.stderr)
        return EXIT_STOPPED
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError) as error:
        if args.strategy != "multi_worker":
            raise
        first = str(error).strip().splitlines()[0][:200]
        print(f"gpt-tf: a peer worker failed ({type(error).__name__}: {first}); this worker "
              "stops. Restart all workers (`--workers N` does it) to resume from the last "
              "checkpoint", file=sys.stderr)
        return EXIT_PEER_FAILED
    print(json.dumps(summary(result)))
    if result.status == "preempted":
        print("preempted (SIGTERM): checkpoint saved; rerun the same command to resume",
              file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


def summary(result):
    """The one JSON line printed at the end: status, step, final loss, last validation."""
    out = {"status": result.status, "step": result.step, "final_loss": result.final_loss}
    if result.validation:
        out.update({k: v for k, v in result.validation.items() if k != "step"})
    return out


def _launch_workers(args, overrides):
    from gpt_tf.launcher import run_workers

    if args.workers < 2:
        raise UserError(f"--workers must be >= 2 (got {args.workers}); omit it for one process")
    if args.strategy not in ("auto", "multi_worker"):
        raise UserError("--workers runs the multi_worker strategy; drop --strategy")
    worker_args = ["--run-dir", args.run_dir, *[f"--{o}" for o in overrides]]
    worker_args += ["--quiet"] if args.quiet else []
    worker_args += ["--deterministic"] if args.deterministic else []
    worker_args += [f"--sample-prompt={p}" for p in args.sample_prompt]
    return run_workers(worker_args, args.workers, args.max_restarts, _print_worker_line,
                       _print_launcher_event)


def _print_worker_line(index, line):
    sys.stderr.write(f"[worker {index}] {line}\n")  # one write per line
    sys.stderr.flush()


def _print_launcher_event(kind, info):
    if kind == "start":
        print(f"launcher: attempt {info['attempt']}: worker pids {info['pids']}",
              file=sys.stderr, flush=True)
    elif kind == "failure":
        print(f"launcher: worker {info['worker']} exited with status {info['status']}; "
              "stopping the others", file=sys.stderr, flush=True)
    elif kind == "restart":
        print(f"launcher: restarting all workers (restart {info['attempt']})",
              file=sys.stderr, flush=True)
    elif kind == "done":
        print("launcher: all workers finished", file=sys.stderr, flush=True)
