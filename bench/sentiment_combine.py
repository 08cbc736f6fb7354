"""Sentiment: do ensembles or weight averages of the fine-tuned runs beat bag-of-words?

    python bench/sentiment_combine.py [--work runs/bench-sentiment] [--long runs/bench-sentiment-long]

Combines the runs that `bench/sentiment_finetune.py` trained (it must have run
first, including the 750-step `reviews` run of docs/OPTIMISATION.md round 6),
with no more training, and scores each like the app on the same validation and
test sentences as both baselines:
- every member alone (the app's label scoring);
- `ensemble`: the mean of the members' label probabilities (costs one model per
  member at inference);
- `soup`: one model whose weights are the mean of the members' weights (all
  members start from the shipped weights, so they may share a basin; costs
  nothing at inference).

The test margin over the bag-of-words baseline comes with its 95% paired
bootstrap interval. About 4 minutes on 2 cores. Writes
bench/results/sentiment_combine.json.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from common import write_json  # noqa: E402
from probe_sentiment import SPLITS, compare_rows, load_with_baselines, print_rows  # noqa: E402

RESULTS = os.path.join(HERE, "results", "sentiment_combine.json")
FINE_TUNED = ("continue", "tweets", "reviews", "reviews750")
COMBINATIONS = (
    ("ensemble", ("continue", "tweets", "reviews", "reviews750")),
    ("ensemble", ("continue", "reviews", "reviews750")),
    ("ensemble", ("reviews", "reviews750")),
    ("soup", ("continue", "tweets", "reviews")),
    ("soup", ("continue", "tweets", "reviews", "reviews750")),
    ("soup", ("shipped", "continue", "tweets", "reviews", "reviews750")),
)


def label_probabilities(target, texts, labels):
    """`{split: (n, labels) array}` of the app's label probabilities on `target`."""
    from gpt_tf.clients import open_client
    from gpt_tf.tasks.sentiment import classify

    client = open_client(target)
    try:
        return {s: np.array([[r["probabilities"][label] for label in labels]
                             for r in classify(client, texts[s], labels=labels)])
                for s in SPLITS}
    finally:
        client.close()


def write_soup(runs, members, directory):
    """A run directory at `directory` whose model is the mean of the members' weights."""
    from gpt_tf.training import load_model

    shutil.copytree(runs[members[0]], directory,
                    ignore=shutil.ignore_patterns("checkpoints", "best", "logs"))
    models = [load_model(runs[m])[0] for m in members]
    weights = [m.get_weights() for m in models]
    models[0].set_weights([np.mean(ws, axis=0) for ws in zip(*weights)])
    models[0].save(os.path.join(directory, "model.keras"))
    return directory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask", help="the shipped model")
    parser.add_argument("--work", default="runs/bench-sentiment")
    parser.add_argument("--long", default="runs/bench-sentiment-long",
                        help="where round 6's 750-step `reviews` run is")
    args = parser.parse_args(argv)
    runs = {"shipped": args.run, "continue": os.path.join(args.work, "continue"),
            "tweets": os.path.join(args.work, "tweets"),
            "reviews": os.path.join(args.work, "reviews"),
            "reviews750": os.path.join(args.long, "reviews")}
    missing = [p for p in runs.values() if not os.path.isfile(os.path.join(p, "model.keras"))]
    if missing:
        parser.error(f"no trained model in {', '.join(missing)}: run bench/sentiment_finetune.py "
                     "first (docs/OPTIMISATION.md rounds 5 and 6)")

    started = time.perf_counter()
    labels, texts, gold, predictions = load_with_baselines("sentiment-en")
    names = np.array(labels)
    probabilities = {name: label_probabilities(path, texts, labels) for name, path in runs.items()}

    def add(method, by_split):
        predictions[method] = {s: list(names[by_split[s].argmax(axis=1)]) for s in SPLITS}

    for name in runs:
        add(name, probabilities[name])
    scratch = tempfile.mkdtemp(prefix="gpt_tf_soup_")
    try:
        for kind, members in COMBINATIONS:
            method = f"{kind}: {' + '.join(members)}"
            if kind == "ensemble":
                add(method, {s: np.mean([probabilities[m][s] for m in members], axis=0)
                             for s in SPLITS})
            else:
                soup = write_soup(runs, members, os.path.join(scratch, str(len(predictions))))
                add(method, label_probabilities(soup, texts, labels))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    rows = compare_rows(predictions, gold, labels)
    print()
    print_rows(rows)
    write_json(RESULTS, {"runs": runs, "labels": labels, "rows": rows,
                         "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
