"""The host stepwise decode loop over an export's `prefill`/`decode` signatures.

One loop for every caller that streams token by token outside the graph:
`gpt-tf serve`'s `:generateStream` (`gpt_tf/serving/streaming.py`) and the
in-process SavedModel client (`gpt_tf/clients/signature_client.py`). Each
passes its own two callables (how it reaches the signatures) and gets the same
tokens for the same seed.

Sampling is the `generate` signature's own `sample_rows`
(`gpt_tf/export/generation_graph.py`) with the same `[seed, position]`
stateless seeds, compiled with XLA when the export's generation is
(`jit_compile` in its metadata): TensorFlow's categorical sampler draws
different numbers under XLA than in its CPU kernel, so the eager
`gpt_tf.sampling.Sampler` would give the same greedy text as `generate` but
different sampled text for the same seed.
"""

import functools

import numpy as np
import tensorflow as tf

from gpt_tf.export.generation_graph import sample_rows


@functools.lru_cache(maxsize=2)
def _row_sampler(jit_compile):
    return tf.function(sample_rows, jit_compile=jit_compile, autograph=False)


def fit_prompt(ids, max_new_tokens, sequence_length):
    """Keeps the prompt's last tokens so `max_new_tokens` fit the window.

    Returns:
        `(ids, number of tokens dropped from the front)`, as `generate` does.
    """
    room = sequence_length - max_new_tokens
    truncated = max(0, len(ids) - room)
    return list(ids[truncated:]), truncated


class HostDecodeLoop:
    """Prefill once, then sample and decode one token at a time on the host.

    Args:
        prefill: `fn(ids: list[int]) -> (logits (1, V), cache)`.
        decode: `fn(token_id: int, position: int, cache) -> (logits (1, V), cache)`.
        end_of_text: the id that stops generation (not yielded).
        jit_compile: the export's `jit_compile` (sample as its `generate` does).

    After iterating `tokens(...)`, `stop_reason` is "stop_token" or "max_new_tokens".
    """

    def __init__(self, prefill, decode, end_of_text, jit_compile=True):
        self.prefill = prefill
        self.decode = decode
        self.end_of_text = int(end_of_text)
        self.sample = _row_sampler(bool(jit_compile))
        self.stop_reason = None

    def tokens(self, ids, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0,
               repetition_penalty=1.0, seed=0):
        """Yields each new token id; `ids` is the (already fitted) prompt."""
        settings = (tf.constant([temperature], tf.float32), tf.constant([top_k], tf.int32),
                    tf.constant([top_p], tf.float32),
                    tf.constant([repetition_penalty], tf.float32), tf.constant([seed], tf.int32))
        self.stop_reason = "max_new_tokens"
        logits, cache = self.prefill(list(ids))
        presence = np.zeros((1, int(logits.shape[-1])), dtype=bool)
        presence[0, ids] = True
        for step in range(max_new_tokens):
            position = len(ids) + step
            token = int(self.sample(tf.cast(logits, tf.float32), tf.constant(position, tf.int32),
                                    tf.constant(presence), *settings)[0])
            if token == self.end_of_text:
                self.stop_reason = "stop_token"
                return
            presence[0, token] = True
            yield token
            if step + 1 < max_new_tokens:
                logits, cache = self.decode(token, position, cache)
