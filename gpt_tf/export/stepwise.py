"""Prefill/decode graphs with an explicit, head-major KV cache (batch 1).

These two functions are what ships in the `.tflite` file (and the stepwise
`prefill`/`decode` signatures of the SavedModel, used for streaming). They
reuse the model's own layers (embeddings, LayerNorms, Dense projections,
MLP); only the attention core is written here, for a cache layout that is
cheap on mobile interpreters:

    cache: (2 * num_layers, num_heads, max_length, head_dim) float32
           row 2*i holds layer i's keys, row 2*i+1 its values.

Why not `GPTCausalLM.call_with_cache`: its cache is 6-D `(B, L, 2, S, H, hd)`
and its attention transposes the cache to head-major on every step. On LiteRT
the 6-D slicing/stacking and the transposes cost more than the matmuls (a
decode step took ~4 ms at the reference size); head-major 4-D keeps every op
within the 4-D limits of the builtin and XNNPACK kernels and needs no
transpose (`tests/test_tflite.py` proves both paths give the same logits).

Prefill attends only over the T prompt positions (no work for the empty
cache); decode attends over the whole cache buffer with positions after the
current one masked, exactly like the Keras cache path.
"""

import tensorflow as tf
from keras import ops

from gpt_tf.layers.causal_self_attention import attention_weights


class StepwiseGraph:
    """Builds batch-1 `prefill` and `decode` functions over a model's layers.

    Args:
        model: a float32 `GPTCausalLM`.
        max_length: cache length (defaults to the model's context window; may
            not exceed it, since positions are learned).
    """

    def __init__(self, model, max_length=None):
        backbone = model.backbone
        self.model = model
        self.backbone = backbone
        self.num_layers = backbone.num_layers
        self.num_heads = backbone.num_heads
        self.head_dim = backbone.head_dim
        self.hidden_dim = backbone.hidden_dim
        self.vocab_size = backbone.vocab_size
        self.max_length = int(max_length or backbone.sequence_length)
        if not 1 <= self.max_length <= backbone.sequence_length:
            raise ValueError(f"max_length must be in [1, {backbone.sequence_length}], "
                             f"got {self.max_length}")

    @property
    def cache_shape(self):
        """`(2 * num_layers, num_heads, max_length, head_dim)`."""
        return (2 * self.num_layers, self.num_heads, self.max_length, self.head_dim)

    def input_signatures(self):
        """`{"prefill": [...], "decode": [...]}` TensorSpecs with stable names."""
        return {
            "prefill": [tf.TensorSpec([1, None], tf.int32, name="token_ids")],
            "decode": [
                tf.TensorSpec([1, 1], tf.int32, name="token_id"),
                tf.TensorSpec([1], tf.int32, name="position"),
                tf.TensorSpec(self.cache_shape, tf.float32, name="cache"),
            ],
        }

    def _split_heads(self, qkv, length):
        # (T, 3D) -> three (H, T, hd), the fused projection's [3, H, hd] layout.
        qkv = tf.reshape(qkv, (length, 3, self.num_heads, self.head_dim))
        query, key, value = tf.unstack(tf.transpose(qkv, (1, 2, 0, 3)))  # (H, T, hd) each
        return query, key, value

    def _attend(self, block, query, keys, values, mask, length):
        # query (H, T, hd), keys/values (H, S, hd), mask broadcastable to (H, T, S).
        probs = attention_weights(query, keys, mask)  # (H, T, S), the layer's own math
        out = tf.matmul(probs, values)  # (H, T, hd)
        out = tf.reshape(tf.transpose(out, (1, 0, 2)), (length, self.hidden_dim))
        return block.attention.output_projection(out)

    @staticmethod
    def _mlp(block, x):
        return block.mlp_out(block.mlp_in(block.mlp_norm(x)))

    def _logits(self, x):
        # x: (1, D), the last position only.
        hidden = self.backbone.final_norm(x)
        return ops.cast(self.backbone.token_embedding(hidden, reverse=True), "float32")  # (1, V)

    def prefill(self, token_ids):
        """Runs a prompt `(1, T)` (1 <= T <= max_length) from an empty cache.

        Returns:
            `{"logits": (1, V) at the last prompt position, "cache": cache_shape}`.
        """
        length = tf.shape(token_ids)[1]
        b = self.backbone
        x = b.token_embedding(token_ids)[0]  # (T, D)
        x = x + ops.convert_to_tensor(b.position_embedding.embeddings)[:length]
        positions = tf.range(length)
        causal = positions[None, :] <= positions[:, None]  # (T, T)
        caches = []
        for block in b.blocks:
            query, key, value = self._split_heads(block.attention.qkv(block.attention_norm(x)),
                                                  length)
            x = x + self._attend(block, query, key, value, causal[None], length)
            x = x + self._mlp(block, x)
            pad = [[0, 0], [0, self.max_length - length], [0, 0]]
            caches += [tf.pad(key, pad), tf.pad(value, pad)]  # (H, S, hd)
        return {"logits": self._logits(x[-1:]), "cache": tf.stack(caches)}

    def decode(self, token_id, position, cache):
        """Runs one token `(1, 1)` at `position` `(1,)` over `cache`.

        Returns:
            `{"logits": (1, V), "cache": the cache with this token's keys/values}`.
        """
        b = self.backbone
        index = position[0]
        x = b.token_embedding(token_id)[0]  # (1, D)
        x = x + tf.gather(ops.convert_to_tensor(b.position_embedding.embeddings), position)
        visible = (tf.range(self.max_length) <= index)[None, None, :]  # (1, 1, S)
        # UNPACK copies whole rows with memcpy; indexing (STRIDED_SLICE) copied
        # element by element and dominated the step on LiteRT.
        layer_caches = tf.unstack(cache, axis=0)
        caches = []
        for i, block in enumerate(b.blocks):
            query, key, value = self._split_heads(block.attention.qkv(block.attention_norm(x)), 1)
            start = (0, index, 0)
            keys = ops.slice_update(layer_caches[2 * i], start, key)  # (H, S, hd)
            values = ops.slice_update(layer_caches[2 * i + 1], start, value)
            x = x + self._attend(block, query, keys, values, visible, 1)
            x = x + self._mlp(block, x)
            caches += [keys, values]
        return {"logits": self._logits(x), "cache": tf.stack(caches)}
