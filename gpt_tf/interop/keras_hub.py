"""keras-hub GPT-2 presets in and out (`GPT2CausalLM.from_preset` / `save_to_preset`).

keras-hub keeps GPT-2's attention as separate query/key/value EinsumDense
kernels `(hidden, heads, head_dim)` and an output kernel `(heads, head_dim,
hidden)`; GPT-2's fused `c_attn` is their concatenation, head-major.
"""

import os

import numpy as np

from gpt_tf.errors import UserError
from gpt_tf.interop import gpt2

PRESET_NAMES = ("gpt2_base_en", "gpt2_medium_en", "gpt2_large_en", "gpt2_extra_large_en",
                "gpt2_base_en_cnn_dailymail")


def backbone_to_gpt2(backbone):
    """A keras-hub `GPT2Backbone`'s weights as canonical GPT-2 tensors."""
    w = {v.path: np.asarray(v.numpy(), np.float32) for v in backbone.weights}
    d = backbone.hidden_dim
    tensors = {"wte.weight": w["token_embedding/embeddings"],
               "wpe.weight": w["position_embedding/embeddings"],
               "ln_f.weight": w["layer_norm/gamma"], "ln_f.bias": w["layer_norm/beta"]}
    for i in range(backbone.num_layers):
        p = f"transformer_layer_{i}/"
        a = p + "self_attention/"
        tensors.update({
            f"h.{i}.ln_1.weight": w[p + "self_attention_layer_norm/gamma"],
            f"h.{i}.ln_1.bias": w[p + "self_attention_layer_norm/beta"],
            f"h.{i}.attn.c_attn.weight": np.concatenate(
                [w[a + f"{n}/kernel"].reshape(d, d) for n in ("query", "key", "value")], 1),
            f"h.{i}.attn.c_attn.bias": np.concatenate(
                [w[a + f"{n}/bias"].reshape(d) for n in ("query", "key", "value")]),
            f"h.{i}.attn.c_proj.weight": w[a + "attention_output/kernel"].reshape(d, d),
            f"h.{i}.attn.c_proj.bias": w[a + "attention_output/bias"],
            f"h.{i}.ln_2.weight": w[p + "feedforward_layer_norm/gamma"],
            f"h.{i}.ln_2.bias": w[p + "feedforward_layer_norm/beta"],
            f"h.{i}.mlp.c_fc.weight": w[p + "feedforward_intermediate_dense/kernel"],
            f"h.{i}.mlp.c_fc.bias": w[p + "feedforward_intermediate_dense/bias"],
            f"h.{i}.mlp.c_proj.weight": w[p + "feedforward_output_dense/kernel"],
            f"h.{i}.mlp.c_proj.bias": w[p + "feedforward_output_dense/bias"],
        })
    return tensors


def gpt2_to_backbone(backbone, tensors):
    """Copies canonical GPT-2 tensors into a keras-hub `GPT2Backbone`."""
    by_path = {v.path: v for v in backbone.weights}
    d = backbone.hidden_dim

    def put(path, value):
        by_path[path].assign(value.reshape(by_path[path].shape))

    put("token_embedding/embeddings", tensors["wte.weight"])
    put("position_embedding/embeddings", tensors["wpe.weight"])
    put("layer_norm/gamma", tensors["ln_f.weight"])
    put("layer_norm/beta", tensors["ln_f.bias"])
    for i in range(backbone.num_layers):
        p, a = f"transformer_layer_{i}/", f"transformer_layer_{i}/self_attention/"
        qkv, qkv_bias = tensors[f"h.{i}.attn.c_attn.weight"], tensors[f"h.{i}.attn.c_attn.bias"]
        for k, name in enumerate(("query", "key", "value")):
            put(a + f"{name}/kernel", qkv[:, k * d:(k + 1) * d])
            put(a + f"{name}/bias", qkv_bias[k * d:(k + 1) * d])
        put(a + "attention_output/kernel", tensors[f"h.{i}.attn.c_proj.weight"])
        put(a + "attention_output/bias", tensors[f"h.{i}.attn.c_proj.bias"])
        for theirs, ours in (("ln_1", "self_attention_layer_norm"),
                             ("ln_2", "feedforward_layer_norm")):
            put(p + f"{ours}/gamma", tensors[f"h.{i}.{theirs}.weight"])
            put(p + f"{ours}/beta", tensors[f"h.{i}.{theirs}.bias"])
        put(p + "feedforward_intermediate_dense/kernel", tensors[f"h.{i}.mlp.c_fc.weight"])
        put(p + "feedforward_intermediate_dense/bias", tensors[f"h.{i}.mlp.c_fc.bias"])
        put(p + "feedforward_output_dense/kernel", tensors[f"h.{i}.mlp.c_proj.weight"])
        put(p + "feedforward_output_dense/bias", tensors[f"h.{i}.mlp.c_proj.bias"])


