"""Sentiment: can more fine-tuning on this CPU lift the shipped GPT above bag-of-words?

    python bench/sentiment_finetune.py [--run models/multitask] [--work runs/bench-sentiment]
                                       [--variants continue,tweets,channel,reviews,selected,labels,
                                                   dropout,lora]
                                       [--steps 150]

Each variant is a real `gpt-tf finetune` run from the shipped weights (batch 32,
learning rate 1e-4 held constant by a 1e-4 floor, a fixed number of steps, the
final weights), then scored on
the same validation and test sentences as the app and both baselines:
- `continue`: more fine-tuning on sentiment-en alone (the app's prompt, loss on
  the label word);
- `tweets`: the same, plus the positive and negative CrowdFlower tweets of
  sentiment-en-3class's train split, balanced by class (more labelled data from
  another domain);
- `channel`: the noisy-channel direction, label -> text, through the translate
  task format (`<|source|>positive<|target|>{text}`, loss on the text); a text
  gets the label under which its log-likelihood is highest;
- `reviews`: domain-adaptive pretraining first: `--reviews-steps` language-model
  steps on lm-en-reviews (1,348 whole movie reviews, unlabelled text in
  sentiment-en's domain; learning rate 2e-4 decaying to the run's 1e-4 floor,
  20 warm-up steps), then the `continue` fine-tuning from there. Bag-of-words
  cannot use unlabelled text; a GPT can. Needs `gpt-tf data prepare lm-en-reviews`.
- `selected`: from the `reviews` variant's language-model stage, sentiment
  fine-tuning with a decaying rate (1e-4 to 1e-5) for at most
  `--selected-steps`, validated every 20 steps on sentiment-en's validation
  split by label accuracy (`train.best_metric=sentiment_accuracy`, early
  stopping after 6 evaluations without a better one); the most accurate
  checkpoint is scored. Its validation accuracy chose the checkpoint, so only
  its test column is unbiased.
- `labels`: `selected`, with more labelled data from another source: the last
  3 sentences of each lm-en-reviews train review (a review usually ends on its
  verdict), labelled with the whole review's label (noisy). The bag-of-words
  baseline given the same extra data is scored beside it.
- `dropout`: `selected` with dropout 0.3 instead of the model's 0.1 (`selected`
  overfits 3,200 sentences within 40 steps);
- `lora`: `selected` training rank-8 LoRA adapters (and biases) only: 140,288
  of 5,453,312 weights, 2.6%; learning rate 1e-3 decaying to 1e-4. The other
  way to overfit less.
  Both are trained with `train.restore_best_weights`, so their `model.keras` is
  the checkpoint scored.

The test margin over the bag-of-words baseline comes with its 95% paired
bootstrap interval. About 2.5 hours on 2 cores for the first six variants (each
fine-tuning run 9 to 29 minutes, the reviews language-model stage 24, see
`finetune_seconds`); a variant whose run directory already holds `model.keras`
is only scored. For `selected`, `labels`, `dropout` and `lora` the JSON keeps the run's validation
history (`selection_history`: the teacher-forced accuracy that chose the checkpoint). `seconds` in the JSON is
the last invocation's wall time. Writes bench/results/sentiment_finetune.json.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import write_json  # noqa: E402
from probe_sentiment import SPLITS, compare_rows, load_with_baselines, print_rows  # noqa: E402

RESULTS = os.path.join(HERE, "results", "sentiment_finetune.json")
SELECTED_EVAL_EVERY, SELECTED_PATIENCE = 20, 6
VERDICT_SENTENCES = 3
# Variants fine-tuned from the `reviews` language model with accuracy-based selection:
# `gpt-tf finetune` flags and learning rate of each (floor a tenth of it).
SELECTED = {"selected": ((), 1e-4), "labels": ((), 1e-4),
            "dropout": (("--model.dropout=0.3",), 1e-4),
            "lora": (("--lora-rank", "8"), 1e-3)}
VARIANTS = ("continue", "tweets", "channel", "reviews", *SELECTED)


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for text, label in rows:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")


def training_files(work, texts, gold):
    """`({variant: (task, path)}, counts, review verdicts)`: the fine-tuning data of each
    variant, written under `work`."""
    from gpt_tf.evaluation.report import load_task_data

    own = list(zip(texts["train"], gold["train"]))
    tweets = load_task_data("sentiment", "sentiment-en-3class", "test", limit=0)["train"]
    by_label = {label: [(e.text, e.label) for e in tweets if e.label == label]
                for label in ("positive", "negative")}
    keep = min(len(rows) for rows in by_label.values())
    rng = random.Random(0)
    mixed = list(own)
    for rows in by_label.values():
        rng.shuffle(rows)
        mixed.extend(rows[:keep])
    rng.shuffle(mixed)
    files = {"continue": ("sentiment", "sentiment-en"),
             "tweets": ("sentiment", os.path.join(work, "own+tweets.jsonl")),
             "channel": ("translate", os.path.join(work, "channel.tsv"))}
    # the same fine-tuning data, from the adapted weights
    for variant in ("reviews", "selected", "dropout", "lora"):
        files[variant] = files["continue"]
    _write_jsonl(files["tweets"][1], mixed)
    with open(files["channel"][1], "w", encoding="utf-8") as handle:
        for text, label in own:
            handle.write(f"{label}\t{' '.join(text.split())}\n")
    counts = {"own": len(own), "tweets_per_class": keep}
    from gpt_tf.datasets import is_prepared

    verdicts = []
    if is_prepared("lm-en-reviews"):
        verdicts = review_verdicts()
        with_reviews = own + verdicts
        rng.shuffle(with_reviews)
        files["labels"] = ("sentiment", os.path.join(work, "own+review-verdicts.jsonl"))
        _write_jsonl(files["labels"][1], with_reviews)
        counts["review_verdicts"] = len(verdicts)
    return files, counts, verdicts


def review_verdicts(sentences=VERDICT_SENTENCES):
    """`(text, label)`: the last `sentences` sentences of each lm-en-reviews train review,
    labelled with the review's label (its file name's prefix). A review's closing
    sentences usually carry its verdict; the label is the whole review's, so noisy."""
    from gpt_tf.datasets.api import lm_split_files

    rows = []
    for path in lm_split_files("lm-en-reviews")["train"]:
        with open(path, encoding="utf-8") as handle:
            parts = re.split(r"(?<= [.!?]) ", handle.read().strip())
        rows.append((" ".join(parts[-sentences:]), os.path.basename(path).split("-", 1)[0]))
    return rows


