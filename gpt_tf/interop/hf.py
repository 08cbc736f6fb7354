"""Hugging Face GPT-2 folders in and out, read and written with numpy only.

A folder is what `save_pretrained` writes: `config.json`, `model.safetensors`
(or shards with `model.safetensors.index.json`), `vocab.json`, `merges.txt`.
torch and transformers are never imported: a CUDA torch build imported after
TensorFlow in one process crashes it.
"""

import json
import os

from gpt_tf.errors import UserError
from gpt_tf.files import read_json
from gpt_tf.interop import gpt2
from gpt_tf.interop.safetensors_io import read_safetensors

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"


def read_hf_config(directory):
    """`config.json` as a dict, checked to be GPT-2's."""
    path = os.path.join(directory, CONFIG_FILE)
    config = read_json(path, "pass a folder written by save_pretrained (config.json, "
                             f"{WEIGHTS_FILE}, vocab.json, merges.txt)")
    if not isinstance(config, dict):
        raise UserError(f"'{path}' must hold a JSON object")
    model_type = config.get("model_type")
    if model_type != "gpt2":
        raise UserError(f"'{path}': model_type is {model_type!r}; gpt-tf imports "
                        f"{gpt2.SUPPORTED}")
    return config


def read_hf_weights(directory):
    """All tensors of the folder's safetensors file(s), by name."""
    single = os.path.join(directory, WEIGHTS_FILE)
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(single):
        return read_safetensors(single), single
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
            if not all(isinstance(shard, str) for shard in shards):
                raise TypeError("weight_map values must be file names")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise UserError(f"'{index}' is not a safetensors index ({error})") from None
        tensors = {}
        for shard in shards:
            tensors.update(read_safetensors(os.path.join(directory, os.path.basename(shard))))
        return tensors, index
    if os.path.isfile(os.path.join(directory, "pytorch_model.bin")):
        raise UserError(
            f"'{directory}' has only pytorch_model.bin; gpt-tf reads {WEIGHTS_FILE}. Convert it "
            "once, in an environment with torch and transformers (not this process): python -c "
            "\"import sys,transformers as t; m=t.GPT2LMHeadModel.from_pretrained(sys.argv[1]); "
            f"m.save_pretrained(sys.argv[1], safe_serialization=True)\" {directory}")
    raise UserError(f"'{directory}' has no {WEIGHTS_FILE}; pass a Hugging Face GPT-2 folder")


def import_hf(directory, run_dir):
    """Imports a Hugging Face GPT-2 folder as a gpt-tf run directory.

    Args:
        directory: the folder (`config.json`, `model.safetensors`, `vocab.json`, `merges.txt`).
        run_dir: the run directory to create (must not exist).

    Returns:
        What `gpt2.write_imported_run` returns.
    """
    from gpt_tf.byte_bpe import read_vocab_and_merges

    if not os.path.isdir(directory):
        raise UserError(f"'{directory}' is not a folder; pass a Hugging Face GPT-2 folder")
    config = read_hf_config(directory)
    model_config = gpt2.model_config_from_hparams(config, os.path.join(directory, CONFIG_FILE))
    vocab, merges = read_vocab_and_merges(directory)
    tensors, source = read_hf_weights(directory)
    tensors = gpt2.canonical_tensors(tensors, source)
    gpt2.check_tensors(tensors, model_config, source)
    return gpt2.write_imported_run(run_dir, model_config, tensors, vocab, merges, {
        "format": "huggingface", "path": os.path.abspath(directory),
        "architectures": config.get("architectures"),
        "name_or_path": config.get("_name_or_path")})


def export_hf(run_dir, out_dir, checkpoint="final"):
    """Writes a Hugging Face GPT-2 folder from a run.

    `config.json`, `model.safetensors` (GPT-2's tensor names, tied head) and, for
    a byte-level BPE run, `vocab.json`, `merges.txt`, `tokenizer.json` (the fast
    tokenizer, special tokens included) and the tokenizer configs:
    `GPT2LMHeadModel.from_pretrained`, `AutoTokenizer.from_pretrained` and
    keras-hub's `GPT2Backbone.from_preset` load it. A SentencePiece run (trained
    by gpt-tf) exports the same weights and config, plus `tokenizer.model`: the
    model loads everywhere, but GPT-2's tokenizer classes cannot read it; use
    `sentencepiece` (or keras-hub's `SentencePieceTokenizer`) for its ids.

    Returns:
        `{"out_dir", "tokenizer", "files"}`.
    """
    from gpt_tf.interop.safetensors_io import write_safetensors
    from gpt_tf.textfiles import atomic_directory
    from gpt_tf.tokenizer import END_OF_TEXT, PAD
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(run_dir, checkpoint)
    m = config.model
    hf_config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": m.vocab_size, "n_positions": m.sequence_length,
        "n_ctx": m.sequence_length, "n_embd": m.hidden_dim, "n_layer": m.num_layers,
        "n_head": m.num_heads, "n_inner": m.intermediate_dim,
        "activation_function": "gelu_new", "layer_norm_epsilon": m.layer_norm_epsilon,
        "resid_pdrop": m.dropout, "embd_pdrop": m.dropout, "attn_pdrop": m.dropout,
        "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": True,
        "use_cache": True, "bos_token_id": int(tokenizer.end_of_text_id),
        "eos_token_id": int(tokenizer.end_of_text_id), "pad_token_id": int(tokenizer.pad_id),
        "exported_by": "gpt-tf", "gpt_tf_tokenizer": tokenizer.kind,
    }
    with atomic_directory(out_dir) as tmp:
        write_safetensors(os.path.join(tmp, WEIGHTS_FILE),
                          gpt2.get_gpt2_weights(model.backbone), metadata={"format": "pt"})
        _write_json(os.path.join(tmp, CONFIG_FILE), hf_config)
        if tokenizer.kind == "byte_bpe":
            tokenizer.save(tmp)  # vocab.json, merges.txt and gpt-tf's metadata ...
            os.replace(os.path.join(tmp, "tokenizer.json"),
                       os.path.join(tmp, "gpt_tf_tokenizer.json"))
            tokenizer.host.save(os.path.join(tmp, "tokenizer.json"))  # ... HF's fast tokenizer
            specials = {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
                        "unk_token": END_OF_TEXT, "pad_token": PAD,
                        "additional_special_tokens": [
                            t for t in tokenizer.special_tokens if t not in (END_OF_TEXT, PAD)]}
            _write_json(os.path.join(tmp, "special_tokens_map.json"), specials)
            _write_json(os.path.join(tmp, "tokenizer_config.json"), {
                "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False,
                "model_max_length": m.sequence_length, **specials})
            kind = "GPT-2 byte-level BPE (GPT2Tokenizer / GPT2TokenizerFast / keras-hub)"
        else:
            tokenizer.save_host(tmp)
            kind = ("SentencePiece tokenizer.model: GPT-2's tokenizer classes cannot load it; "
                    "tokenize with sentencepiece or keras_hub.tokenizers.SentencePieceTokenizer")
        files = sorted(os.listdir(tmp))
    return {"out_dir": os.path.abspath(out_dir), "tokenizer": kind, "files": files}


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)
