"""Tiny GPT-2-family checkpoints on disk, made on the spot (no downloads, no torch).

`hf_folder` writes what Hugging Face's `save_pretrained` writes for a GPT-2
(config.json, model.safetensors, vocab.json, merges.txt) with a byte-level BPE
trained by the `tokenizers` library on the test corpus and random weights.
"""

import json
import os

import numpy as np

from gpt_tf.interop.safetensors_io import write_safetensors

SHAPE = {"n_layer": 2, "n_embd": 16, "n_head": 2, "n_positions": 32}


def train_bpe(texts, directory, vocab_size=400):
    """A GPT-2-style byte-level BPE (vocab.json, merges.txt) with <|endoftext|> last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    os.makedirs(directory, exist_ok=True)
    tokenizer.model.save(directory)
    with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as handle:
        vocab = json.load(handle)
    vocab["<|endoftext|>"] = len(vocab)  # GPT-2 keeps it as the last id
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as handle:
        json.dump(vocab, handle, ensure_ascii=False)
    return vocab


def gpt2_tensors(vocab_size, n_layer, n_embd, n_head, n_positions, seed=0, prefix=""):
    """Random GPT-2 weights by Hugging Face name (std 0.2, so that logits differ clearly)."""
    del n_head
    rng = np.random.default_rng(seed)
    d, f = n_embd, 4 * n_embd

    def w(*shape):
        return (0.2 * rng.standard_normal(shape)).astype(np.float32)

    tensors = {"wte.weight": w(vocab_size, d), "wpe.weight": w(n_positions, d),
               "ln_f.weight": 1 + w(d), "ln_f.bias": w(d)}
    for i in range(n_layer):
        tensors.update({
            f"h.{i}.ln_1.weight": 1 + w(d), f"h.{i}.ln_1.bias": w(d),
            f"h.{i}.attn.c_attn.weight": w(d, 3 * d), f"h.{i}.attn.c_attn.bias": w(3 * d),
            f"h.{i}.attn.c_proj.weight": w(d, d), f"h.{i}.attn.c_proj.bias": w(d),
            f"h.{i}.ln_2.weight": 1 + w(d), f"h.{i}.ln_2.bias": w(d),
            f"h.{i}.mlp.c_fc.weight": w(d, f), f"h.{i}.mlp.c_fc.bias": w(f),
            f"h.{i}.mlp.c_proj.weight": w(f, d), f"h.{i}.mlp.c_proj.bias": w(d),
        })
    return {prefix + k: v for k, v in tensors.items()}


def hf_config(vocab_size, **overrides):
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
              "vocab_size": vocab_size, "n_ctx": SHAPE["n_positions"],
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
              "n_inner": None, "tie_word_embeddings": True, **SHAPE}
    config.update(overrides)
    return config


def hf_folder(directory, texts, seed=0, config_overrides=None, prefix="transformer."):
    """Writes a tiny Hugging Face GPT-2 folder; returns its path."""
    vocab = train_bpe(texts, directory)
    write_safetensors(os.path.join(directory, "model.safetensors"),
                      gpt2_tensors(len(vocab), seed=seed, prefix=prefix, **SHAPE),
                      metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(hf_config(len(vocab), **(config_overrides or {})), handle)
    return directory


def openai_folder(directory, texts, seed=0):
    """Writes OpenAI's release layout (hparams.json, model.ckpt.*, encoder.json, vocab.bpe)
    holding the same weights `hf_folder` writes for `seed`; returns its path."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    vocab = train_bpe(texts, directory)
    os.replace(os.path.join(directory, "vocab.json"), os.path.join(directory, "encoder.json"))
    os.replace(os.path.join(directory, "merges.txt"), os.path.join(directory, "vocab.bpe"))
    names, values = [], []
    for name, value in gpt2_tensors(len(vocab), seed=seed, **SHAPE).items():
        parts = name.split(".")
        if parts[0] == "h":  # h.3.attn.c_attn.weight -> model/h3/attn/c_attn/w
            leaf = {"weight": "w", "bias": "b"}[parts[-1]]
            if parts[2].startswith("ln_"):
                leaf = {"w": "g", "b": "b"}[leaf]
            tf_name = "model/h{}/{}/{}".format(parts[1], "/".join(parts[2:-1]), leaf)
            if leaf == "w":
                value = value[None]  # Conv1D weights carry a leading axis of 1
        else:
            tf_name = {"wte.weight": "model/wte", "wpe.weight": "model/wpe",
                       "ln_f.weight": "model/ln_f/g", "ln_f.bias": "model/ln_f/b"}[name]
        names.append(tf_name)
        values.append(tf.constant(value))
    tf.raw_ops.SaveV2(prefix=os.path.join(directory, "model.ckpt"), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=values)
    with open(os.path.join(directory, "checkpoint"), "w") as handle:
        handle.write('model_checkpoint_path: "model.ckpt"\n')
    with open(os.path.join(directory, "hparams.json"), "w") as handle:
        json.dump({"n_vocab": len(vocab), "n_ctx": SHAPE["n_positions"], **SHAPE}, handle)
    return directory
