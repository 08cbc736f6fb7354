"""Pre-LayerNorm GPT decoder block."""

import keras

from gpt_tf.layers.causal_self_attention import CausalSelfAttention, fresh_initializer


def gelu_tanh(x):
    """GELU with the tanh approximation, as in GPT-2."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="gpt_tf")
class DecoderBlock(keras.layers.Layer):
    """`x + Attn(LN(x))`, then `x + MLP(LN(x))` (GPT-2 layout).

    Args:
        num_heads: attention heads.
        hidden_dim: model width.
        intermediate_dim: MLP width.
        dropout: dropout on both residual branches and attention probabilities.
        layer_norm_epsilon: LayerNorm epsilon.
        kernel_initializer: initializer of every dense kernel.
    """

    def __init__(self, num_heads, hidden_dim, intermediate_dim, dropout=0.0,
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        policy = self.dtype_policy
        init = self.kernel_initializer
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="attention_norm")
        self.attention = CausalSelfAttention(
            self.num_heads, self.hidden_dim, dropout=self.dropout,
            kernel_initializer=init, dtype=policy, name="attention")
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="mlp_norm")
        self.mlp_in = keras.layers.Dense(
            self.intermediate_dim, activation=gelu_tanh,
            kernel_initializer=fresh_initializer(init), dtype=policy, name="mlp_in")
        self.mlp_out = keras.layers.Dense(
            self.hidden_dim, kernel_initializer=fresh_initializer(init), dtype=policy,
            name="mlp_out")
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        for layer in (self.attention_norm, self.attention, self.mlp_norm):
            layer.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.built = True

    def call(self, x, padding_mask=None, cache=None, cache_update_index=0, training=None):
        # x: (B, T, D)
        attended = self.attention(
            self.attention_norm(x), padding_mask=padding_mask, cache=cache,
            cache_update_index=cache_update_index, training=training)
        if cache is not None:
            attended, cache = attended
        x = x + self.residual_dropout(attended, training=training)
        hidden = self.mlp_out(self.mlp_in(self.mlp_norm(x)))  # (B, T, D) via (B, T, 4D)
        x = x + self.residual_dropout(hidden, training=training)
        if cache is not None:
            return x, cache
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
