"""In-graph generation for exported signatures: batched tensors in, tokens out.

Same algorithm as `gpt_tf.generation.Generator` (right-padded buffer, one
prefill, an XLA `tf.while_loop` over the KV cache, prompt rows keep their
prompt tokens), with two differences a server needs:

- sampling settings are per-row *tensors* (TF Serving's row format batches
  every input), not Python numbers baked into the program;
- each row samples with its own stateless seed `[seed_r, position]`, so a
  row's completion does not depend on which other requests share its batch.
  For a batch of one this is exactly `Sampler.__call__` with the same seed,
  so the SavedModel reproduces the Keras generator token for token.

Prompts longer than `sequence_length - max_new_tokens` keep their last tokens,
as in `Generator`.
"""

import tensorflow as tf

from gpt_tf.generation import PREFILL_BUCKETS

# Buffers are rounded up to this, as in `gpt_tf.generation`, so nearby prompt
# lengths share one compiled program.
LENGTH_BUCKET = 32
# The prefill runs over the smallest of `PREFILL_BUCKETS` (or the whole buffer)
# that holds the shortest prompt, as in `gpt_tf.generation`: a 4-token prompt
# with 16 new tokens prefills 8 positions, not the 32 of its buffer.
# `bench/bench_generate_graph.py` measures what it saves.
_NEG_INF = -1e9  # the value `gpt_tf.sampling` gives to filtered logits


def sample_rows(logits, index, presence, temperature, top_k, top_p, repetition_penalty, seeds):
    """Per-row version of `gpt_tf.sampling.Sampler.__call__`.

    Args:
        logits: `(B, V)` float32.
        index: scalar int32, the position being sampled (second seed word).
        presence: `(B, V)` bool, tokens already in each row (repetition penalty).
        temperature, top_p, repetition_penalty: `(B,)` float32.
        top_k, seeds: `(B,)` int32.

    Returns:
        `(B,)` int32 tokens.
    """
    vocab_size = tf.shape(logits)[1]
    penalty = repetition_penalty[:, None]
    penalised = tf.where(logits > 0, logits / penalty, logits * penalty)
    logits = tf.where(tf.logical_and(presence, penalty != 1.0), penalised, logits)
    greedy_rows = tf.logical_or(temperature == 0.0, top_k == 1)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sampled():
        scaled = logits / tf.where(greedy_rows, 1.0, temperature)[:, None]
        ordered = tf.sort(scaled, axis=-1, direction="DESCENDING")
        # top-k: everything below the k-th largest logit goes (k = 0 or >= V: off).
        use_k = tf.logical_and(top_k > 0, top_k < vocab_size)
        kth = tf.gather(ordered, tf.clip_by_value(top_k - 1, 0, vocab_size - 1)[:, None],
                        batch_dims=1)  # (B, 1)
        kth = tf.where(use_k[:, None], kth, -float("inf"))
        scaled = tf.where(scaled < kth, _NEG_INF, scaled)
        ordered = tf.where(ordered < kth, _NEG_INF, ordered)  # still sorted
        # top-p over what top-k kept, exactly as `filter_top_p`.
        probs = tf.nn.softmax(ordered, axis=-1)
        keep = (tf.cumsum(probs, axis=-1) - probs) < top_p[:, None]
        kept = tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1, keepdims=True)
        threshold = tf.gather(ordered, tf.maximum(kept - 1, 0), batch_dims=1)
        threshold = tf.where((top_p < 1.0)[:, None], threshold, -float("inf"))
        scaled = tf.where(scaled < threshold, _NEG_INF, scaled)

        def draw(row):
            row_logits, seed = row
            token = tf.random.stateless_categorical(
                row_logits[None], 1, seed=tf.stack([seed, index]), dtype=tf.int32)
            return token[0, 0]

        draws = tf.map_fn(draw, (scaled, seeds), fn_output_signature=tf.int32)
        # Degenerate settings (e.g. a denormal temperature) can make every logit
        # non-finite; never let that become an out-of-vocabulary id.
        draws = tf.clip_by_value(draws, 0, vocab_size - 1)
        return tf.where(greedy_rows, greedy, draws)

    return tf.cond(tf.reduce_all(greedy_rows), lambda: greedy, sampled)


