"""Autoregressive generation over the KV cache, compiled with XLA.

Prompts of different lengths share one right-padded buffer. The prefill runs
once, over the smallest of `PREFILL_BUCKETS` positions that holds the shortest
prompt (or the whole buffer), and projects only the last prompt position to the
vocabulary; decoding then starts at the shortest prompt's end, and rows whose
prompt is longer keep their prompt token instead of the sampled one (causal
attention makes the pad slots harmless until they are overwritten).

Two ways to run the same step function:
- fused: one `tf.while_loop` inside one XLA program (fastest);
- stepped: a Python loop over a compiled step, calling `on_token` after each
  step, so callers can stream.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.sampling import Sampler
from gpt_tf.validation import check_seed

# Buffers are rounded up to a multiple of this, so nearby lengths share one
# compiled program instead of recompiling for every prompt length.
_LENGTH_BUCKET = 32
# The prefill runs over the smallest of these (or the whole buffer) that holds
# the shortest prompt, so a short prompt in a long buffer is not prefilled over
# its padding: at most 1 + len(PREFILL_BUCKETS) programs per buffer length.
# The exported generation loop (`gpt_tf.export.generation_graph`) uses the same.
PREFILL_BUCKETS = (8, 32, 128)


@dataclasses.dataclass
class GenerationResult:
    """Output of `Generator.generate`.

    Attributes:
        token_ids: per prompt, the new token ids (stop token excluded).
        stop_reasons: per prompt, `"stop_token"` or `"max_new_tokens"` or `"context_full"`.
        truncated_prompts: per prompt, how many leading prompt tokens were dropped to fit.
    """

    token_ids: list
    stop_reasons: list
    truncated_prompts: list


class Generator:
    """Generates continuations from a `GPTCausalLM`.

    Args:
        model: a `GPTCausalLM`.
        jit_compile: compile the loop with XLA (recommended; the first call
            for a new shape compiles for a few seconds).
        short_prefill: prefill only a `PREFILL_BUCKETS` prefix that holds the
            shortest prompt and project one position to the vocabulary; False
            prefills and projects the whole buffer (the old behaviour, kept for
            `bench/bench_generate_keras.py`). The tokens are the same either way.
    """

    def __init__(self, model, jit_compile=True, short_prefill=True):
        self.model = model
        self.jit_compile = jit_compile
        self.short_prefill = short_prefill
        self.sequence_length = model.backbone.sequence_length
        self.vocab_size = model.backbone.vocab_size
        self._compiled = {}

    # The state carried through the loop:
    # (index, tokens, cache, next_logits, presence, done, limits, prompt_mask)
    def _step(self, sampler, seed, stop_ids, state):
        index, tokens, cache, logits, presence, done, limits, prompt_mask = state
        batch = tf.shape(tokens)[0]
        sampled = sampler(logits, tf.stack([seed, index]), presence)
        prompt_token = tokens[:, index]
        in_prompt = prompt_mask[:, index]
        # Finished rows emit pad (0); prompt positions keep the prompt.
        token = tf.where(in_prompt, prompt_token, tf.where(done, tf.zeros_like(sampled), sampled))
        tokens = tf.tensor_scatter_nd_update(
            tokens, tf.stack([tf.range(batch), tf.fill([batch], index)], axis=1), token)
        is_stop = tf.reduce_any(token[:, None] == stop_ids[None, :], axis=-1)
        newly_generated = tf.logical_and(tf.logical_not(in_prompt), tf.logical_not(done))
        presence = tf.logical_or(presence, tf.logical_and(
            tf.one_hot(token, self.vocab_size, on_value=True, off_value=False),
            newly_generated[:, None]))
        done = tf.logical_or(done, tf.logical_and(newly_generated, is_stop))
        done = tf.logical_or(done, index + 1 >= limits)
        step_logits, _, cache = self.model.call_with_cache(token[:, None], cache, index)
        return (index + 1, tokens, cache, step_logits[:, 0], presence, done, limits, prompt_mask)

    def _prefill(self, tokens, prefill, start, lengths, limits, buffer_length):
        # `prefill` is the first P columns of `tokens`, P >= start.
        batch = tf.shape(tokens)[0]
        cache = tf.zeros(self.model.cache_shape(batch, buffer_length),
                         dtype=self.model.backbone.compute_dtype)
        logits, hidden, cache = self.model.call_with_cache(prefill, cache, 0)
        positions = tf.range(buffer_length)[None, :]
        prompt_mask = positions < lengths[:, None]
        presence = tf.reduce_any(tf.logical_and(
            tf.one_hot(tokens, self.vocab_size, on_value=True, off_value=False),
            prompt_mask[:, :, None]), axis=1)
        # The token at `start` is predicted at `start - 1`: only that position
        # is projected to the vocabulary (the unused full logits are pruned).
        if self.short_prefill:
            last = tf.gather(hidden, start - 1, axis=1)[:, None]
            next_logits = tf.cast(
                self.model.backbone.token_embedding(last, reverse=True), tf.float32)[:, 0]
        else:
            next_logits = tf.gather(logits, start - 1, axis=1)
        done = start >= limits
        return (start, tokens, cache, next_logits, presence, done, limits, prompt_mask)

    def _functions(self, sampler, buffer_length):
        key = (sampler, buffer_length)
        if key not in self._compiled:
            def prefill(tokens, prefill_tokens, start, lengths, limits):
                return self._prefill(tokens, prefill_tokens, start, lengths, limits,
                                     buffer_length)

            def step(seed, stop_ids, state):
                return self._step(sampler, seed, stop_ids, state)

            def fused(tokens, prefill_tokens, start, lengths, limits, seed, stop_ids):
                state = self._prefill(tokens, prefill_tokens, start, lengths, limits,
                                      buffer_length)
                state = tf.while_loop(
                    lambda *s: tf.logical_and(s[0] < buffer_length,
                                              tf.logical_not(tf.reduce_all(s[5]))),
                    lambda *s: self._step(sampler, seed, stop_ids, s),
                    state,
                    maximum_iterations=buffer_length,
                )
                return state[1], state[0]

            compile_ = dict(jit_compile=self.jit_compile, reduce_retracing=True)
            self._compiled[key] = (tf.function(prefill, **compile_),
                                   tf.function(step, **compile_),
                                   tf.function(fused, **compile_))
        return self._compiled[key]

    def generate(self, prompts, max_new_tokens=64, sampler=None, seed=0, stop_ids=(),
                 on_token=None):
        """Generates up to `max_new_tokens` for each prompt.

        Args:
            prompts: list of lists of token ids (each non-empty; callers
                usually start them with the end-of-text id).
            max_new_tokens: new tokens per prompt (>= 1).
            sampler: a `Sampler` (default greedy).
            seed: int seed; same seed and inputs give the same tokens.
            stop_ids: token ids that end a row (the stop token is not returned).
            on_token: optional `fn(step, tokens)` called after each new token,
                `tokens` a list with the new id per row (None for rows still in
                their prompt or finished). Switches to the stepped loop.

        Returns:
            A `GenerationResult`.
        """
        sampler = sampler or Sampler()
        if not prompts:
            raise UserError("no prompts given")
        if max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
        if max_new_tokens >= self.sequence_length:
            raise UserError(
                f"max_new_tokens ({max_new_tokens}) must be below the context window "
                f"({self.sequence_length})")
        check_seed(seed)
        prompts = [list(p) for p in prompts]
        truncated = []
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise UserError(f"prompt {i} has no tokens")
            if any((t < 0 or t >= self.vocab_size) for t in prompt):
                raise UserError(f"prompt {i} has token ids outside [0, {self.vocab_size})")
            room = self.sequence_length - max_new_tokens
            truncated.append(max(0, len(prompt) - room))
            prompts[i] = prompt[-room:]
        lengths = np.array([len(p) for p in prompts], dtype=np.int32)
        limits = lengths + max_new_tokens
        needed = int(limits.max())
        buffer_length = min(self.sequence_length,
                            -(-needed // _LENGTH_BUCKET) * _LENGTH_BUCKET)
        tokens = np.zeros((len(prompts), buffer_length), dtype=np.int32)
        for i, prompt in enumerate(prompts):
            tokens[i, :len(prompt)] = prompt
        start = np.int32(lengths.min())
        stop = np.array(list(stop_ids) or [-1], dtype=np.int32)
        prefill, step, fused = self._functions(sampler, buffer_length)
        width = prefill_width(int(start), buffer_length) if self.short_prefill else buffer_length
        args = (tf.constant(tokens), tf.constant(tokens[:, :width]), tf.constant(start),
                tf.constant(lengths), tf.constant(limits))
        if on_token is None:
            out_tokens, _ = fused(*args, tf.constant(seed, tf.int32), tf.constant(stop))
            out_tokens = out_tokens.numpy()
        else:
            state = prefill(*args)
            seed_t, stop_t = tf.constant(seed, tf.int32), tf.constant(stop)
            while int(state[0]) < buffer_length and not bool(tf.reduce_all(state[5])):
                before_done = state[5].numpy()
                index = int(state[0])
                state = step(seed_t, stop_t, state)
                new = state[1][:, index].numpy()
                emitted = [None if (index < lengths[r] or before_done[r]) else int(new[r])
                           for r in range(len(prompts))]
                on_token(index - int(start), emitted)
            out_tokens = state[1].numpy()
        return _collect(out_tokens, lengths, limits, set(int(s) for s in stop_ids),
                        buffer_length, truncated)


def prefill_width(start, buffer_length):
    """Positions the prefill runs: the smallest `PREFILL_BUCKETS` entry >= `start`
    that fits in the buffer, else the whole buffer."""
    for bucket in PREFILL_BUCKETS:
        if start <= bucket <= buffer_length:
            return bucket
    return buffer_length


def _collect(tokens, lengths, limits, stop_ids, buffer_length, truncated):
    rows, reasons = [], []
    for i, row in enumerate(tokens):
        new = []
        reason = "max_new_tokens"
        for position in range(lengths[i], min(limits[i], buffer_length)):
            token = int(row[position])
            if token in stop_ids:
                reason = "stop_token"
                break
            new.append(token)
        if reason == "max_new_tokens" and limits[i] > buffer_length:
            reason = "context_full"
        rows.append(new)
        reasons.append(reason)
    return GenerationResult(token_ids=rows, stop_reasons=reasons, truncated_prompts=truncated)
