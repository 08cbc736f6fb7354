"""Assertions and small data files shared by several test modules."""

import json

import numpy as np


def write_reviews(path, count, tag=""):
    """A JSONL sentiment file: `count` "good" (positive) and `count` "bad" (negative) texts."""
    path.write_text("".join(json.dumps({"text": f"{w}{tag} {i}", "label": label}) + "\n"
                            for i in range(count)
                            for w, label in (("good", "positive"), ("bad", "negative"))),
                    encoding="utf-8")
    return path


def assert_close(actual, expected, atol=1e-5, what="values"):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    worst = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert worst <= atol, f"{what}: max abs difference {worst} > {atol}"


def count_answers_plainly(weights, hits):
    """`(answers, correct)`: runs of weighted positions in each row, and those with a hit at
    every position, counted one position at a time (the oracle of
    `gpt_tf.training.count_answers`)."""
    answers = correct = 0
    for w_row, h_row in zip(np.asarray(weights), np.asarray(hits)):
        run = []
        for w, h in list(zip(w_row, h_row)) + [(0, True)]:
            if w:
                run.append(bool(h))
            elif run:
                answers, correct, run = answers + 1, correct + all(run), []
    return answers, correct


def naive_greedy(model, prompt, steps):
    """Greedy continuation by recomputing the whole prefix each step (no cache)."""
    sequence = list(prompt)
    for _ in range(steps):
        logits = model(np.array([sequence], dtype=np.int32))
        sequence.append(int(np.argmax(np.asarray(logits)[0, -1])))
    return sequence[len(prompt):]
