"""Sentiment over any client: score each label after `<|text|>{text}<|label|>`.

The label words' log-likelihoods are turned into probabilities with a
softmax; texts longer than the window are cut into consecutive chunks and
the chunks' probabilities averaged.

Label offsets move the decision boundary for one domain: `calibrate` fits an
offset per label on labelled texts of that domain (the model's scores stay
as they are), and `classify(..., offsets=...)` adds them to every chunk's
label log-likelihoods before the softmax. Measured on product snippets, the
shipped model calls too many texts negative, and about two thirds of its gap
to bag-of-words is that lean (`bench/sentiment_bias.py`): an offset removes
that part of its errors; the rest is how it ranks the texts.
"""

import math

import numpy as np

from gpt_tf import task_table
from gpt_tf.errors import UserError
from gpt_tf.task_data import formats
from gpt_tf.task_data.examples import sentiment_text_budget
from gpt_tf.task_data.windows import text_windows
from gpt_tf.validation import check_texts

DEFAULT_LABELS = ("negative", "positive")


def model_labels(client, labels=None):
    """The labels to score: the argument, else the model's card, else negative/positive."""
    if isinstance(labels, str):
        raise UserError(f"labels must be a list of label words, not the string {labels!r}; "
                        "e.g. labels=['negative', 'positive']")
    if labels is not None:
        labels = check_texts(labels, "labels")
    if labels:  # an empty list means the default, as None does
        if not all(label.strip() for label in labels):
            raise UserError("labels must not be empty or blank")
        if len(set(labels)) < 2:
            raise UserError("give at least two distinct labels")
        return labels
    card = client.task_card or {}
    tasks = card.get("tasks", {})
    if card and task_table.SENTIMENT not in tasks and not card.get("partial"):
        raise UserError(f"{client.describe()} was not fine-tuned for sentiment (its tasks: "
                        f"{', '.join(tasks) or 'none'}); fine-tune one with "
                        "`gpt-tf finetune --task sentiment=sentiment-en`")
    found = (tasks.get(task_table.SENTIMENT) or {}).get("labels")
    return list(found) if found else list(DEFAULT_LABELS)


def _softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _chunk_scores(client, cleaned, labels):
    """Per text, the label log-likelihoods of each of its chunks (a list of lists)."""
    longest = max(client.count_tokens(labels))
    budget = sentiment_text_budget(client.sequence_length, longest)
    if budget < 4:
        raise UserError(f"the labels are too long for the {client.sequence_length}-token window")
    return [[client.score(formats.sentiment_prompt(clean[start:end]), labels)
             for start, end in text_windows(clean, client.count_tokens, budget)]
            for clean in cleaned]


