"""Task metrics: sacreBLEU BLEU/chrF, SQuAD v1.1 EM/F1, classification, perplexity, bits per byte.

The SQuAD functions reproduce the official v1.1 evaluation script
(`evaluate-v1.1.py`): lower case, punctuation and the articles a/an/the
removed, whitespace collapsed; F1 over the bag of remaining tokens; each
prediction takes its best score over the accepted answers; results in percent.
"""

import collections
import math
import re
import string

from gpt_tf.errors import UserError

# ---- translation ---------------------------------------------------------------------------


def bleu(hypotheses, references):
    """Corpus BLEU with sacreBLEU's defaults (13a tokenizer, exp smoothing).

    Args:
        hypotheses: list of strings.
        references: list of strings (one reference per hypothesis).

    Returns:
        `{"score": float, "signature": str, "precisions": [...], "brevity_penalty": float}`.
    """
    from sacrebleu.metrics import BLEU

    _check_parallel(hypotheses, references)
    metric = BLEU()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return {"score": float(result.score), "signature": str(metric.get_signature()),
            "precisions": [float(p) for p in result.precisions],
            "brevity_penalty": float(result.bp)}


def chrf(hypotheses, references):
    """Corpus chrF (sacreBLEU, character 6-grams, beta 2); `{"score", "signature"}`."""
    from sacrebleu.metrics import CHRF

    _check_parallel(hypotheses, references)
    metric = CHRF()
    result = metric.corpus_score(list(hypotheses), [list(references)])
    return {"score": float(result.score), "signature": str(metric.get_signature())}


def _check_parallel(hypotheses, references):
    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise UserError("no sentences to score")


# ---- SQuAD v1.1 ----------------------------------------------------------------------------


def normalize_answer(text):
    """SQuAD v1.1 normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_f1(prediction, ground_truth):
    """Token F1 between two answers after `normalize_answer` (0..1)."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction, ground_truth):
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def squad_scores(predictions, ground_truths):
    """SQuAD v1.1 exact match and F1 in percent.

    Args:
        predictions: list of answer strings.
        ground_truths: list of lists of accepted answers (one list per prediction).

    Returns:
        `{"exact_match": float, "f1": float, "count": int}`.
    """
    per_question = squad_question_scores(predictions, ground_truths)
    n = len(per_question)
    return {"exact_match": 100.0 * sum(em for em, _ in per_question) / n,
            "f1": 100.0 * sum(f1 for _, f1 in per_question) / n, "count": n}


def squad_question_scores(predictions, ground_truths):
    """`(exact match, F1)` of each question (0..1), best over its accepted answers."""
    if len(predictions) != len(ground_truths):
        raise UserError(f"{len(predictions)} predictions but {len(ground_truths)} answer lists")
    if not predictions:
        raise UserError("no questions to score")
    scores = []
    for prediction, truths in zip(predictions, ground_truths):
        if isinstance(truths, str):
            truths = [truths]
        scores.append((max(squad_exact_match(prediction, t) for t in truths),
                       max(squad_f1(prediction, t) for t in truths)))
    return scores


# ---- classification ------------------------------------------------------------------------


def accuracy(predicted, gold):
    if len(predicted) != len(gold) or not gold:
        raise UserError("accuracy needs as many predictions as gold labels (and at least one)")
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def confusion_matrix(predicted, gold, labels=None):
    """`(labels, matrix)`: `matrix[i][j]` counts gold `labels[i]` predicted as `labels[j]`."""
    labels = list(labels) if labels else sorted(set(gold) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for p, g in zip(predicted, gold):
        if p not in index or g not in index:
            raise UserError(f"label {p if p not in index else g!r} is not among {labels}")
        matrix[index[g]][index[p]] += 1
    return labels, matrix


def macro_f1(predicted, gold, labels=None):
    """Unweighted mean over labels of per-label F1 (a label never predicted nor gold counts 0)."""
    return macro_f1_from_matrix(confusion_matrix(predicted, gold, labels)[1])


def macro_f1_from_matrix(matrix):
    """Macro-F1 of a confusion matrix (`matrix[gold][predicted]`, nested lists or an array)."""
    scores = []
    for i in range(len(matrix)):
        true_positive = matrix[i][i]
        predicted_i = sum(row[i] for row in matrix)
        gold_i = sum(matrix[i])
        if true_positive == 0:
            scores.append(0.0)
            continue
        precision, recall = true_positive / predicted_i, true_positive / gold_i
        scores.append(2 * precision * recall / (precision + recall))
    return sum(scores) / len(scores)


# ---- language modelling --------------------------------------------------------------------


def perplexity(total_nll_nats, tokens):
    """`exp(total negative log-likelihood / tokens)`."""
    if tokens <= 0:
        raise UserError("no tokens scored")
    return math.exp(min(total_nll_nats / tokens, 700.0))


def bits_per_byte(total_nll_nats, total_bytes):
    """Total negative log-likelihood (nats) over the text's UTF-8 bytes, in bits per byte.

    Does not depend on the tokenizer, so models with different vocabularies compare.
    """
    if total_bytes <= 0:
        raise UserError("no bytes scored")
    return total_nll_nats / math.log(2) / total_bytes
