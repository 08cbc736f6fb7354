"""GPT backbone: token ids -> final hidden states (Keras functional)."""

import keras

from gpt_tf.layers import DecoderBlock, PositionEmbedding


@keras.saving.register_keras_serializable(package="gpt_tf")
class GPTBackbone(keras.Model):
    """Decoder-only Transformer: embeddings, N pre-LN blocks, final LayerNorm.

    Input `token_ids` is `(batch, length)` int32, right-padded if rows differ in
    length: causal attention means pads after a row's last real token cannot
    change its real positions.

    Args:
        vocab_size: number of token ids.
        sequence_length: maximum positions (context window).
        num_layers: decoder blocks.
        hidden_dim: width.
        num_heads: attention heads.
        intermediate_dim: MLP width.
        dropout: dropout rate (embeddings, residual branches, attention).
        layer_norm_epsilon: LayerNorm epsilon.
        dtype: dtype policy (e.g. `mixed_bfloat16`).
    """

    def __init__(self, vocab_size, sequence_length, num_layers, hidden_dim, num_heads,
                 intermediate_dim, dropout=0.0, layer_norm_epsilon=1e-5, dtype=None,
                 **kwargs):
        def init():
            # A new instance per weight: one shared Keras initializer instance
            # would give every same-shaped weight the same values.
            return keras.initializers.RandomNormal(stddev=0.02)

        # Tied: the same matrix embeds ids and (transposed) produces logits.
        token_embedding = keras.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=True, embeddings_initializer=init(),
            dtype=dtype, name="token_embedding")
        position_embedding = PositionEmbedding(
            sequence_length, hidden_dim, initializer=init(), dtype=dtype,
            name="position_embedding")
        embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        blocks = [
            DecoderBlock(num_heads, hidden_dim, intermediate_dim, dropout=dropout,
                         layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init(),
                         dtype=dtype, name=f"decoder_block_{i}")
            for i in range(num_layers)
        ]
        final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = token_embedding(token_ids) + position_embedding(token_ids)  # (B, T, D)
        x = embedding_dropout(x)
        for block in blocks:
            x = block(x)
        x = final_norm(x)
        super().__init__(inputs=token_ids, outputs=x, dtype=dtype, **kwargs)
        if dtype is not None:
            # The functional constructor keeps a float32 policy for the model
            # object itself; callers read `compute_dtype` (e.g. for the cache).
            self.dtype_policy = dtype

        self.token_embedding = token_embedding
        self.position_embedding = position_embedding
        self.embedding_dropout = embedding_dropout
        self.blocks = blocks
        self.final_norm = final_norm
        self.vocab_size = vocab_size
        self.sequence_length = sequence_length
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_dim = hidden_dim // num_heads

    @classmethod
    def from_model_config(cls, model_config, dtype=None):
        """Builds a backbone from a `gpt_tf.config.ModelConfig`."""
        return cls(
            vocab_size=model_config.vocab_size,
            sequence_length=model_config.sequence_length,
            num_layers=model_config.num_layers,
            hidden_dim=model_config.hidden_dim,
            num_heads=model_config.num_heads,
            intermediate_dim=model_config.intermediate_dim,
            dropout=model_config.dropout,
            layer_norm_epsilon=model_config.layer_norm_epsilon,
            dtype=dtype,
        )

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocab_size": self.vocab_size,
            "sequence_length": self.sequence_length,
            "num_layers": self.num_layers,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
