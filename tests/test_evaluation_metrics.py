"""Metrics and baselines on hand-checked examples."""

import math

import pytest

from gpt_tf.errors import UserError
from gpt_tf.evaluation import baselines, metrics


@pytest.mark.parametrize("text,expected", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("An apple a day", "apple day"),
    ("U.S.A.", "usa"),
    ("theatre", "theatre"),  # articles only as whole words
    ("  ", ""),
])
def test_squad_normalisation_matches_the_official_script(text, expected):
    assert metrics.normalize_answer(text) == expected


def test_squad_exact_match_and_f1_by_hand():
    # "cat sat" vs "cat sat down": precision 1, recall 2/3 -> F1 0.8.
    assert metrics.squad_f1("the cat sat", "a cat sat down") == pytest.approx(0.8)
    assert metrics.squad_exact_match("The Cat sat.", "cat sat") == 1.0
    assert metrics.squad_f1("", "cat") == 0.0
    scores = metrics.squad_scores(["Denver Broncos", "Santa Clara"],
                                  [["Denver Broncos", "The Denver Broncos"], ["Levi's Stadium"]])
    assert scores == {"exact_match": 50.0, "f1": 50.0, "count": 2}
    # The best of several accepted answers counts.
    assert metrics.squad_scores(["Clara"], [["Santa Clara", "x"]])["f1"] == pytest.approx(200 / 3)
    with pytest.raises(UserError):
        metrics.squad_scores(["a"], [])


def test_bleu_and_chrf_equal_sacrebleu_and_carry_signatures():
    import sacrebleu

    hypotheses = ["the cat sat on the mat", "there is a dog in the garden", "hello world"]
    references = ["the cat sat on a mat", "a dog is in the garden", "hello there world"]
    bleu = metrics.bleu(hypotheses, references)
    assert bleu["score"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score)
    assert "tok:13a" in bleu["signature"] and "nrefs:1" in bleu["signature"]
    chrf = metrics.chrf(hypotheses, references)
    assert chrf["score"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score)
    assert chrf["signature"].startswith("nrefs:1")
    assert metrics.bleu(references, references)["score"] == pytest.approx(100.0)
    with pytest.raises(UserError):
        metrics.bleu(["a"], ["a", "b"])


def test_classification_metrics_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "a"]
    assert metrics.accuracy(predicted, gold) == pytest.approx(0.6)
    labels, matrix = metrics.confusion_matrix(predicted, gold)
    assert labels == ["a", "b", "c"]
    assert matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # F1: a 0.5, b 0.8, c 0.0.
    assert metrics.macro_f1(predicted, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    with pytest.raises(UserError, match="not among"):
        metrics.confusion_matrix(["z"], ["a"], labels=["a", "b"])


def test_perplexity_and_bits_per_byte():
    assert metrics.perplexity(10 * math.log(2), 10) == pytest.approx(2.0)
    assert metrics.bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)
    with pytest.raises(UserError):
        metrics.perplexity(1.0, 0)


def test_unigram_baseline_uses_add_one_smoothing():
    model = baselines.UnigramLM(vocab_size=4).fit([[0, 0, 1]])
    # counts 2, 1, 0, 0 over 3 tokens: p = (c + 1) / (3 + 4).
    expected = math.log(3 / 7) + math.log(1 / 7)
    assert model.log_likelihood([0, 2]) == pytest.approx(expected)
    assert model.log_likelihood([]) == 0.0


def test_copy_source_baseline():
    assert baselines.copy_source(["a b", "c"]) == ["a b", "c"]


def test_sliding_window_baseline_finds_the_entity_near_the_question_words():
    context = ("The ring was taken by Frodo to the mountain. "
               "The sword was kept by Aragorn in the hall.")
    model = baselines.SlidingWindowQA()
    assert model.predict(context, "Who kept the sword in the hall?") == "Aragorn"
    assert model.predict(context, "Who took the ring to the mountain?") == "Frodo"
    assert model.predict("", "Who?") == ""
    every_word = baselines.SlidingWindowQA(candidates="all")
    assert every_word.predict(context, "Who kept the sword in the hall?") in context


def test_majority_class_baseline():
    assert baselines.MajorityClass().fit(["a", "b", "b"]).predict(["x", "y"]) == ["b", "b"]
    assert baselines.MajorityClass().fit(["b", "a"]).label == "a"  # ties: sorted first


def test_bag_of_words_logistic_regression_learns_a_separable_set():
    texts = ["good great fine film", "great fine acting", "good story",
             "bad awful poor film", "awful poor acting", "bad story"] * 4
    labels = ["pos", "pos", "pos", "neg", "neg", "neg"] * 4
    model = baselines.BagOfWordsLogisticRegression(min_count=1, epochs=200).fit(texts, labels)
    assert model.predict(["a great film", "an awful film", "fine", "poor"]) == \
        ["pos", "neg", "pos", "neg"]
    probabilities = model.predict_proba(["great"])
    assert probabilities.shape == (1, 2) and probabilities.sum() == pytest.approx(1.0)