def _load_preset(source):
    import keras_hub

    if not os.path.isdir(source):
        if source not in PRESET_NAMES and "://" not in source:
            raise UserError(f"'{source}' is neither a preset directory nor a keras-hub GPT-2 "
                            f"preset name ({', '.join(PRESET_NAMES)})")
    elif not os.path.isfile(os.path.join(source, "config.json")):
        raise UserError(f"'{source}' has no config.json; pass a directory written by "
                        "keras-hub's save_to_preset")
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        tokenizer = keras_hub.models.Tokenizer.from_preset(source)
    except (OSError, ValueError, KeyError, TypeError) as error:
        if not os.path.isdir(source):
            raise UserError(
                f"keras-hub could not fetch preset '{source}' ({type(error).__name__}: "
                f"{str(error)[:120]}); offline, save it on a machine that is online with "
                f"keras_hub.models.GPT2CausalLM.from_preset('{source}').save_to_preset(DIR) "
                "and pass DIR") from None
        raise UserError(f"'{source}' is not a loadable keras-hub preset ({type(error).__name__}:"
                        f" {str(error)[:160]})") from None
    if type(backbone).__name__ != "GPT2Backbone":
        raise UserError(f"'{source}' holds a {type(backbone).__name__}; gpt-tf imports "
                        f"{gpt2.SUPPORTED}")
    return backbone, tokenizer


def import_keras_hub(source, run_dir):
    """Imports a keras-hub GPT-2 preset (a directory, or a preset name when online)."""
    backbone, tokenizer = _load_preset(source)
    vocab = dict(tokenizer.vocabulary)
    # keras-hub keeps merges.txt's "#version: 0.2" header line in `merges` (and skips it).
    merges = [tuple(m.split(" ")) for m in tokenizer.merges if "#version:" not in m]
    if any(len(m) != 2 for m in merges):
        raise UserError(f"'{source}': the tokenizer's merges are not GPT-2 pairs")
    model_config = {"vocab_size": backbone.vocabulary_size,
                    "sequence_length": backbone.max_sequence_length,
                    "num_layers": backbone.num_layers, "hidden_dim": backbone.hidden_dim,
                    "num_heads": backbone.num_heads,
                    "intermediate_dim": backbone.intermediate_dim,
                    "dropout": float(backbone.dropout), "layer_norm_epsilon": 1e-5}
    tensors = backbone_to_gpt2(backbone)
    gpt2.check_tensors(tensors, model_config, source)
    return gpt2.write_imported_run(run_dir, model_config, tensors, vocab, merges, {
        "format": "keras-hub", "path": os.path.abspath(source) if os.path.isdir(source)
        else source})


def export_keras_hub(run_dir, out_dir, checkpoint="final"):
    """Writes a keras-hub preset that `GPT2CausalLM.from_preset(out_dir)` loads.

    A byte-level BPE run gets a `GPT2CausalLM` with its `GPT2Tokenizer`. A
    SentencePiece run (trained by gpt-tf) gets the `GPT2Backbone` only: keras-hub's
    GPT-2 tokenizer is a byte-level BPE, so the preset cannot carry it; its
    `tokenizer.model` is written beside it for `keras_hub.tokenizers.SentencePieceTokenizer`.

    Returns:
        `{"out_dir", "loads_with", "tokenizer"}`.
    """
    import keras_hub

    from gpt_tf.textfiles import atomic_directory
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(run_dir, checkpoint)
    m = config.model
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=m.vocab_size, num_layers=m.num_layers, num_heads=m.num_heads,
        hidden_dim=m.hidden_dim, intermediate_dim=m.intermediate_dim, dropout=m.dropout,
        max_sequence_length=m.sequence_length)
    gpt2_to_backbone(backbone, gpt2.get_gpt2_weights(model.backbone))
    with atomic_directory(out_dir) as tmp:
        if tokenizer.kind == "byte_bpe":
            hub_tokenizer = keras_hub.models.GPT2Tokenizer(
                vocabulary=dict(tokenizer.vocab), merges=[f"{a} {b}" for a, b in tokenizer.merges])
            preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
                hub_tokenizer, sequence_length=m.sequence_length)
            keras_hub.models.GPT2CausalLM(backbone, preprocessor).save_to_preset(tmp)
            loads_with, kind = "keras_hub.models.GPT2CausalLM.from_preset", "GPT2Tokenizer"
        else:
            backbone.save_to_preset(tmp)
            tokenizer.save_host(tmp)
            loads_with = "keras_hub.models.GPT2Backbone.from_preset"
            kind = ("none in the preset (gpt-tf's SentencePiece is not GPT-2's BPE); "
                    "tokenizer.model beside it loads with "
                    "keras_hub.tokenizers.SentencePieceTokenizer(proto=...)")
    return {"out_dir": os.path.abspath(out_dir), "loads_with": loads_with, "tokenizer": kind}
