"""Multi-head causal self-attention with an explicit key/value cache."""

import keras
from keras import ops


def fresh_initializer(initializer):
    """A new instance of `initializer` with a seed of its own.

    A Keras 3 initializer instance fixes its seed when created, so one
    instance shared by several weights gives them identical values.
    """
    return initializer.__class__.from_config(initializer.get_config())


# Added to masked scores; finite so a fully masked row gives a uniform softmax
# instead of NaN. Scores are float32 even under mixed precision.
MASK_VALUE = -1e9


def attention_weights(query, key, mask):
    """Scaled dot-product attention weights: the one definition of the attention math.

    `CausalSelfAttention` calls it with `(B, H, T, hd)` heads, and the stepwise export
    graph (`gpt_tf/export/stepwise.py`, the TFLite and serving prefill/decode) with
    `(H, T, hd)`; `tests/test_tflite.py` checks the two paths agree.

    Args:
        query: `(..., T, hd)`.
        key: `(..., S, hd)`.
        mask: bool, broadcastable to `(..., T, S)`; True where a query may attend.

    Returns:
        `(..., T, S)` softmax weights in the query's dtype (computed in float32).
    """
    scale = 1.0 / float(query.shape[-1]) ** 0.5
    # `...td,...sd` lowers to one batched matmul with the key transposed in place
    # (no separate transpose of the whole cache on LiteRT).
    scores = ops.einsum("...td,...sd->...ts", query, ops.cast(key, query.dtype))
    scores = ops.cast(scores, "float32") * scale
    scores = ops.where(mask, scores, MASK_VALUE)
    return ops.cast(ops.softmax(scores, axis=-1), query.dtype)


@keras.saving.register_keras_serializable(package="gpt_tf")
class CausalSelfAttention(keras.layers.Layer):
    """Causal multi-head self-attention, one fused QKV projection.

    Two call paths share the weights:
    - no cache: attends over the `T` inputs with a causal mask;
    - cache: writes this call's keys/values into `cache` at
      `cache_update_index` and attends over the whole cache buffer, masking
      positions after each query. The cache is one tensor
      `(B, 2, max_length, num_heads, head_dim)`, so it can be a plain input and
      output of an exported (TFLite prefill/decode) signature.

    Args:
        num_heads: attention heads.
        hidden_dim: model width; must be divisible by `num_heads`.
        dropout: dropout on attention probabilities.
        kernel_initializer: initializer of the projections.
    """

    def __init__(self, num_heads, hidden_dim, dropout=0.0,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.head_dim = hidden_dim // num_heads

    def build(self, input_shape):
        self.qkv = keras.layers.Dense(
            3 * self.hidden_dim, kernel_initializer=fresh_initializer(self.kernel_initializer),
            dtype=self.dtype_policy, name="qkv",
        )
        self.qkv.build(input_shape)
        self.output_projection = keras.layers.Dense(
            self.hidden_dim, kernel_initializer=fresh_initializer(self.kernel_initializer),
            dtype=self.dtype_policy, name="output_projection",
        )
        self.output_projection.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, x, padding_mask=None, cache=None, cache_update_index=0, training=None):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.qkv(x)
        qkv = ops.reshape(qkv, (batch, length, 3, self.num_heads, self.head_dim))
        query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, T, H, hd)

        query_positions = ops.arange(length, dtype="int32")
        if cache is not None:
            # Write this call's keys/values at their absolute positions, then
            # attend over the whole buffer; later slots are masked below.
            start = (0, cache_update_index, 0, 0)
            key = ops.slice_update(cache[:, 0], start, ops.cast(key, cache.dtype))
            value = ops.slice_update(cache[:, 1], start, ops.cast(value, cache.dtype))
            cache = ops.stack([key, value], axis=1)  # (B, 2, S, H, hd)
            query_positions = query_positions + ops.cast(cache_update_index, "int32")
            key_positions = ops.arange(ops.shape(key)[1], dtype="int32")
        else:
            key_positions = query_positions

        # Causal: query at absolute position p sees keys at positions <= p.
        mask = ops.expand_dims(key_positions, 0) <= ops.expand_dims(query_positions, 1)  # (T, S)
        mask = mask[None, None, :, :]  # (1, 1, T, S)
        if padding_mask is not None:
            # Padding only hides keys; real positions never look at pads.
            mask = ops.logical_and(mask, ops.cast(padding_mask, "bool")[:, None, None, :])

        heads = (0, 2, 1, 3)  # (B, T, H, hd) <-> (B, H, T, hd)
        probs = attention_weights(ops.transpose(query, heads), ops.transpose(key, heads),
                                  mask)  # (B, H, T, S)
        probs = self.attention_dropout(probs, training=training)
        out = ops.einsum("bhts,bshd->bthd", probs, ops.cast(value, query.dtype))
        out = ops.reshape(out, (batch, length, self.hidden_dim))
        out = self.output_projection(out)
        if cache is not None:
            return out, cache
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
