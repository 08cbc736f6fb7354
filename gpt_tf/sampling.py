"""Samplers: logits in, next token out. Pure, small, usable inside XLA loops.

A `Sampler` holds static settings (Python numbers), so a compiled generation
loop specialises on them; randomness comes from a stateless seed passed per
call, so the same seed gives the same tokens.
"""

import dataclasses

import tensorflow as tf

from gpt_tf.validation import check_sampling_values

_NEG_INF = -1e9


@dataclasses.dataclass(frozen=True)
class Sampler:
    """Next-token choice from float32 logits.

    Args:
        temperature: 0 means greedy (argmax); otherwise logits are divided by it.
        top_k: keep the k most likely tokens (0: off).
        top_p: keep the smallest set with cumulative probability >= p (1.0: off).
        repetition_penalty: >1 discourages tokens already in the sequence
            (CTRL rule: positive logits divided, negative multiplied).
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

    def __call__(self, logits, seed, presence=None):
        """Picks one token per row.

        Args:
            logits: `(B, V)` float32.
            seed: int32 `(2,)` stateless seed (e.g. `[user_seed, step]`).
            presence: optional `(B, V)` bool, tokens already in each sequence,
                used by the repetition penalty.

        Returns:
            `(B,)` int32 token ids.
        """
        logits = tf.cast(logits, tf.float32)
        if self.repetition_penalty != 1.0 and presence is not None:
            penalised = tf.where(logits > 0, logits / self.repetition_penalty,
                                 logits * self.repetition_penalty)
            logits = tf.where(presence, penalised, logits)
        if self.greedy:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        logits = logits / self.temperature
        logits = filter_top_k(logits, self.top_k)
        logits = filter_top_p(logits, self.top_p)
        token = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)
        return token[:, 0]


def filter_top_k(logits, k):
    """Sets every logit below the k-th largest of its row to -inf (k=0: no-op)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = tf.math.top_k(logits, k=k).values[:, -1:]  # (B, 1)
    return tf.where(logits < kth, _NEG_INF, logits)


def filter_top_p(logits, p):
    """Nucleus filter: keeps the smallest top set whose probability reaches p."""
    if p >= 1.0:
        return logits
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    cumulative = tf.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1)
    # Keep a token if the mass *before* it is < p, so the top token always stays.
    keep_sorted = (cumulative - tf.nn.softmax(sorted_logits, axis=-1)) < p
    kept = tf.reduce_sum(tf.cast(keep_sorted, tf.int32), axis=-1, keepdims=True)  # (B, 1)
    threshold = tf.gather(sorted_logits, kept - 1, batch_dims=1)  # smallest kept logit
    return tf.where(logits < threshold, _NEG_INF, logits)
