"""Sentiment: is the model's out-of-domain lean a label bias that calibration can remove?

    python bench/sentiment_bias.py [--model models/multitask] [--reviews 300] [--calibration 100]

The shipped model calls many positive product snippets and whole reviews
negative. If that were a prior over the label words, one offset added to the
log-odds of `positive` would fix it. This bench measures whether such an
offset exists, fitting it only on data the apps may tune on:

- P(positive) for every text of sentiment-en-broad's validation split (all its
  domains), sentiment-en's test split, `--reviews` evenly spaced whole reviews
  (sentiment-en-reviews) and every product snippet (sentiment-en-products),
  through `gpt_tf.tasks.sentiment.classify` (the app's own rule: label-word
  log-likelihoods, softmax, whole reviews averaged over windows);
- per validation domain: the model's accuracy and positive-call rate next to a
  bag-of-words logistic regression trained on sentiment-en-broad's train split
  (the report's baseline);
- two offsets on the log-odds: `validation`, the one that maximises validation
  accuracy (grid of 0.05 from -3 to 3), and `content-free`, minus the mean
  log-odds the model gives content-free texts ("N/A", "", "[MASK]"; Zhao et
  al. 2021), then every set's accuracy and positive-call rate with each;
- `oracle`: per set, the offset that maximises that set's own accuracy. It
  looks at the test labels, so it is not a method: it bounds how much of a
  set's errors any single offset could remove (the rest is ranking, not bias);
- the remedy the sentiment app offers (`--calibrate FILE`): offsets fitted by
  `gpt_tf.tasks.sentiment.calibrate` on `--calibration` labelled texts of the
  test domain (products: every n-th snippet; reviews: whole reviews outside the
  scored sample), scored on the set's other texts, next to bag-of-words trained
  on sentiment-en-broad with and without those same labelled texts.

The test sets never choose anything: they are only scored. Needs the four data
sets prepared (`gpt-tf data prepare NAME`). About 9 minutes on 2 cores (300
reviews). Writes bench/results/sentiment_bias.json.
"""

import argparse
import collections
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_json  # noqa: E402

from gpt_tf import datasets  # noqa: E402
from gpt_tf.evaluation.baselines import BagOfWordsLogisticRegression  # noqa: E402
from gpt_tf.evaluation.report import evenly_spaced  # noqa: E402

LABELS = ("negative", "positive")
CONTENT_FREE = ("N/A", "", "[MASK]")
GRID = [step / 20 for step in range(-60, 61)]


def load(name, split):
    """The labelled texts of a prepared data set's split, as dicts with `domain`."""
    path = datasets.split_paths(name)[split]
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [{"text": r["text"], "label": r["label"], "domain": r.get("domain") or name}
            for r in rows]


def log_odds(probability):
    probability = min(max(probability, 1e-9), 1 - 1e-9)
    return math.log(probability / (1 - probability))


def scored(client, rows):
    from gpt_tf.tasks.sentiment import classify

    results = classify(client, [r["text"] for r in rows], labels=list(LABELS))
    return [{**r, "log_odds": log_odds(x["probabilities"]["positive"])}
            for r, x in zip(rows, results)]


def summary(rows, offset=0.0):
    calls = [r["log_odds"] + offset > 0 for r in rows]
    return {"examples": len(rows),
            "accuracy": sum(c == (r["label"] == "positive") for c, r in zip(calls, rows))
            / len(rows),
            "positive_calls": sum(calls) / len(rows),
            "positive_gold": sum(r["label"] == "positive" for r in rows) / len(rows)}


def content_free_offset(client):
    from gpt_tf.task_data import formats

    odds = []
    for text in CONTENT_FREE:
        negative, positive = client.score(formats.sentiment_prompt(text), list(LABELS))
        odds.append(positive - negative)
    return -sum(odds) / len(odds), odds


def accuracy(calls, rows):
    return sum(c == r["label"] for c, r in zip(calls, rows)) / len(rows)