class GraphGenerator:
    """Builds the generation part of exported signatures for a `GPTCausalLM`.

    Args:
        model: the model (float32 or mixed; logits are float32).
        stop_ids: token ids that end a row (e.g. `[end_of_text_id]`).
        jit_compile: compile the prefill + decode loop with XLA. The tokenizer
            and the pre/post-processing stay outside the compiled function.
        short_prefill: prefill only a `PREFILL_BUCKETS` prefix that holds the
            shortest prompt (the decode loop feeds the rest of longer rows'
            prompts); False prefills the whole buffer (the old behaviour, kept
            for the benchmark). The tokens are the same either way.
    """

    def __init__(self, model, stop_ids, jit_compile=True, short_prefill=True):
        self.model = model
        self.sequence_length = int(model.backbone.sequence_length)
        self.vocab_size = int(model.backbone.vocab_size)
        self.stop_ids = tf.constant(list(stop_ids) or [-1], dtype=tf.int32)
        self.jit_compile = jit_compile
        self.short_prefill = short_prefill
        self._loop = tf.function(self._generate_loop, jit_compile=jit_compile, autograph=False)

    def _prefill_width(self, start, width):
        """Positions the prefill runs: the smallest bucket >= `start`, or `width`."""
        if not self.short_prefill:
            return width
        chosen = width
        for bucket in reversed(PREFILL_BUCKETS):
            chosen = tf.where(start <= bucket, tf.minimum(bucket, width), chosen)
        return chosen

    def _generate_loop(self, tokens, prefill, lengths, limits, temperature, top_k, top_p,
                       repetition_penalty, seeds):
        # tokens (B, W) right-padded prompt buffer; prefill (B, P) its first P
        # columns, P >= min(lengths); lengths/limits (B,).
        model = self.model
        batch, width = tf.shape(tokens)[0], tf.shape(tokens)[1]
        cache = tf.zeros(model.cache_shape(batch, width), dtype=model.backbone.compute_dtype)
        _, hidden, cache = model.call_with_cache(prefill, cache, 0)
        prompt_mask = tf.range(width)[None, :] < lengths[:, None]
        presence = tf.reduce_any(tf.logical_and(
            tf.one_hot(tokens, self.vocab_size, on_value=True, off_value=False),
            prompt_mask[:, :, None]), axis=1)
        start = tf.reduce_min(lengths)
        # Only the position that predicts the token at `start` needs the
        # vocabulary projection (XLA drops the unused full-prefill logits).
        last = tf.gather(hidden, start - 1, axis=1)[:, None]
        next_logits = tf.cast(model.backbone.token_embedding(last, reverse=True), tf.float32)[:, 0]
        done = start >= limits

        def step(index, tokens, cache, logits, presence, done):
            token = sample_rows(logits, index, presence, temperature, top_k, top_p,
                                repetition_penalty, seeds)
            in_prompt = prompt_mask[:, index]
            token = tf.where(in_prompt, tokens[:, index],
                             tf.where(done, tf.zeros_like(token), token))
            tokens = tf.tensor_scatter_nd_update(
                tokens, tf.stack([tf.range(batch), tf.fill([batch], index)], axis=1), token)
            fresh = tf.logical_and(tf.logical_not(in_prompt), tf.logical_not(done))
            presence = tf.logical_or(presence, tf.logical_and(
                tf.one_hot(token, self.vocab_size, on_value=True, off_value=False),
                fresh[:, None]))
            is_stop = tf.reduce_any(token[:, None] == self.stop_ids[None, :], axis=-1)
            done = tf.logical_or(done, tf.logical_and(fresh, is_stop))
            done = tf.logical_or(done, index + 1 >= limits)
            step_logits, _, cache = model.call_with_cache(token[:, None], cache, index)
            return index + 1, tokens, cache, step_logits[:, 0], presence, done

        state = tf.while_loop(
            lambda index, *rest: tf.logical_and(index < width,
                                                tf.logical_not(tf.reduce_all(rest[-1]))),
            step, (start, tokens, cache, next_logits, presence, done),
            maximum_iterations=width)
        return state[1]

    def generate(self, token_ids, lengths, max_new_tokens, temperature, top_k, top_p,
                 repetition_penalty, seeds):
        """Generates for a right-padded batch of prompts (all inputs batched).

        Inputs are assumed validated (see `validate_sampling`).

        Returns:
            dict: `token_ids` `(B, max(max_new_tokens))` new tokens padded with
            0 after each row's end, `num_tokens` `(B,)`, `stop_reason` `(B,)`
            (`stop_token` or `max_new_tokens`), `prompt_tokens_truncated` `(B,)`.
        """
        S = self.sequence_length
        token_ids = tf.cast(token_ids, tf.int32)
        width_in = tf.shape(token_ids)[1]
        max_new = tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 1, S - 1)
        room = S - max_new
        dropped = tf.maximum(lengths - room, 0)
        lengths = lengths - dropped
        limits = lengths + max_new
        needed = tf.reduce_max(limits)
        width = tf.minimum(S, (needed + LENGTH_BUCKET - 1) // LENGTH_BUCKET * LENGTH_BUCKET)
        # Left-truncate each row by `dropped` and lay it out in the buffer.
        column = tf.range(width)[None, :]
        source = tf.clip_by_value(dropped[:, None] + column, 0, tf.maximum(width_in - 1, 0))
        tokens = tf.where(column < lengths[:, None],
                          tf.gather(token_ids, source, batch_dims=1), 0)
        prefill = tokens[:, :self._prefill_width(tf.reduce_min(lengths), width)]
        tokens = self._loop(tokens, prefill, lengths, limits, tf.cast(temperature, tf.float32),
                            tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32),
                            tf.cast(repetition_penalty, tf.float32), tf.cast(seeds, tf.int32))
        # New tokens: positions lengths .. limits-1, cut at the first stop id.
        steps = tf.range(tf.reduce_max(max_new))[None, :]
        in_range = steps < max_new[:, None]
        positions = tf.clip_by_value(lengths[:, None] + steps, 0, width - 1)
        new = tf.where(in_range, tf.gather(tokens, positions, batch_dims=1), 0)
        is_stop = tf.logical_and(
            tf.reduce_any(new[:, :, None] == self.stop_ids[None, None, :], axis=-1), in_range)
        stopped = tf.reduce_any(is_stop, axis=-1)
        count = tf.where(stopped, tf.argmax(tf.cast(is_stop, tf.int32), axis=-1,
                                            output_type=tf.int32), max_new)
        new = tf.where(steps < count[:, None], new, 0)
        return {
            "token_ids": new,
            "num_tokens": count,
            "stop_reason": tf.where(stopped, "stop_token", "max_new_tokens"),
            "prompt_tokens_truncated": dropped,
        }


def validate_sampling(max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                      max_new_tokens_limit):
    """In-graph checks with the same messages as `Sampler`; a bad value raises
    `InvalidArgumentError` (HTTP 400 in TF Serving and `gpt-tf serve`)."""
    checks = [
        tf.debugging.assert_greater_equal(
            max_new_tokens, 1, message="max_new_tokens must be >= 1"),
        tf.debugging.assert_less_equal(
            max_new_tokens, max_new_tokens_limit,
            message=f"max_new_tokens must be <= {max_new_tokens_limit} (the export's limit)"),
        tf.debugging.assert_greater_equal(
            temperature, 0.0, message="temperature must be >= 0; 0 is greedy"),
        tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0; 0 turns it off"),
        tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1]; 1 turns it off"),
        tf.debugging.assert_less_equal(top_p, 1.0,
                                       message="top_p must be in (0, 1]; 1 turns it off"),
        tf.debugging.assert_greater(repetition_penalty, 0.0,
                                    message="repetition_penalty must be > 0"),
    ]
    return checks
