"""Pretrained weights in and out: GPT-2-family checkpoints as gpt-tf run directories.

`gpt2.py` holds the one mapping between GPT-2's named tensors and gpt-tf's
backbone (the architectures are the same: pre-LN, tanh GELU, learned
positions, fused head-major QKV, tied head); `hf.py`, `keras_hub.py` and
`openai.py` read (and write) the three layouts users have on disk;
`safetensors_io.py` reads and writes `.safetensors` with numpy only.
"""
