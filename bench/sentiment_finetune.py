"""Sentiment: can more fine-tuning on this CPU lift the shipped GPT above bag-of-words?

    python bench/sentiment_finetune.py [--run models/multitask] [--work runs/bench-sentiment]
                                       [--variants continue,tweets,channel,reviews] [--steps 150]

Each variant is a real `gpt-tf finetune` run from the shipped weights (batch 32,
learning rate 1e-4, a fixed number of steps, the final weights), then scored on
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

The test margin over the bag-of-words baseline comes with its 95% paired
bootstrap interval. About 80 minutes on 2 cores for all four variants (each
fine-tuning run 9 to 24 minutes, see `finetune_seconds`); a variant whose run
directory already holds `model.keras` is only scored. `seconds` in the JSON is
the last invocation's wall time. Writes bench/results/sentiment_finetune.json.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from probe_sentiment import SPLITS, compare_rows, load_with_baselines, print_rows  # noqa: E402
from common import write_json  # noqa: E402

RESULTS = os.path.join(HERE, "results", "sentiment_finetune.json")
VARIANTS = ("continue", "tweets", "channel", "reviews")


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for text, label in rows:
            handle.write(json.dumps({"text": text, "label": label}) + "\n")


def training_files(work, texts, gold):
    """`{variant: (task, path)}`: the fine-tuning data of each variant, written under `work`."""
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
    files["reviews"] = files["continue"]  # the same fine-tuning, from the adapted weights
    _write_jsonl(files["tweets"][1], mixed)
    with open(files["channel"][1], "w", encoding="utf-8") as handle:
        for text, label in own:
            handle.write(f"{label}\t{' '.join(text.split())}\n")
    return files, {"own": len(own), "tweets_per_class": keep}


def finetune(base, run_dir, task, path, steps, learning_rate=1e-4, warmup=10):
    """One `gpt-tf finetune` subprocess; returns its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpt_tf.cli", "finetune", "--base", base,
                    "--run-dir", run_dir, "--task", f"{task}={path}", "--holdout", "0.05",
                    f"--train.steps={steps}", f"--train.eval_every={steps}",
                    f"--train.checkpoint_every={min(steps, 50)}",
                    f"--train.learning_rate={learning_rate}", f"--train.warmup_steps={warmup}",
                    "--train.batch_size=32",
                    "--train.early_stopping_patience=0", "--quiet"], check=True)
    return round(time.perf_counter() - started, 1)


def channel_labels(client, texts, labels):
    """The label under which each text is most likely (`log p(text | label)`)."""
    from gpt_tf.tasks import formats

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
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    from gpt_tf.clients import open_client
    from gpt_tf.datasets import is_prepared
    from gpt_tf.tasks.sentiment import classify

    if "reviews" in variants and not is_prepared("lm-en-reviews"):
        parser.error("the `reviews` variant needs lm-en-reviews: run "
                     "`gpt-tf data prepare lm-en-reviews` first")

    started = time.perf_counter()
    labels, texts, gold, predictions = load_with_baselines("sentiment-en")
    os.makedirs(args.work, exist_ok=True)
    files, counts = training_files(args.work, texts, gold)

    def app_labels(target):
        client = open_client(target)
        try:
            return {s: [r["label"] for r in classify(client, texts[s], labels=labels)]
                    for s in SPLITS}
        finally:
            client.close()

    predictions["app: shipped model"] = app_labels(args.run)
    seconds = {}
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
                        "reviews-lm": args.reviews_steps},
              "finetune_seconds": seconds, "seconds": round(time.perf_counter() - started, 1)}
    write_json(args.out, result)


if __name__ == "__main__":
    main()
