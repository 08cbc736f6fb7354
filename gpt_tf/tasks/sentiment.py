"""Sentiment over any client: score each label after `<|text|>{text}<|label|>`.

The label words' log-likelihoods are turned into probabilities with a
softmax; texts longer than the window are cut into consecutive chunks and
the chunks' probabilities averaged.
"""

import math

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


def classify(client, texts, labels=None):
    """Labels texts.

    Args:
        client: a `gpt_tf.clients.Client`.
        texts: a string or a list of strings (none empty).
        labels: label words to choose from (default: the model's labels).

    Returns:
        One dict per text: `label`, `probabilities` (`{label: p}`, summing
        to 1), `chunks` (how many pieces the text was scored in).
    """
    cleaned = formats.check_user_texts(texts)
    labels = model_labels(client, labels)
    longest = max(client.count_tokens(labels))
    budget = sentiment_text_budget(client.sequence_length, longest)
    if budget < 4:
        raise UserError(f"the labels are too long for the {client.sequence_length}-token window")
    results = []
    for clean in cleaned:
        chunks = text_windows(clean, client.count_tokens, budget)
        total = [0.0] * len(labels)
        for start, end in chunks:
            scores = client.score(formats.sentiment_prompt(clean[start:end]), labels)
            total = [t + p for t, p in zip(total, _softmax(scores))]
        probabilities = {label: t / len(chunks) for label, t in zip(labels, total)}
        results.append({"label": max(probabilities, key=probabilities.get),
                        "probabilities": probabilities, "chunks": len(chunks)})
    return results
