"""Paired bootstrap resampling: is a margin over a baseline more than sampling noise?

Every report metric is a function of a sum of per-example statistics:

| metric                     | statistics per example                            |
|----------------------------|---------------------------------------------------|
| perplexity, bits per byte  | negative log-likelihood (nats), tokens, bytes     |
| BLEU, chrF                 | sacreBLEU's sufficient statistics of the sentence |
| exact match, F1            | the example's score, 1                            |
| accuracy, macro-F1         | the example's cell of the confusion matrix        |

So one resample (n examples drawn with replacement) is scored by summing
their rows. The model and the baseline are scored on the same draws (paired),
and the 2.5th and 97.5th percentiles of the model's improvement over
`RESAMPLES` draws are its 95% interval (Koehn 2004; sacreBLEU's
`--paired-bs`). A margin is *significant* when the whole interval is an
improvement.
"""

import math

import numpy as np

RESAMPLES = 1000
SEED = 12345

_SACREBLEU = {}


def _sacrebleu_metric(metric):
    """The sacreBLEU metric object of `bleu` / `chrf` (defaults, as `metrics.bleu`/`chrf`)."""
    if metric not in _SACREBLEU:
        from sacrebleu.metrics import BLEU, CHRF

        _SACREBLEU[metric] = BLEU() if metric == "bleu" else CHRF()
    return _SACREBLEU[metric]


def lm_statistics(log_likelihoods, tokens, byte_counts):
    """Per-chunk `(nll, tokens, bytes)` rows for `perplexity` and `bits_per_byte`."""
    rows = np.array([[-float(ll), float(t), float(b)]
                     for ll, t, b in zip(log_likelihoods, tokens, byte_counts)])
    return {"perplexity": rows, "bits_per_byte": rows}


def translation_statistics(hypotheses, references):
    """sacreBLEU's per-sentence sufficient statistics for `bleu` and `chrf`."""
    return {name: np.array(_sacrebleu_metric(name)._extract_corpus_statistics(
        list(hypotheses), [list(references)]), dtype=np.float64) for name in ("bleu", "chrf")}


def squad_statistics(predictions, ground_truths):
    """Per-question `(score, 1)` rows for `exact_match` and `f1` (SQuAD v1.1)."""
    from gpt_tf.evaluation.metrics import squad_question_scores

    scores = np.array(squad_question_scores(predictions, ground_truths), np.float64)
    ones = np.ones((len(scores), 1))
    return {"exact_match": np.hstack([scores[:, :1], ones]),
            "f1": np.hstack([scores[:, 1:], ones])}


def classification_statistics(predicted, gold, labels):
    """Per-example one-hot confusion cells (gold-major) for `accuracy` and `macro_f1`."""
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    rows = np.zeros((len(gold), k * k))
    for n, (p, g) in enumerate(zip(predicted, gold)):
        rows[n, index[g] * k + index[p]] = 1.0
    return {"accuracy": rows, "macro_f1": rows}


def score(metric, summed):
    """The value of `metric` from its statistics summed over a set of examples."""
    if metric == "perplexity":
        return math.exp(min(summed[0] / summed[1], 700.0))
    if metric == "bits_per_byte":
        return summed[0] / math.log(2) / summed[2]
    if metric in ("exact_match", "f1"):
        return 100.0 * summed[0] / summed[1]
    if metric in ("accuracy", "macro_f1"):
        k = int(round(math.sqrt(len(summed))))
        matrix = np.asarray(summed).reshape(k, k)
        if metric == "accuracy":
            return float(np.trace(matrix) / matrix.sum())
        from gpt_tf.evaluation.metrics import macro_f1_from_matrix

        return float(macro_f1_from_matrix(matrix))
    if metric in ("bleu", "chrf"):
        stats = [int(round(v)) for v in summed]
        return float(_sacrebleu_metric(metric)._compute_score_from_stats(stats).score)
    raise ValueError(f"no resampling rule for metric '{metric}'")


def verdict(ci95):
    """`better` / `worse` when the whole interval is on one side of 0, else `within noise`."""
    low, high = ci95
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def paired_bootstrap(metric, model_rows, baseline_rows, higher_is_better,
                     resamples=RESAMPLES, seed=SEED):
    """The model's improvement over the baseline on `metric`, with its 95% interval.

    Args:
        metric: a report metric name (see `score`).
        model_rows, baseline_rows: per-example statistics of the same examples,
            in the same order.
        higher_is_better: the metric's direction; the improvement is
            `model - baseline` when True, `baseline - model` otherwise.

    Returns:
        `{"improvement", "ci95": [low, high], "significant", "verdict", "resamples"}`;
        `significant` is True when `low > 0` (significantly *better*: a margin that
        is significantly worse is not significant); `verdict` is `better`, `worse`
        or `within noise` (see `verdict`).
    """
    model_rows, baseline_rows = np.asarray(model_rows), np.asarray(baseline_rows)
    if len(model_rows) != len(baseline_rows) or not len(model_rows):
        raise ValueError(f"paired resampling needs the same examples: {len(model_rows)} "
                         f"model rows, {len(baseline_rows)} baseline rows")
    sign = 1.0 if higher_is_better else -1.0

    def improvement(model_sum, baseline_sum):
        return sign * (score(metric, model_sum) - score(metric, baseline_sum))

    rng = np.random.default_rng(seed)
    n = len(model_rows)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, n, size=n)
        draws.append(improvement(model_rows[idx].sum(0), baseline_rows[idx].sum(0)))
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"improvement": improvement(model_rows.sum(0), baseline_rows.sum(0)),
            "ci95": [float(low), float(high)], "significant": bool(low > 0),
            "verdict": verdict([low, high]), "resamples": resamples}