def finetune(base, run_dir, task, path, steps, learning_rate=1e-4, warmup=10, floor=1e-4,
             eval_every=None, patience=0, extra=()):
    """One `gpt-tf finetune` subprocess; returns its wall seconds.

    `floor` 1e-4 is the floor of the runs measured before fine-tuning scaled
    the inherited floor with the learning rate (so 1e-4 runs are constant).
    """
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpt_tf.cli", "finetune", "--base", base,
                    "--run-dir", run_dir, "--task", f"{task}={path}", "--holdout", "0.05",
                    f"--train.steps={steps}", f"--train.eval_every={eval_every or steps}",
                    f"--train.checkpoint_every={min(steps, 50)}",
                    f"--train.learning_rate={learning_rate}", f"--train.warmup_steps={warmup}",
                    f"--train.min_learning_rate={floor}", "--train.batch_size=32",
                    f"--train.early_stopping_patience={patience}", *extra, "--quiet"],
                   check=True)
    return round(time.perf_counter() - started, 1)


def best_weights_run(run_dir):
    """`(directory, step)`: `run_dir` itself if it was trained with
    `train.restore_best_weights` (its `model.keras` is the `best` checkpoint), else a
    copy of it whose `model.keras` holds that checkpoint (runs trained before the option)."""
    import tensorflow as tf

    from gpt_tf.training import load_model, load_run_config

    best = tf.train.latest_checkpoint(os.path.join(run_dir, "best"))
    if best is None:
        raise SystemExit(f"{run_dir} has no best checkpoint (it never validated); delete it and "
                         "run the variant again")
    step = int(os.path.basename(best).rsplit("-", 1)[1])
    if load_run_config(run_dir).train.restore_best_weights:
        return run_dir, step
    out = run_dir + "-best"
    if not os.path.isfile(os.path.join(out, "model.keras")):
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run_dir, tmp, ignore=shutil.ignore_patterns(
            "checkpoints", "best", "logs", "model.keras"))
        load_model(run_dir, "best")[0].save(os.path.join(tmp, "model.keras"))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    return out, step


