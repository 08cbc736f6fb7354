"""Learned absolute position embedding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="gpt_tf")
class PositionEmbedding(keras.layers.Layer):
    """Adds nothing; returns the embeddings of positions `start .. start+T-1`.

    Args:
        sequence_length: number of learned positions (the context window).
        hidden_dim: embedding width.
        initializer: initializer of the position table.
    """

    def __init__(self, sequence_length, hidden_dim, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.hidden_dim = hidden_dim
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, self.hidden_dim),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, token_ids, start_index=0):
        # token_ids: (B, T) -> (1, T, D), broadcast against the token embeddings.
        length = ops.shape(token_ids)[1]
        table = ops.convert_to_tensor(self.embeddings)
        positions = ops.slice(table, (start_index, 0), (length, self.hidden_dim))
        return ops.expand_dims(positions, 0)

    def compute_output_shape(self, input_shape):
        return (1, input_shape[1], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            sequence_length=self.sequence_length,
            hidden_dim=self.hidden_dim,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
