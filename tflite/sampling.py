"""NumPy samplers with the semantics of `gpt_tf.sampling` (no TensorFlow).

Same settings, same filters, same order: repetition penalty (CTRL rule) ->
greedy if `temperature == 0` or `top_k == 1` -> divide by temperature ->
top-k (keep logits >= the k-th largest) -> top-p (keep the smallest top set
whose probability reaches p; the top token always stays) -> draw. Filtered
logits are set to -1e9 exactly as in TensorFlow, so the kept sets are equal;
only the random numbers differ (NumPy's generator instead of TF's stateless
Philox), so sampled tokens are reproducible per seed but not equal to the
Keras generator's. Greedy decoding is identical.

`check_sampling_values` copies the rules and messages of
`gpt_tf.validation.check_sampling_values` (this package must not import
`gpt_tf`); tests/test_sampling.py runs one list of bad settings against both.
"""

import dataclasses
import math
import numbers

import numpy as np

NEG_INF = -1e9


@dataclasses.dataclass(frozen=True)
class Sampler:
    """Next-token choice from float32 logits (see `gpt_tf.sampling.Sampler`).

    Args:
        temperature: 0 means greedy (argmax); otherwise logits are divided by it.
        top_k: keep the k most likely tokens (0: off).
        top_p: nucleus threshold in (0, 1] (1.0: off).
        repetition_penalty: >1 discourages tokens already in the sequence.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        check_sampling_values(self.temperature, self.top_k, self.top_p, self.repetition_penalty)

    @property
    def greedy(self):
        return self.temperature == 0.0 or self.top_k == 1

    def filtered_logits(self, logits, presence=None):
        """The logits the draw uses, `(B, V)` float32 (penalty, temperature, top-k, top-p)."""
        logits = np.asarray(logits, dtype=np.float32)
        if logits.ndim == 1:
            logits = logits[None]
        logits = apply_repetition_penalty(logits, presence, self.repetition_penalty)
        if self.greedy:
            return logits
        logits = logits / np.float32(self.temperature)
        logits = filter_top_k(logits, self.top_k)
        return filter_top_p(logits, self.top_p)

    def __call__(self, logits, rng=None, presence=None):
        """Picks one token per row.

        Args:
            logits: `(V,)` or `(B, V)` float logits.
            rng: a `numpy.random.Generator` (needed unless greedy).
            presence: optional bool `(V,)`/`(B, V)`, tokens already in each
                sequence (repetition penalty).

        Returns:
            An int for `(V,)` input, else an int32 array `(B,)`.
        """
        single = np.ndim(logits) == 1
        filtered = self.filtered_logits(logits, presence)
        if self.greedy:
            tokens = np.argmax(filtered, axis=-1).astype(np.int32)
        else:
            if rng is None:
                raise ValueError("sampling needs a numpy Generator (rng); pass "
                                 "numpy.random.default_rng(seed)")
            tokens = np.array([_draw(row, rng) for row in filtered], dtype=np.int32)
        return int(tokens[0]) if single else tokens


def check_sampling_values(temperature, top_k, top_p, repetition_penalty):
    """Raises `ValueError` for sampling values no sampler accepts (NaN and infinity included)."""
    for name, value in (("temperature", temperature), ("top_p", top_p),
                        ("repetition_penalty", repetition_penalty)):
        _check_number(name, value)
    _check_number("top_k", top_k, integer=True)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (got {temperature}); "
                         "0 is greedy")
    if not 0 <= top_k < 2**31:
        raise ValueError(f"top_k must be in [0, {2**31 - 1}] (got {top_k}); 0 turns it off, "
                         "and so does any value of at least the vocabulary size")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (got {top_p}); 1 turns it off")
    if not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0 "
                         f"(got {repetition_penalty})")


def _check_number(name, value, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} "
                         f"(got {value!r})")


def apply_repetition_penalty(logits, presence, penalty):
    if penalty == 1.0 or presence is None:
        return logits
    presence = np.asarray(presence, dtype=bool).reshape(logits.shape)
    penalised = np.where(logits > 0, logits / np.float32(penalty), logits * np.float32(penalty))
    return np.where(presence, penalised, logits).astype(np.float32)


def filter_top_k(logits, k):
    """Sets every logit below the k-th largest of its row to -1e9 (k=0: no-op)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = -np.partition(-logits, k - 1, axis=-1)[:, k - 1:k]  # (B, 1), the k-th largest
    return np.where(logits < kth, np.float32(NEG_INF), logits).astype(np.float32)


def _softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


def filter_top_p(logits, p):
    """Nucleus filter: keeps the smallest top set whose probability reaches p."""
    if p >= 1.0:
        return logits
    ordered = -np.sort(-logits, axis=-1)
    probs = _softmax(ordered.astype(np.float32))
    keep = (np.cumsum(probs, axis=-1) - probs) < p  # mass before a token < p
    kept = np.sum(keep, axis=-1, keepdims=True)
    threshold = np.take_along_axis(ordered, np.maximum(kept - 1, 0), axis=-1)
    return np.where(logits < threshold, np.float32(NEG_INF), logits).astype(np.float32)


def _draw(row, rng):
    probs = _softmax(row.astype(np.float64))
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, row.shape[-1] - 1)
