"""Keras layers of the GPT: attention, decoder block, position embedding."""

from gpt_tf.layers.causal_self_attention import CausalSelfAttention
from gpt_tf.layers.decoder_block import DecoderBlock
from gpt_tf.layers.position_embedding import PositionEmbedding

__all__ = ["CausalSelfAttention", "DecoderBlock", "PositionEmbedding"]
