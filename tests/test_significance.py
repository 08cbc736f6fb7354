"""Paired bootstrap of the report's margins (no model; numpy and sacreBLEU only)."""

import random

import numpy as np
import pytest

from gpt_tf.evaluation import metrics, significance

HYPOTHESES = ["le chat est sur le tapis", "il pleut beaucoup", "dieu vit la lumière",
              "la nuit tombe vite", "une maison"]
REFERENCES = ["le chat est sur le tapis", "il pleut fort", "et dieu vit que la lumière",
              "la nuit tombe", "une grande maison blanche"]


def test_summed_statistics_reproduce_every_metric():
    rng = random.Random(0)
    labels = ["negative", "neutral", "positive"]
    gold = [rng.choice(labels) for _ in range(60)]
    predicted = [g if rng.random() < 0.6 else rng.choice(labels) for g in gold]
    stats = significance.classification_statistics(predicted, gold, labels)
    assert significance.score("accuracy", stats["accuracy"].sum(0)) == pytest.approx(
        metrics.accuracy(predicted, gold))
    assert significance.score("macro_f1", stats["macro_f1"].sum(0)) == pytest.approx(
        metrics.macro_f1(predicted, gold, labels))

    answers = ["Frodo", "the ring", "Sam", "Mordor"]
    truths = [["Frodo"], ["a ring", "ring"], ["Samwise"], ["Mordor", "Mount Doom"]]
    stats = significance.squad_statistics(answers, truths)
    expected = metrics.squad_scores(answers, truths)
    for metric in ("exact_match", "f1"):
        assert significance.score(metric, stats[metric].sum(0)) == pytest.approx(expected[metric])

    stats = significance.translation_statistics(HYPOTHESES, REFERENCES)
    assert significance.score("bleu", stats["bleu"].sum(0)) == pytest.approx(
        metrics.bleu(HYPOTHESES, REFERENCES)["score"])
    assert significance.score("chrf", stats["chrf"].sum(0)) == pytest.approx(
        metrics.chrf(HYPOTHESES, REFERENCES)["score"])

    log_likelihoods, tokens, sizes = [-30.0, -12.5, -7.0], [10, 5, 3], [41, 20, 13]
    stats = significance.lm_statistics(log_likelihoods, tokens, sizes)
    assert significance.score("perplexity", stats["perplexity"].sum(0)) == pytest.approx(
        metrics.perplexity(49.5, 18))
    assert significance.score("bits_per_byte", stats["bits_per_byte"].sum(0)) == pytest.approx(
        metrics.bits_per_byte(49.5, 74))


def _accuracy_rows(correct):
    # Two labels; a wrong answer is the other label.
    gold = ["a"] * len(correct)
    predicted = ["a" if c else "b" for c in correct]
    return significance.classification_statistics(predicted, gold, ["a", "b"])["accuracy"]


def test_the_same_predictions_are_no_improvement():
    rows = _accuracy_rows([i % 3 == 0 for i in range(90)])
    result = significance.paired_bootstrap("accuracy", rows, rows, higher_is_better=True)
    assert result["improvement"] == 0.0 and result["ci95"] == [0.0, 0.0]
    assert not result["significant"] and result["resamples"] == significance.RESAMPLES


def test_a_clear_win_is_significant_and_a_clear_loss_is_not():
    rng = np.random.default_rng(1)
    model = _accuracy_rows(rng.random(200) < 0.85)
    baseline = _accuracy_rows(rng.random(200) < 0.55)
    win = significance.paired_bootstrap("accuracy", model, baseline, higher_is_better=True)
    assert win["improvement"] > 0.2 and win["significant"] and win["verdict"] == "better"
    assert win["ci95"][0] > 0 and win["ci95"][0] < win["improvement"] < win["ci95"][1]
    loss = significance.paired_bootstrap("accuracy", baseline, model, higher_is_better=True)
    assert loss["improvement"] == pytest.approx(-win["improvement"])
    # `significant` means significantly better; the verdict tells a loss from noise
    assert loss["ci95"][1] < 0 and not loss["significant"] and loss["verdict"] == "worse"


def test_a_one_question_margin_is_within_noise():
    rng = np.random.default_rng(2)
    base = rng.random(200) < 0.22
    better = base.copy()
    better[np.flatnonzero(~base)[:2]] = True  # two more right answers out of 200
    result = significance.paired_bootstrap(
        "exact_match", significance.squad_statistics(
            ["x" if b else "y" for b in better], [["x"]] * 200)["exact_match"],
        significance.squad_statistics(
            ["x" if b else "y" for b in base], [["x"]] * 200)["exact_match"],
        higher_is_better=True)
    assert result["improvement"] == pytest.approx(1.0)
    assert result["ci95"][0] <= 0 < result["ci95"][1] and not result["significant"]
    assert result["verdict"] == "within noise"


def test_lower_is_better_counts_a_lower_perplexity_as_the_improvement():
    tokens = [50] * 40
    model = significance.lm_statistics([-100.0] * 40, tokens, [200] * 40)
    baseline = significance.lm_statistics([-250.0] * 40, tokens, [200] * 40)
    result = significance.paired_bootstrap("perplexity", model["perplexity"],
                                           baseline["perplexity"], higher_is_better=False)
    assert result["improvement"] == pytest.approx(np.exp(5.0) - np.exp(2.0))
    assert result["significant"]


def test_unpaired_rows_are_refused():
    with pytest.raises(ValueError, match="same examples"):
        significance.paired_bootstrap("accuracy", _accuracy_rows([True] * 3),
                                      _accuracy_rows([True] * 4), higher_is_better=True)
