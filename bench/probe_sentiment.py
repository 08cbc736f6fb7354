"""Sentiment: can the shipped GPT's features beat the bag-of-words baseline?

    python bench/probe_sentiment.py [--run models/multitask] [--data sentiment-en]

Side by side on the same validation and test sentences:
- `app`: what `apps.sentiment` does (each label's log-likelihood after the
  fine-tuned prompt, `gpt_tf.tasks.sentiment.classify`);
- linear probes (softmax regression, numpy, L2 chosen on validation) on the
  model's final hidden states: the state that predicts the label (`last`),
  the mean over the text's tokens (`mean`), and both;
- the report's baselines: bag-of-words logistic regression and majority class.

The test column's margin over the bag-of-words baseline comes with its 95%
paired-bootstrap interval. Writes bench/results/probe_sentiment.json.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from common import write_json  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "probe_sentiment.json")
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


SPLITS = ("validation", "test")
BOW = "bag-of-words LR (baseline)"


def load_with_baselines(data):
    """`(labels, texts, gold, predictions)` of a sentiment data set, with both baselines' predictions.

    `texts` and `gold` map `train`, `validation`, `test` to lists;
    `predictions` maps a method name to `{split: labels}` (the baselines so far).
    """
    from gpt_tf.evaluation import baselines
    from gpt_tf.evaluation.report import load_task_data

    splits = {s: load_task_data("sentiment", data, s, limit=0) for s in SPLITS}
    train = splits["test"]["train"]
    labels = sorted({e.label for e in train})
    texts = {"train": [e.text for e in train],
             **{s: [e.text for e in d["examples"]] for s, d in splits.items()}}
    gold = {"train": [e.label for e in train],
            **{s: [e.label for e in d["examples"]] for s, d in splits.items()}}
    bow = baselines.BagOfWordsLogisticRegression().fit(texts["train"], gold["train"])
    majority = baselines.MajorityClass().fit(gold["train"])
    predictions = {BOW: {s: bow.predict(texts[s]) for s in SPLITS},
                   "majority class (baseline)": {s: majority.predict(texts[s]) for s in SPLITS}}
    return labels, texts, gold, predictions


def compare_rows(predictions, gold, labels):
    """One row per method: accuracy and macro-F1 per split, test margin over BoW with its 95% CI."""
    from gpt_tf.evaluation import metrics, significance

    bow_stats = significance.classification_statistics(
        predictions[BOW]["test"], gold["test"], labels)["accuracy"]
    rows = []
    for method, by_split in predictions.items():
        row = {"method": method}
        for s in SPLITS:
            row[f"{s}_accuracy"] = metrics.accuracy(by_split[s], gold[s])
            row[f"{s}_macro_f1"] = metrics.macro_f1(by_split[s], gold[s], labels)
        if "(baseline)" not in method:
            stats = significance.classification_statistics(by_split["test"], gold["test"], labels)
            row["test_margin_over_bow"] = significance.paired_bootstrap(
                "accuracy", stats["accuracy"], bow_stats, higher_is_better=True)
        rows.append(row)
    return rows


def print_rows(rows):
    print(f"| {'method':42s} | val acc | test acc | test macro-F1 | test margin over BoW [95%] |")
    print("|" + "---|" * 5)
    for row in rows:
        margin = row.get("test_margin_over_bow")
        text = (f"{margin['improvement']:+.4f} [{margin['ci95'][0]:+.4f}, {margin['ci95'][1]:+.4f}]"
                if margin else "")
        print(f"| {row['method']:42s} | {row['validation_accuracy']:.4f} | "
              f"{row['test_accuracy']:.4f} | {row['test_macro_f1']:.4f} | {text} |")


def hidden_features(model, tokenizer, texts, sequence_length, batch_size=32):
    """`(last, mean)`: final hidden state at the prompt's last token, and its mean over the text."""
    import keras
    import tensorflow as tf

    from gpt_tf.task_data import formats

    backbone = keras.Model(model.backbone.input, model.backbone.output)
    forward = tf.function(lambda ids: backbone(ids, training=False), jit_compile=True,
                          reduce_retracing=True)
    eot = tokenizer.end_of_text_id
    last, mean = [], []
    for first in range(0, len(texts), batch_size):
        rows = [([eot] + tokenizer.encode(formats.sentiment_prompt(t)))[-sequence_length:]
                for t in texts[first:first + batch_size]]
        width = -(-max(len(r) for r in rows) // 32) * 32
        ids = np.zeros((len(rows), width), np.int32)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = row
        hidden = forward(tf.constant(ids)).numpy()
        for i, row in enumerate(rows):
            last.append(hidden[i, len(row) - 1])
            mean.append(hidden[i, 1:len(row) - 1].mean(axis=0))
    return np.array(last), np.array(mean)


class SoftmaxProbe:
    """Softmax regression on standardized dense features (full-batch Adam, L2 on weights)."""

    def __init__(self, l2, steps=500, learning_rate=0.05):
        self.l2, self.steps, self.learning_rate = l2, steps, learning_rate

    def fit(self, x, y, classes):
        from gpt_tf.evaluation.baselines import Adam

        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mu) / self.sd
        onehot = np.eye(classes)[y]
        params = [np.zeros((x.shape[1], classes)), np.zeros(classes)]
        optimizers = [Adam(p.shape, self.learning_rate) for p in params]
        for _ in range(self.steps):
            z = xs @ params[0] + params[1]
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = (p - onehot) / len(x)
            grads = [xs.T @ g + self.l2 * params[0], g.sum(0)]
            for param, grad, adam in zip(params, grads, optimizers):
                param -= adam.update(grad)
        self.params = params
        return self

    def predict(self, x):
        return (((x - self.mu) / self.sd) @ self.params[0] + self.params[1]).argmax(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--data", default="sentiment-en")
    args = parser.parse_args(argv)

    from gpt_tf.clients import open_client
    from gpt_tf.tasks.sentiment import classify
    from gpt_tf.training import load_model

    started = time.perf_counter()
    labels, texts, gold, predictions = load_with_baselines(args.data)
    y = {s: np.array([labels.index(g) for g in gold[s]]) for s in gold}

    client = open_client(args.run)
    predictions["app: label log-likelihood"] = {
        s: [r["label"] for r in classify(client, texts[s], labels=labels)] for s in SPLITS}
    client.close()

    model, tokenizer, config = load_model(args.run)
    features = {s: hidden_features(model, tokenizer, texts[s], config.model.sequence_length)
                for s in texts}
    chosen = {}
    for name, pick in (("last", lambda f: f[0]), ("mean", lambda f: f[1]),
                       ("last+mean", lambda f: np.concatenate(f, axis=1))):
        x = {s: pick(features[s]) for s in features}
        probes = {l2: SoftmaxProbe(l2).fit(x["train"], y["train"], len(labels)) for l2 in L2_GRID}
        validation = {l2: (p.predict(x["validation"]) == y["validation"]).mean()
                      for l2, p in probes.items()}
        best = max(L2_GRID, key=lambda l2: (validation[l2], -l2))
        chosen[name] = {"l2": best, "validation_by_l2": validation}
        predictions[f"probe on hidden states: {name}"] = {
            s: [labels[i] for i in probes[best].predict(x[s])] for s in SPLITS}

    rows = compare_rows(predictions, gold, labels)
    print(f"\n{args.run} on {args.data}: {len(texts['train'])} train, "
          f"{len(texts['validation'])} validation, {len(texts['test'])} test sentences\n")
    print_rows(rows)
    result = {"run": args.run, "data": args.data, "labels": labels, "rows": rows,
              "probe_l2": chosen, "seconds": round(time.perf_counter() - started, 1)}
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
