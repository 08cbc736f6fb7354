"""GPT-2's named tensors <-> gpt-tf's backbone, and imported run directories.

The one place that knows how GPT-2's weights sit in gpt-tf's model. GPT-2's
`Conv1D` weights are `[in, out]`, the layout of a Keras Dense kernel, so every
matrix copies as it is; `c_attn` is the fused `[q|k|v]` projection, head-major
inside each part, which is also how `CausalSelfAttention` splits its `qkv`
kernel. Names here are Hugging Face's, without the `transformer.` prefix.
"""

import json
import os

import numpy as np

from gpt_tf.errors import UserError

# The run directory's record of where its weights came from.
IMPORT_FILE = "imported_from.json"
# gpt-tf's special tokens that GPT-2's vocabulary lacks are appended in this order.
_BLOCK_PARTS = (
    # (GPT-2 name inside h.{i}, gpt-tf path inside decoder_block_{i})
    ("ln_1.weight", "attention_norm/gamma"), ("ln_1.bias", "attention_norm/beta"),
    ("attn.c_attn.weight", "attention/qkv/kernel"), ("attn.c_attn.bias", "attention/qkv/bias"),
    ("attn.c_proj.weight", "attention/output_projection/kernel"),
    ("attn.c_proj.bias", "attention/output_projection/bias"),
    ("ln_2.weight", "mlp_norm/gamma"), ("ln_2.bias", "mlp_norm/beta"),
    ("mlp.c_fc.weight", "mlp_in/kernel"), ("mlp.c_fc.bias", "mlp_in/bias"),
    ("mlp.c_proj.weight", "mlp_out/kernel"), ("mlp.c_proj.bias", "mlp_out/bias"),
)
_TOP_PARTS = (("wte.weight", "token_embedding/embeddings"),
              ("wpe.weight", "position_embedding/embeddings"),
              ("ln_f.weight", "final_norm/gamma"), ("ln_f.bias", "final_norm/beta"))
SUPPORTED = ("GPT-2's architecture (model_type 'gpt2': GPT-2, DistilGPT2, GPT-2 medium/large/xl "
             "and their fine-tunes) with a tied head")


def gpt2_names(num_layers):
    """Every tensor name of a GPT-2 with `num_layers` blocks -> gpt-tf weight path."""
    names = dict(_TOP_PARTS)
    for i in range(num_layers):
        for theirs, ours in _BLOCK_PARTS:
            names[f"h.{i}.{theirs}"] = f"decoder_block_{i}/{ours}"
    return names


def canonical_tensors(tensors, source):
    """Strips `transformer.` prefixes, drops attention-mask buffers, checks the tied head.

    Args:
        tensors: `{name: array}` as stored.
        source: the file(s) they came from (named in errors).
    """
    out = {}
    for name, array in tensors.items():
        if name.endswith(("attn.bias", "attn.masked_bias")) and "c_attn" not in name \
                and "c_proj" not in name:
            continue  # causal-mask buffers of old checkpoints, not weights
        out[name[len("transformer."):] if name.startswith("transformer.") else name] = array
    head = out.pop("lm_head.weight", None)
    if head is not None and "wte.weight" in out and not np.array_equal(head, out["wte.weight"]):
        raise UserError(f"'{source}': lm_head.weight differs from wte.weight (an untied head); "
                        f"gpt-tf supports {SUPPORTED}")
    return out


