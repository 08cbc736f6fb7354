"""GPT models: the backbone (ids -> hidden states) and the causal LM."""

from gpt_tf.models.backbone import GPTBackbone
from gpt_tf.models.causal_lm import GPTCausalLM

__all__ = ["GPTBackbone", "GPTCausalLM"]
