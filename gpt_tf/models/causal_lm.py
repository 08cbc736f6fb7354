"""GPT causal language model: backbone + tied LM head + a KV-cache path."""

import keras
from keras import ops

from gpt_tf.models.backbone import GPTBackbone


@keras.saving.register_keras_serializable(package="gpt_tf")
class GPTCausalLM(keras.Model):
    """Token ids `(B, T)` -> next-token logits `(B, T, vocab)` in float32.

    The LM head is the transposed token embedding (tied weights). Besides the
    functional forward pass, `call_with_cache` runs the same layers over a KV
    cache for generation; `tests/test_models.py` proves the two agree.

    Args:
        backbone: a `GPTBackbone`.
    """

    def __init__(self, backbone, **kwargs):
        token_ids = backbone.input
        hidden = backbone(token_ids)
        logits = backbone.token_embedding(hidden, reverse=True)
        # Logits (and so the loss and sampling) stay float32 under mixed precision.
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        super().__init__(inputs=token_ids, outputs=logits, **kwargs)
        self.backbone = backbone

    def cache_shape(self, batch_size, max_length):
        """Shape of the KV cache: `(B, layers, 2, max_length, heads, head_dim)`."""
        b = self.backbone
        return (batch_size, b.num_layers, 2, max_length, b.num_heads, b.head_dim)

    def empty_cache(self, batch_size, max_length):
        """A zero KV cache in the model's compute dtype."""
        return ops.zeros(self.cache_shape(batch_size, max_length), dtype=self.backbone.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs `token_ids` at positions `cache_update_index ...` over a cache.

        Args:
            token_ids: `(B, T)` int32, the new tokens (T=1 when decoding,
                the prompt buffer when prefilling).
            cache: `(B, layers, 2, S, heads, head_dim)` keys/values so far.
            cache_update_index: scalar int, absolute position of `token_ids[:, 0]`.

        Returns:
            `(logits, hidden, cache)`: float32 logits `(B, T, vocab)`, final
            hidden states `(B, T, D)` and the updated cache.
        """
        b = self.backbone
        x = b.token_embedding(token_ids) + b.position_embedding(
            token_ids, start_index=cache_update_index)
        layer_caches = []
        for i, block in enumerate(b.blocks):
            x, layer_cache = block(x, cache=cache[:, i], cache_update_index=cache_update_index)
            layer_caches.append(layer_cache)
        cache = ops.stack(layer_caches, axis=1)
        hidden = b.final_norm(x)
        logits = ops.cast(b.token_embedding(hidden, reverse=True), "float32")
        return logits, hidden, cache

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    @classmethod
    def from_model_config(cls, model_config, dtype=None):
        """Builds a causal LM from a `gpt_tf.config.ModelConfig`."""
        return cls(GPTBackbone.from_model_config(model_config, dtype=dtype))

    def num_parameters(self):
        return int(sum(int(ops.size(w)) for w in self.weights))