def check_tensors(tensors, model_config, source):
    """Every expected tensor present with its shape, nothing unknown left over."""
    d, f = model_config["hidden_dim"], model_config["intermediate_dim"]
    v, t = model_config["vocab_size"], model_config["sequence_length"]
    expected = {"wte.weight": (v, d), "wpe.weight": (t, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    block = {"ln_1.weight": (d,), "ln_1.bias": (d,), "attn.c_attn.weight": (d, 3 * d),
             "attn.c_attn.bias": (3 * d,), "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,),
             "ln_2.weight": (d,), "ln_2.bias": (d,), "mlp.c_fc.weight": (d, f),
             "mlp.c_fc.bias": (f,), "mlp.c_proj.weight": (f, d), "mlp.c_proj.bias": (d,)}
    for i in range(model_config["num_layers"]):
        expected.update({f"h.{i}.{k}": s for k, s in block.items()})
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise UserError(f"'{source}' lacks {len(missing)} tensor(s) the config implies, e.g. "
                        f"'{missing[0]}'; the weights and config.json do not match")
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise UserError(f"'{source}' has tensors GPT-2 does not, e.g. '{unknown[0]}'; "
                        f"gpt-tf supports {SUPPORTED}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise UserError(f"'{source}': tensor '{name}' has shape {list(tensors[name].shape)}"
                            f", the config implies {list(shape)}")


def add_special_tokens(vocab, wte, seed=0):
    """Appends gpt-tf's pad and task separators to a GPT-2 vocabulary and embedding.

    New rows start at the mean of the pretrained rows plus a little noise (a
    tenth of each dimension's spread), so the new ids predict like an average
    token at first and can still be told apart.

    Returns:
        `(vocab, wte, added)`: the grown vocabulary and matrix, and `{token: id}` added.
    """
    from gpt_tf.tokenizer import END_OF_TEXT, PAD, SEPARATORS

    if END_OF_TEXT not in vocab:
        raise UserError(f"the vocabulary has no {END_OF_TEXT}; a GPT-2 vocabulary has it "
                        "(id 50256)")
    if len(vocab) != wte.shape[0]:
        raise UserError(f"vocab.json has {len(vocab)} tokens but the embedding has "
                        f"{wte.shape[0]} rows; gpt-tf needs one row per token")
    added = {}
    vocab = dict(vocab)
    for token in (PAD,) + SEPARATORS:
        if token not in vocab:
            added[token] = vocab[token] = len(vocab)
    if added:
        rng = np.random.default_rng(seed)
        wte = wte.astype(np.float32)
        rows = wte.mean(axis=0) + 0.1 * wte.std(axis=0) * rng.standard_normal(
            (len(added), wte.shape[1])).astype(np.float32)
        wte = np.concatenate([wte, rows.astype(np.float32)], axis=0)
    return vocab, wte, added


def write_imported_run(run_dir, model_config, tensors, vocab, merges, source):
    """Writes a run directory: config, tokenizer files, `model.keras`, `imported_from.json`.

    Args:
        run_dir: must not exist; written atomically (nothing is left on error).
        model_config: ModelConfig fields of the checkpoint (its own vocabulary size).
        tensors: canonical GPT-2 tensors, checked.
        vocab: GPT-2 `vocab.json` contents; merges: its merge list.
        source: `{"format", "path", ...}` recorded in `imported_from.json`.

    Returns:
        `{"run_dir", "parameters", "added_tokens", "vocab_size"}`.
    """
    from gpt_tf.byte_bpe import MERGES_FILE, VOCAB_FILE
    from gpt_tf.config import RunConfig
    from gpt_tf.models import GPTCausalLM
    from gpt_tf.textfiles import atomic_directory
    from gpt_tf.tokenizer import END_OF_TEXT, PAD, SEPARATORS, BytePairTokenizer
    from gpt_tf.training import CONFIG_FILE, MODEL_KERAS

    vocab, wte, added = add_special_tokens(vocab, tensors["wte.weight"])
    tensors = dict(tensors, **{"wte.weight": wte})
    config = RunConfig.from_dict({"model": dict(model_config, vocab_size=len(vocab))})
    model = GPTCausalLM.from_model_config(config.model)
    set_gpt2_weights(model.backbone, tensors)
    with atomic_directory(run_dir) as tmp:
        with open(os.path.join(tmp, VOCAB_FILE), "w", encoding="utf-8") as handle:
            json.dump(vocab, handle, ensure_ascii=False)
        with open(os.path.join(tmp, MERGES_FILE), "w", encoding="utf-8") as handle:
            handle.write("#version: 0.2\n")
            handle.writelines(f"{a} {b}\n" for a, b in merges)
        with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as handle:
            json.dump({"kind": "byte_bpe", "special_tokens": {
                "pad": PAD, "end_of_text": END_OF_TEXT, "separators": list(SEPARATORS)}}, handle)
        tokenizer = BytePairTokenizer(tmp)
        tokenizer.save_metadata(tmp)
        with open(os.path.join(tmp, CONFIG_FILE), "w") as handle:
            handle.write(config.to_json())
        model.save(os.path.join(tmp, MODEL_KERAS))
        record = dict(source, added_tokens=added, original_vocab_size=len(vocab) - len(added),
                      new_rows_init="mean of the pretrained rows + N(0, (0.1 * row std)^2), "
                                    "seed 0")
        with open(os.path.join(tmp, IMPORT_FILE), "w") as handle:
            json.dump(record, handle, indent=2)
    return {"run_dir": os.path.abspath(run_dir), "parameters": int(model.num_parameters()),
            "added_tokens": added, "vocab_size": len(vocab)}


def set_gpt2_weights(backbone, tensors):
    """Copies canonical GPT-2 tensors into a `GPTBackbone` (shapes already checked)."""
    by_path = {w.path: w for w in backbone.weights}
    for theirs, ours in gpt2_names(backbone.num_layers).items():
        by_path[ours].assign(tensors[theirs].astype(np.float32))


def get_gpt2_weights(backbone):
    """A `GPTBackbone`'s weights as canonical GPT-2 tensors (float32 numpy)."""
    by_path = {w.path: w for w in backbone.weights}
    return {theirs: np.asarray(by_path[ours].numpy(), np.float32)
            for theirs, ours in gpt2_names(backbone.num_layers).items()}


def model_config_from_hparams(hparams, source):
    """ModelConfig fields from GPT-2 hyperparameters (`config.json` or `hparams.json` keys).

    Raises:
        UserError: a setting gpt-tf's architecture does not have.
    """
    def need(key, *alternatives):
        for name in (key,) + alternatives:
            if name in hparams:
                value = hparams[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UserError(f"'{source}': {name} must be a positive integer, got "
                                    f"{value!r}")
                return value
        raise UserError(f"'{source}' has no '{key}'; it is not a GPT-2 config")

    activation = hparams.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        raise UserError(f"'{source}': activation_function '{activation}' is not GPT-2's tanh "
                        f"GELU; gpt-tf supports {SUPPORTED}")
    unsupported = [key for key in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn")
                   if hparams.get(key)]
    if not hparams.get("scale_attn_weights", True):
        unsupported.append("scale_attn_weights=false")
    if hparams.get("tie_word_embeddings", True) is False:
        unsupported.append("tie_word_embeddings=false (an untied head)")
    if hparams.get("add_cross_attention"):
        unsupported.append("add_cross_attention")
    if unsupported:
        raise UserError(f"'{source}' sets {', '.join(unsupported)}; gpt-tf supports {SUPPORTED} "
                        "without these options")
    hidden, heads = need("n_embd"), need("n_head")
    if hidden % heads:
        raise UserError(f"'{source}': n_embd {hidden} is not divisible by n_head {heads}")
    inner = need("n_inner") if hparams.get("n_inner") is not None else 4 * hidden

    def number(key, default):
        value = hparams.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"'{source}': {key} must be a number, got {value!r}")
        return float(value)

    return {"vocab_size": need("vocab_size", "n_vocab"),
            "sequence_length": need("n_positions", "n_ctx"),
            "num_layers": need("n_layer"), "hidden_dim": hidden, "num_heads": heads,
            "intermediate_dim": inner, "dropout": number("resid_pdrop", 0.1),
            "layer_norm_epsilon": number("layer_norm_epsilon", 1e-5)}