def calibrated_on_domain(client, held, pool, count, train, bag):
    """Offsets fitted on `count` texts of `pool`, applied to `held` (scored rows); `bag` is
    the bag-of-words baseline already trained on `train`."""
    from gpt_tf.tasks.sentiment import calibrate, classify

    chosen = evenly_spaced(pool, count)
    fitted = calibrate(client, [r["text"] for r in chosen], [r["label"] for r in chosen],
                       list(LABELS))
    after = classify(client, [r["text"] for r in held], list(LABELS), offsets=fitted["offsets"])
    texts, labels = [r["text"] for r in train], [r["label"] for r in train]
    more_bag = BagOfWordsLogisticRegression().fit(texts + [r["text"] for r in chosen],
                                                  labels + [r["label"] for r in chosen])
    held_texts = [r["text"] for r in held]
    return {"calibration_texts": len(chosen), "scored_texts": len(held),
            "offsets": fitted["offsets"],
            "model": summary(held),
            "model_calibrated": accuracy([x["label"] for x in after], held),
            "model_calibrated_positive_calls": sum(x["label"] == "positive" for x in after)
            / len(held),
            "bag_of_words": accuracy(bag.predict(held_texts), held),
            "bag_of_words_with_calibration_texts": accuracy(more_bag.predict(held_texts), held)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/multitask")
    parser.add_argument("--reviews", type=int, default=300,
                        help="whole reviews scored, evenly spaced (0: all 1,500)")
    parser.add_argument("--calibration", type=int, default=100,
                        help="labelled texts of each test domain the app calibrates on")
    parser.add_argument("--output", default=os.path.join("bench", "results",
                                                         "sentiment_bias.json"))
    args = parser.parse_args()

    from gpt_tf.clients.open import open_client

    started = time.time()
    client = open_client(args.model)
    train = load("sentiment-en-broad", "train")
    all_reviews = load("sentiment-en-reviews", "test")
    sets = {"validation (sentiment-en-broad)": load("sentiment-en-broad", "validation"),
            "sentiment-en test": load("sentiment-en", "test"),
            "whole reviews": evenly_spaced(all_reviews, args.reviews),
            "products": load("sentiment-en-products", "test")}
    scores = {}
    for name, rows in sets.items():
        begun = time.time()
        scores[name] = scored(client, rows)
        print(f"scored {len(rows)} texts of {name} in {time.time() - begun:.0f} s",
              file=sys.stderr)

    validation = scores["validation (sentiment-en-broad)"]
    bag = BagOfWordsLogisticRegression().fit([r["text"] for r in train],
                                             [r["label"] for r in train])
    bag_calls = bag.predict([r["text"] for r in validation])
    domains = collections.defaultdict(list)
    for row, call in zip(validation, bag_calls):
        domains[row["domain"]].append((row, call))
    by_domain = {}
    for domain, pairs in sorted(domains.items()):
        rows = [row for row, _ in pairs]
        by_domain[domain] = {**summary(rows),
                             "bag_of_words_accuracy": sum(c == r["label"] for r, c in pairs)
                             / len(pairs)}

    fitted = max(GRID, key=lambda offset: (summary(validation, offset)["accuracy"],
                                           -abs(offset)))
    free, free_odds = content_free_offset(client)
    offsets = {"none": 0.0, "validation": fitted, "content-free": free}
    calibrated = {}
    for name, rows in scores.items():
        oracle = max(GRID, key=lambda offset: (summary(rows, offset)["accuracy"], -abs(offset)))
        calibrated[name] = {label: {**summary(rows, offset), "offset": offset}
                            for label, offset in {**offsets, "oracle": oracle}.items()}

    products = scores["products"]
    every = max(2, len(products) // args.calibration)
    reviews_sampled = {r["text"] for r in sets["whole reviews"]}
    domain_runs = {
        "products": calibrated_on_domain(
            client, [r for i, r in enumerate(products) if i % every],
            [r for i, r in enumerate(products) if not i % every], args.calibration, train, bag),
        "whole reviews": calibrated_on_domain(
            client, scores["whole reviews"],
            [r for r in all_reviews if r["text"] not in reviews_sampled], args.calibration,
            train, bag)}

    print(f"\nValidation by domain ({args.model}; bag-of-words trained on "
          "sentiment-en-broad train)\n")
    print("| domain | texts | model acc | BoW acc | model positive calls | gold positive |")
    print("|---|---|---|---|---|---|")
    for domain, row in by_domain.items():
        print(f"| {domain} | {row['examples']} | {row['accuracy']:.3f} | "
              f"{row['bag_of_words_accuracy']:.3f} | {row['positive_calls']:.2f} | "
              f"{row['positive_gold']:.2f} |")
    print(f"\nOffsets on the log-odds of positive: validation-fitted {fitted:+.2f}, "
          f"content-free {free:+.3f} (log-odds {', '.join(f'{o:+.3f}' for o in free_odds)})\n")
    print("| set | texts | offset | accuracy | positive calls | gold positive |")
    print("|---|---|---|---|---|---|")
    for name, rows in calibrated.items():
        for label, row in rows.items():
            print(f"| {name} | {row['examples']} | {label} ({row['offset']:+.2f}) | "
                  f"{row['accuracy']:.3f} | {row['positive_calls']:.2f} | "
                  f"{row['positive_gold']:.2f} |")
    print("\nCalibrated on labelled texts of the test domain (`--calibrate`), scored on the "
          "set's other texts\n")
    print("| set | calibration texts | scored texts | offset (pos - neg) | model | model "
          "calibrated | positive calls | BoW | BoW + calibration texts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, row in domain_runs.items():
        gap = row["offsets"]["positive"] - row["offsets"]["negative"]
        print(f"| {name} | {row['calibration_texts']} | {row['scored_texts']} | {gap:+.2f} | "
              f"{row['model']['accuracy']:.3f} | {row['model_calibrated']:.3f} | "
              f"{row['model_calibrated_positive_calls']:.2f} | {row['bag_of_words']:.3f} | "
              f"{row['bag_of_words_with_calibration_texts']:.3f} |")
    write_json(args.output, {"model": args.model, "reviews": args.reviews,
                             "offsets": offsets, "content_free_log_odds": free_odds,
                             "validation_by_domain": by_domain, "sets": calibrated,
                             "calibrated_on_domain": domain_runs,
                             "seconds": round(time.time() - started, 1)})


if __name__ == "__main__":
    main()