def check_offsets(offsets, labels):
    """`offsets` ({label: number}, None or {}) as a list in `labels` order (missing: 0)."""
    if offsets is None:
        return [0.0] * len(labels)
    if not isinstance(offsets, dict):
        raise UserError(f"offsets must be a mapping of label to number, e.g. "
                        f"{{'positive': 0.5}}, not {type(offsets).__name__}")
    unknown = sorted(set(offsets) - set(labels), key=str)
    if unknown:
        raise UserError(f"offsets name labels the model does not score: "
                        f"{', '.join(map(repr, unknown))} (its labels: {', '.join(labels)}); "
                        "calibrate again for these labels")
    values = []
    for label in labels:
        value = offsets.get(label, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise UserError(f"the offset of label {label!r} must be a finite number, "
                            f"not {value!r}")
        values.append(float(value))
    return values


def _probabilities(chunks, offsets):
    """The chunks' softmax probabilities (label scores + offsets), averaged."""
    total = [0.0] * len(offsets)
    for scores in chunks:
        shifted = [s + o for s, o in zip(scores, offsets)]
        total = [t + p for t, p in zip(total, _softmax(shifted))]
    return [t / len(chunks) for t in total]


def classify(client, texts, labels=None, offsets=None):
    """Labels texts.

    Args:
        client: a `gpt_tf.clients.Client`.
        texts: a string or a list of strings (none empty).
        labels: label words to choose from (default: the model's labels).
        offsets: optional `{label: offset}` added to each label's
            log-likelihood before the softmax (`calibrate` fits them; a
            label left out gets 0).

    Returns:
        One dict per text: `label`, `probabilities` (`{label: p}`, summing
        to 1), `chunks` (how many pieces the text was scored in).
    """
    cleaned = formats.check_user_texts(texts)
    labels = model_labels(client, labels)
    shift = check_offsets(offsets, labels)
    results = []
    for chunks in _chunk_scores(client, cleaned, labels):
        probabilities = dict(zip(labels, _probabilities(chunks, shift)))
        results.append({"label": max(probabilities, key=probabilities.get),
                        "probabilities": probabilities, "chunks": len(chunks)})
    return results


def calibrate(client, texts, gold, labels=None, l2=0.01, steps=2000):
    """Fits label offsets on labelled texts of one domain.

    The offsets maximise the mean log-probability `classify` gives the gold
    labels (full-batch gradient ascent with an L2 pull towards 0, which
    keeps a few examples from pushing an offset far), then are centred to
    sum to 0 (only their differences matter).

    Args:
        client: a `gpt_tf.clients.Client`.
        texts: labelled texts of the domain (a list of strings, none empty).
        gold: their labels, each one of `labels`.
        labels: label words (default: the model's labels).
        l2: strength of the pull towards 0.
        steps: at most this many gradient steps (it stops once the gradient
            is below 1e-7).

    Returns:
        Dict: `offsets` (`{label: float}`, for `classify`), `examples`, and
        `accuracy` / `log_loss` `{"before": ..., "after": ...}` on these
        texts (in-sample: measure on other texts of the domain).

    Raises:
        UserError: no texts, a count mismatch, an unknown gold label or
            fewer than two distinct gold labels.
    """
    if isinstance(texts, str):
        raise UserError("calibrate needs a list of labelled texts, not one string")
    cleaned = formats.check_user_texts(list(texts))
    labels = model_labels(client, labels)
    gold = list(gold)
    if len(gold) != len(cleaned):
        raise UserError(f"calibrate got {len(cleaned)} texts but {len(gold)} labels: give "
                        "one label per text")
    unknown = sorted({str(g) for g in gold} - set(labels))
    if unknown:
        raise UserError(f"calibration labels {', '.join(map(repr, unknown))} are not among "
                        f"the model's labels ({', '.join(labels)}); relabel those texts")
    if len({str(g) for g in gold}) < 2:
        raise UserError("calibration needs texts of at least two different labels (one label "
                        "alone would only push every text towards it)")
    targets = np.asarray([labels.index(str(g)) for g in gold])
    offsets, before, after = _fit_offsets(_chunk_scores(client, cleaned, labels), targets,
                                          len(labels), l2, steps)
    rows = np.arange(len(targets))

    def summary(text_p):
        accuracy = float(np.mean(text_p.argmax(axis=1) == targets))
        loss = float(-np.mean(np.log(np.maximum(text_p[rows, targets], 1e-12))))
        return accuracy, loss

    (acc_before, loss_before), (acc_after, loss_after) = summary(before), summary(after)
    return {"offsets": {label: float(o) for label, o in zip(labels, offsets)},
            "examples": len(cleaned),
            "accuracy": {"before": acc_before, "after": acc_after},
            "log_loss": {"before": loss_before, "after": loss_after}}


def _fit_offsets(chunks, targets, num_labels, l2, steps):
    """Offsets maximising the mean log-probability of `targets` under `_probabilities`.

    Returns:
        `(offsets, probabilities before, probabilities after)`, the
        probabilities as `(texts, labels)` arrays.
    """
    # Chunk-major arrays: probabilities of text i = mean over its chunks.
    owner = np.asarray([i for i, text in enumerate(chunks) for _ in text])
    scores = np.asarray([s for text in chunks for s in text], np.float64)
    counts = np.bincount(owner, minlength=len(chunks)).astype(np.float64)

    def probabilities(offsets):
        shifted = scores + offsets
        chunk_p = np.exp(shifted - shifted.max(axis=1, keepdims=True))
        chunk_p /= chunk_p.sum(axis=1, keepdims=True)
        text_p = np.zeros((len(chunks), num_labels))
        np.add.at(text_p, owner, chunk_p)
        return chunk_p, text_p / counts[:, None]

    offsets = np.zeros(num_labels)
    onehot = np.eye(num_labels)[targets[owner]]
    for _ in range(steps):
        chunk_p, text_p = probabilities(offsets)
        # d log p(gold)/d offsets for a mean of softmaxes: the chunks' gradients
        # weighted by their share of the text's gold probability.
        gold_chunk = chunk_p[np.arange(len(owner)), targets[owner]]
        weights = gold_chunk / (counts[owner] * text_p[owner, targets[owner]])
        gradient = (weights[:, None] * (onehot - chunk_p)).sum(axis=0) / len(chunks)
        step = gradient - l2 * offsets
        if np.abs(step).max() < 1e-7:
            break
        offsets += step
    offsets -= offsets.mean()
    return offsets, probabilities(np.zeros(num_labels))[1], probabilities(offsets)[1]