def channel_labels(client, texts, labels):
    """The label under which each text is most likely (`log p(text | label)`)."""
    from gpt_tf.task_data import formats

    clean = [formats.strip_separators(t) for t in texts]
    scores = {label: client.score(formats.translate_prompt(label), clean) for label in labels}
    return [max(labels, key=lambda label: scores[label][i]) for i in range(len(texts))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--work", default="runs/bench-sentiment")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=150, help="steps of continue and tweets")
    parser.add_argument("--channel-steps", type=int, default=80)
    parser.add_argument("--out", default=RESULTS, help="the results JSON")
    parser.add_argument("--reviews-steps", type=int, default=250,
                        help="language-model steps on lm-en-reviews before `reviews` fine-tunes")
    parser.add_argument("--selected-steps", type=int, default=300,
                        help="at most this many steps of `selected` and `labels`")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    from gpt_tf.clients import open_client
    from gpt_tf.datasets import is_prepared
    from gpt_tf.tasks.sentiment import classify

    needs_reviews = sorted({"reviews", "labels"} & set(variants))
    if needs_reviews and not is_prepared("lm-en-reviews"):
        parser.error(f"the {', '.join(needs_reviews)} variant(s) need lm-en-reviews: run "
                     "`gpt-tf data prepare lm-en-reviews` first")

    started = time.perf_counter()
    labels, texts, gold, predictions = load_with_baselines("sentiment-en")
    os.makedirs(args.work, exist_ok=True)
    files, counts, verdicts = training_files(args.work, texts, gold)

    def app_labels(target):
        client = open_client(target)
        try:
            return {s: [r["label"] for r in classify(client, texts[s], labels=labels)]
                    for s in SPLITS}
        finally:
            client.close()

    predictions["app: shipped model"] = app_labels(args.run)
    if "labels" in variants:  # the baseline given the same extra labels, for a fair view
        from gpt_tf.evaluation import baselines

        bow = baselines.BagOfWordsLogisticRegression().fit(
            texts["train"] + [t for t, _ in verdicts], gold["train"] + [g for _, g in verdicts])
        predictions["bag-of-words LR + the review verdicts of `labels`"] = {
            s: bow.predict(texts[s]) for s in SPLITS}
    seconds, histories = {}, {}
    if os.path.exists(args.out):  # runs trained by an earlier invocation keep their times
        with open(args.out, encoding="utf-8") as handle:
            seconds.update(json.load(handle).get("finetune_seconds", {}))
    for variant in variants:
        task, path = files[variant]
        run_dir = os.path.join(args.work, variant)
        steps = args.channel_steps if variant == "channel" else args.steps
        base, name = args.run, f"{variant}: {steps} more steps"
        trained = os.path.exists(os.path.join(run_dir, "model.keras"))
        if variant == "reviews":
            base = run_dir + "-lm"
            name = f"reviews: {args.reviews_steps} LM steps on reviews + {steps} steps"
            if not trained and not os.path.exists(os.path.join(base, "model.keras")):
                seconds["reviews-lm"] = finetune(args.run, base, "generate", "lm-en-reviews",
                                                 args.reviews_steps, 2e-4, 20)
        if variant in SELECTED:
            base = os.path.join(args.work, "reviews-lm")
            if not os.path.exists(os.path.join(base, "model.keras")):
                parser.error(f"`{variant}` starts from {base}: run the `reviews` variant first")
            flags, rate = SELECTED[variant]
            if not trained:  # validated on sentiment-en's validation split, as `selected`
                seconds[variant] = finetune(
                    base, run_dir, task, path, args.selected_steps, rate, floor=rate / 10,
                    eval_every=SELECTED_EVAL_EVERY, patience=SELECTED_PATIENCE,
                    extra=["--train.best_metric=sentiment_accuracy",
                           "--train.restore_best_weights=true",
                           "--validation", "sentiment=sentiment-en", *flags])
            with open(os.path.join(run_dir, "history.jsonl"), encoding="utf-8") as handle:
                histories[variant] = [json.loads(line) for line in handle]
            run_dir, best_step = best_weights_run(run_dir)
            name = (f"{variant}: {args.reviews_steps} LM steps on reviews + the most accurate "
                    f"of {args.selected_steps} steps (step {best_step})")
            predictions[name] = app_labels(run_dir)
            continue
        if not trained:
            seconds[variant] = finetune(base, run_dir, task, path, steps)
        if variant == "channel":
            client = open_client(run_dir)
            predictions[name] = {s: channel_labels(client, texts[s], labels) for s in SPLITS}
            client.close()
        else:
            predictions[name] = app_labels(run_dir)

    rows = compare_rows(predictions, gold, labels)
    print(f"\nfrom {args.run}: {counts['own']} sentiment-en train sentences, "
          f"{counts['tweets_per_class']} tweets per class in `tweets`\n")
    print_rows(rows)
    result = {"run": args.run, "labels": labels, "rows": rows, "data": counts,
              "steps": {"continue": args.steps, "tweets": args.steps,
                        "channel": args.channel_steps, "reviews": args.steps,
                        "reviews-lm": args.reviews_steps,
                        **{variant: args.selected_steps for variant in SELECTED}},
              "finetune_seconds": seconds, "seconds": round(time.perf_counter() - started, 1)}
    if histories:
        result["selection_history"] = histories
    write_json(args.out, result)


if __name__ == "__main__":
    main()
