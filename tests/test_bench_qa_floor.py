"""bench/qa_floor.py's floor choice and summary (the model-free part)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))

import qa_floor  # noqa: E402


def test_the_floor_keeps_the_asked_share_of_right_answers_and_counts_what_it_drops():
    # (mean log-probability per token or None for "no answer", exact match, F1)
    rows = [(-0.1, 1, 1.0), (-0.5, 1, 1.0), (-0.9, 1, 1.0), (-2.0, 1, 1.0),
            (-0.2, 0, 0.0), (-3.0, 0, 0.0), (-4.0, 0, 0.5), (None, 0, 0.0)]
    floor = qa_floor.choose_floor(rows, keep=0.75)
    assert floor == -0.9  # 3 of the 4 right answers are at or above it
    before, after = qa_floor.summarise(rows), qa_floor.summarise(rows, floor)
    assert before == {"exact_match": 50.0, "f1": 56.25, "no_answer_rate": 0.125,
                      "confidently_wrong_rate": 0.25, "questions": 8}
    assert after == {"exact_match": 37.5, "f1": 37.5, "no_answer_rate": 0.5,
                     "confidently_wrong_rate": 0.125, "questions": 8}
    assert qa_floor.choose_floor(rows, keep=1.0) == -2.0
    assert qa_floor.choose_floor([(None, 0, 0.0), (-1.0, 0, 0.0)], keep=0.9) is None
