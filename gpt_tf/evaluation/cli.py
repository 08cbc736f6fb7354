"""Command-line side of the task evaluation, for `gpt-tf evaluate --task ...`.

`gpt_tf.cli` adds these options to its `evaluate` command with
`add_task_arguments(parser)` and calls `run_task_evaluation(args)` when
`--task` is given:

    gpt-tf evaluate --task all --model runs/tasks --backend-compare
    gpt-tf evaluate --task sentiment --model sentiment=saved_models/tasks \\
        --model sentiment=tflite/tasks-int8 --limit 200
"""

import glob
import json
import os
import sys

from gpt_tf.errors import UserError
from gpt_tf.evaluation.report import (
    DEFAULT_DATA,
    OUT_OF_DOMAIN,
    TASKS,
    Target,
    evaluate_tasks,
    write_report,
)
from gpt_tf.export.layout import metadata_path


def add_task_arguments(parser):
    """Adds the task-evaluation options to an argparse parser (`--task` turns them on)."""
    group = parser.add_argument_group(
        "task evaluation", "with --task: evaluate models on held-out task data against "
        "baselines and write report.md + report.json")
    group.add_argument("--task", choices=("all",) + TASKS,
                       help="all, or one of lm, translate, qa, sentiment")
    group.add_argument("--model", action="append", default=[], metavar="[TASK=]TARGET",
                       help="a run directory, SavedModel directory, http(s) model URL or TFLite "
                            "export; TASK=TARGET for one task only (repeatable: several models "
                            "become columns of the report, each later one also compared with "
                            "the first on the same examples)")
    group.add_argument("--backend-compare", action="store_true",
                       help="also evaluate the SavedModel and TFLite exports of each run "
                            "directory (found by their recorded source run under --exports-dir)")
    group.add_argument("--exports-dir", default=".",
                       help="where saved_models/ and tflite/ are searched (default: .)")
    group.add_argument("--output", default=os.path.join("reports", "evaluation"),
                       help="directory for report.md and report.json (default reports/evaluation)")
    group.add_argument("--split", default="test", choices=("test", "validation"))
    group.add_argument("--limit", action="append", default=[], metavar="[TASK=]N",
                       help="examples per data set (lm: tokens); 0: all; TASK=N for one task, "
                            "DATASET=N for one data set (repeatable; defaults: lm 20000 tokens, "
                            "translate 200, qa 200, sentiment 400)")
    for task in TASKS:
        group.add_argument(f"--{task}-data", dest=f"{task}_data", default=DEFAULT_DATA[task],
                           help=f"data set or file for {task} (default {DEFAULT_DATA[task]})")
    group.add_argument("--lm-train-data", default=None,
                       help="with an --lm-data file: text for the unigram baseline")
    group.add_argument("--sentiment-train-data", default=None,
                       help="with a --sentiment-data file: labelled texts for its baselines")
    group.add_argument("--ood-data", action="append", default=[], metavar="TASK=DATA",
                       help="an out-of-domain test set for TASK (repeatable; replaces that "
                            "task's defaults: " + "; ".join(
                                f"{task}: {', '.join(names)}"
                                for task, names in OUT_OF_DOMAIN.items()) + ")")
    group.add_argument("--qa-min-answer-logprob", type=float, default=None, metavar="NATS",
                       help="QA: turn down answers whose mean log-probability per token is "
                            "below this (what `apps.qa --min-answer-logprob` does), on every "
                            "QA set; default: no floor")
    group.add_argument("--no-out-of-domain", action="store_true",
                       help="skip the out-of-domain test sets")
    group.add_argument("--fail-under-baseline", action="store_true",
                       help="exit 1 if any metric does not beat its baseline")
    group.add_argument("--no-xla", dest="no_xla", action="store_true",
                       help="run-directory models: do not compile with XLA")
    return parser


def _source_run(metadata):
    source = (metadata or {}).get("source") or {}
    return os.path.abspath(source["run_dir"]) if source.get("run_dir") else None


def find_exports(run_dir, exports_dir="."):
    """`[Target]` for the SavedModel (latest version) and TFLite exports of `run_dir`."""
    from gpt_tf.clients.open import resolve_target

    run_dir = os.path.abspath(run_dir)
    found = []
    for model_dir in sorted(glob.glob(os.path.join(exports_dir, "saved_models", "*"))):
        if not os.path.isdir(model_dir):
            continue
        try:
            _, version_dir = resolve_target(model_dir)
        except UserError:
            continue
        meta_path = metadata_path(version_dir)
        if os.path.isfile(meta_path):
            with open(meta_path, encoding="utf-8") as handle:
                if _source_run(json.load(handle)) == run_dir:
                    found.append(Target("savedmodel", version_dir))
    for meta_path in sorted(glob.glob(os.path.join(exports_dir, "tflite", "*", "meta.json"))):
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            continue
        if _source_run(meta) == run_dir:
            found.append(Target(f"tflite-{meta.get('quantization', 'none')}",
                                os.path.dirname(meta_path)))
    return found


def _label(target):
    from gpt_tf.clients.open import resolve_target

    kind, path = resolve_target(target)
    if kind == "tflite":
        meta = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "meta.json")
        try:
            with open(meta, encoding="utf-8") as handle:
                return f"tflite-{json.load(handle).get('quantization', 'none')}"
        except (OSError, ValueError):
            return "tflite"
    return kind


