"""Assertions and small data files shared by several test modules."""

import json
import textwrap

import numpy as np

# Sampling settings every sampler rejects (`gpt_tf.sampling.Sampler`, `tflite.sampling.Sampler`,
# `gpt_tf.validation.check_sampling_values`): (keyword arguments, the start of the message).
BAD_SAMPLING_SETTINGS = [
    (dict(temperature=-1), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
    (dict(temperature="0.5"), "temperature must be a number"),
    (dict(temperature=None), "temperature must be a number"),
    (dict(temperature=True), "temperature must be a number"),
    (dict(top_k=-2), "top_k must be in [0, 2147483647]"),
    (dict(top_k=2**31), "top_k must be in [0, 2147483647]"),
    (dict(top_k=2.5), "top_k must be an integer"),
    (dict(top_k=float("nan")), "top_k must be an integer"),
    (dict(top_k=True), "top_k must be an integer"),
    (dict(top_p=0.0), "top_p must be in (0, 1]"),
    (dict(top_p=1.5), "top_p must be in (0, 1]"),
    (dict(top_p=float("nan")), "top_p must be in (0, 1]"),
    (dict(top_p=-0.1), "top_p must be in (0, 1]"),
    (dict(repetition_penalty=0), "repetition_penalty must be a finite number > 0"),
    (dict(repetition_penalty=-1.5), "repetition_penalty must be a finite number > 0"),
    (dict(repetition_penalty=float("nan")), "repetition_penalty must be a finite number > 0"),
    (dict(repetition_penalty=float("inf")), "repetition_penalty must be a finite number > 0"),
]


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


def blocking_prelude(roots):
    """Python source that makes importing any of the packages `roots` fail.

    Prepend it to a script run in a child process (`python -c`) to prove that
    a code path never imports them, e.g. `("tensorflow", "keras")`.
    """
    return textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {tuple(roots)!r}:
                    raise ImportError(f"{{name}} is blocked in this test")
                return None
        sys.meta_path.insert(0, _Block())
        sys.modules["tensorflow"] = None
    """)