def build_targets(args, tasks):
    """`{task: [Target]}` from `--model` (and the run's positional `run_dir`, if any)."""
    models = list(args.model)
    if not models and getattr(args, "run_dir", None):
        models = [args.run_dir]
    if not models:
        raise UserError("name the model to evaluate: --model RUN_DIR (or a SavedModel, URL, "
                        "TFLite export; TASK=TARGET for one task)")
    targets = {task: [] for task in tasks}
    for text in models:
        task, sep, target = text.partition("=")
        if sep and task in TASKS:
            chosen = [task] if task in tasks else []
        else:
            chosen, target = list(tasks), text
        for name in chosen:
            targets[name].append(target)
    out = {}
    for task, names in targets.items():
        labelled = []
        expanded = []
        for target in names:
            expanded.append(target)
            if args.backend_compare:
                try:
                    from gpt_tf.clients.open import resolve_target

                    kind, path = resolve_target(target)
                except UserError:
                    kind = None
                if kind == "keras":
                    expanded.extend(t.target for t in find_exports(path, args.exports_dir))
        unique = list(dict.fromkeys(expanded))
        labels = [_label(target) for target in unique]
        for target, label in zip(unique, labels):
            if labels.count(label) > 1:  # two run directories, say: name them by their paths
                label = f"{label} ({target})"
            labelled.append(Target(label, target))  # targets are unique, so labels are too
        out[task] = labelled
    return out


def task_limits(values, tasks):
    """`{task or data set: N}` from `--limit N` (every task), `--limit TASK=N` and
    `--limit DATASET=N` (one data set, e.g. an out-of-domain one) values."""
    limits = {}
    for text in values:
        key, sep, number = str(text).rpartition("=")
        try:
            value = int(number)
        except ValueError:
            value = -1
        if value < 0 or (sep and not key.strip()):
            raise UserError(f"--limit '{text}' must be N, TASK=N or DATASET=N with N >= 0 (0: "
                            f"all); tasks: {', '.join(TASKS)}")
        limits.update({key.strip(): value} if sep else {t: value for t in tasks})
    return limits


def out_of_domain_sets(args):
    """`{task: [data set]}` from `--ood-data` (over the defaults) and `--no-out-of-domain`."""
    if args.no_out_of_domain:
        if args.ood_data:
            raise UserError("--ood-data and --no-out-of-domain contradict each other; give one")
        return {}
    chosen = {}
    for text in args.ood_data:
        task, sep, name = text.partition("=")
        if not sep or task not in TASKS or not name.strip():
            raise UserError(f"--ood-data '{text}' must look like TASK=DATA with TASK one of "
                            f"{', '.join(TASKS)}, e.g. sentiment=sentiment-en-reviews")
        chosen.setdefault(task, []).append(name.strip())
    return {**{task: list(names) for task, names in OUT_OF_DOMAIN.items()}, **chosen}


def run_task_evaluation(args):
    """Runs `gpt-tf evaluate --task ...`: evaluates, writes the report, prints a summary.

    Returns:
        0, or 1 with `--fail-under-baseline` when a metric does not beat its baseline.
    """
    from gpt_tf.tasks.qa import check_floor

    # before any model or data is read
    floor = check_floor(args.qa_min_answer_logprob, "--qa-min-answer-logprob")
    tasks = list(TASKS) if args.task == "all" else [args.task]
    targets = build_targets(args, tasks)
    limits = task_limits(args.limit, tasks)
    data = {task: getattr(args, f"{task}_data") for task in TASKS}
    data.update(lm_train=args.lm_train_data, sentiment_train=args.sentiment_train_data,
                qa_min_answer_logprob=floor)
    options = {"jit_compile": not args.no_xla,
               "checkpoint": getattr(args, "checkpoint", None) or "final"}

    def progress(line):
        print(f"evaluate: {line}", file=sys.stderr, flush=True)

    report = evaluate_tasks(targets, tasks, data, args.split, limits, progress, options,
                            out_of_domain=out_of_domain_sets(args))
    json_path, md_path = write_report(report, args.output)
    entries = [(task, entry) for task, entry in report["tasks"].items()]
    entries += [(task, entry) for task, ood in report["out_of_domain"].items() for entry in ood]
    for task, entry in entries:
        print(f"{task} on {entry['data']} ({entry.get('domain', 'in-domain').split(':')[0]}):")
        for row in entry["comparisons"]:
            value = "error" if row["value"] is None else f"{row['value']:.4g}"
            base = "n/a" if row["baseline_value"] is None else f"{row['baseline_value']:.4g}"
            print(f"  {row['backend']:12s} {row['metric']:13s} {value:>9s}  vs "
                  f"{row['baseline']} {base:>9s}  beats baseline: "
                  f"{'yes' if row['beats_baseline'] else 'no'}")
    for line in report["skipped"]:
        print(f"skipped: {line}")
    print(f"report: {md_path} and {json_path}")
    if args.fail_under_baseline and not report["summary"]["all_beat_baselines"]:
        return 1
    return 0


def main(argv=None):
    """`python -m gpt_tf.evaluation --task ... --model ...` (same as `gpt-tf evaluate --task`)."""
    import argparse

    from gpt_tf import logs

    parser = add_task_arguments(argparse.ArgumentParser(
        prog="python -m gpt_tf.evaluation",
        description="Evaluate models on held-out task data against baselines."))
    parser.add_argument(logs.VERBOSE_FLAG, action="store_true", help=logs.VERBOSE_HELP)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        logs.configure(verbose=logs.has_verbose_flag(argv))
        args = parser.parse_args(argv)
        if not args.task:
            parser.error("--task is required")
        return run_task_evaluation(args)
    except UserError as error:
        print(f"gpt-tf evaluate: error: {error}", file=sys.stderr)
        return 2
