"""TFLite / LiteRT export: `prefill` + `decode` with an explicit KV cache.

`export_tflite_run(RUN_DIR, NAME)` writes `tflite/NAME/`:

    model.tflite      two signatures, builtin ops only (no Flex delegate)
    tokenizer.model   the SentencePiece model (tokenization stays on the host), or
    bpe_tokenizer.json  a GPT-2 byte-level BPE in the `tokenizers` library's format
    meta.json         vocab, special ids, cache layout, quantization, sha256s

Signatures (batch 1, see `gpt_tf/export/stepwise.py`):

    prefill(token_ids int32 (1, T), 1 <= T <= max_length)
        -> logits float32 (1, V) at the last position, cache float32 (2L, H, S, hd)
    decode(token_id int32 (1, 1), position int32 (1,), cache)
        -> logits (1, V), cache with the token's keys/values written at `position`

Quantization (`quantize`):
- `none`: float32.
- `fp16`: float16 weights, float32 compute (about half the size).
- `int8`: dynamic-range int8 weights with one scale per tensor (about a
  quarter). Per-channel scales would be slightly more accurate, but the
  tied embedding then needs two int8 copies (one per-tensor for the lookup,
  one per-channel for the LM head), which makes the file 39% of float32
  instead of 27%; the perplexity gate (tests) measures what it costs.

The converter runs from a SavedModel built by `keras.export.ExportArchive`,
never from a plain `tf.Module` wrapper, which converts without error but
ships zero-initialised weights (FIELD_NOTES); `check_tflite_model` asserts
the file size and the builtin-only op list after every conversion.
"""

import datetime
import json
import os
import shutil
import tempfile

from gpt_tf.errors import UserError
from gpt_tf.files import sha256_file

QUANTIZATIONS = ("none", "fp16", "int8")
MODEL_FILE = "model.tflite"
META_FILE = "meta.json"
META_FORMAT_VERSION = 1


def convert_to_tflite(model, quantize="none", max_length=None):
    """Converts a `GPTCausalLM` to a `.tflite` flatbuffer (bytes).

    Args:
        model: the model.
        quantize: `none`, `fp16` or `int8`.
        max_length: KV cache length (default: the context window).

    Returns:
        `(flatbuffer_bytes, stepwise_graph)`.
    """
    import keras
    import tensorflow as tf

    from gpt_tf.export.saved_model import float32_model
    from gpt_tf.export.stepwise import StepwiseGraph

    if quantize not in QUANTIZATIONS:
        raise UserError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    model = float32_model(model)
    graph = StepwiseGraph(model, max_length)
    specs = graph.input_signatures()
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("prefill", graph.prefill, specs["prefill"])
    archive.add_endpoint("decode", graph.decode, specs["decode"])
    with tempfile.TemporaryDirectory(prefix="gpt-tf-tflite-") as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            tmp, signature_keys=["prefill", "decode"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            # One int8 copy of the tied embedding instead of two (see module doc).
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        try:
            flatbuffer = converter.convert()
        except Exception as error:  # the converter raises ConverterError and friends
            raise RuntimeError(f"TFLite conversion failed: {error}") from error
    return flatbuffer, graph


def tflite_operators(flatbuffer):
    """Sorted operator names of a `.tflite` model, over all subgraphs.

    Builtin ops appear as their builtin name (`FULLY_CONNECTED`); custom ops
    as `CUSTOM:<name>` (Flex ops are custom ops named `Flex...`).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items()
             if not key.startswith("_")}
    used = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            if builtin == schema.BuiltinOperator.CUSTOM:
                custom = code.customCode.decode() if isinstance(code.customCode, bytes) \
                    else str(code.customCode)
                used.add(f"CUSTOM:{custom}")
            else:
                used.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(used)


def check_tflite_model(flatbuffer, model, quantize):
    """Asserts builtin-only ops and a plausible size (catches zero-weight exports).

    Raises:
        RuntimeError: on custom/Flex ops or a file far smaller than its weights.
    """
    custom = [op for op in tflite_operators(flatbuffer) if op.startswith("CUSTOM:")]
    if custom:
        raise RuntimeError(f"the .tflite needs non-builtin ops {custom}; devices without the "
                           "Flex delegate cannot run it")
    import hashlib

    import numpy as np

    bytes_per_weight = {"none": 4, "fp16": 2, "int8": 1}[quantize]
    # The converter stores identical constants once, so count distinct tensors
    # (an untrained model may legitimately repeat some).
    distinct = {}
    for weight in model.weights:
        value = np.asarray(weight.numpy())
        distinct[hashlib.sha1(value.tobytes()).hexdigest()] = value.size
    weights = sum(distinct.values())
    expected = weights * bytes_per_weight
    if len(flatbuffer) < 0.8 * expected:
        raise RuntimeError(
            f"the .tflite is {len(flatbuffer):,} bytes but {weights:,} distinct weights at "
            f"{bytes_per_weight} byte(s) need ~{expected:,}: weights were lost in conversion")


def export_tflite(model, tokenizer, output_dir, quantize="none", max_length=None,
                  overwrite=False, extra_metadata=None):
    """Writes `output_dir/` with `model.tflite`, `tokenizer.model`, `meta.json`.

    The directory is built under a temporary name and renamed into place.

    Args:
        model: a `GPTCausalLM`.
        tokenizer: its `Tokenizer`.
        output_dir: e.g. `tflite/NAME`.
        quantize: `none`, `fp16` or `int8`.
        max_length: KV cache length (default: the context window).
        overwrite: replace an existing `output_dir`.
        extra_metadata: merged into `meta.json`.

    Returns:
        The metadata dict written to `meta.json`.
    """
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir) and not overwrite:
        raise UserError(f"'{output_dir}' already exists; pass --overwrite or choose another "
                        "--name")
    parent = os.path.dirname(output_dir)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise UserError(f"'{parent}' is a file, not a folder; choose another --output-dir")
    if tokenizer.vocab_size != model.backbone.vocab_size:
        raise UserError("the tokenizer and the model disagree on the vocabulary size")
    flatbuffer, graph = convert_to_tflite(model, quantize, max_length)
    check_tflite_model(flatbuffer, model, quantize)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    try:
        with open(os.path.join(tmp, MODEL_FILE), "wb") as handle:
            handle.write(flatbuffer)
        tokenizer_file = tokenizer.save_host(tmp)
        meta = _metadata(model, tokenizer, graph, quantize, flatbuffer, tmp, tokenizer_file)
        meta.update(extra_metadata or {})
        with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2)
        if os.path.exists(output_dir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.old-", dir=parent)
            os.rename(output_dir, os.path.join(old, "x"))
            os.rename(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _metadata(model, tokenizer, graph, quantize, flatbuffer, directory, tokenizer_file):
    """`meta.json`: shapes, special ids, the cache layout, the signatures, hashes and sizes."""
    backbone = model.backbone
    return {
        "format_version": META_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quantization": quantize,
        "vocab_size": int(backbone.vocab_size),
        "max_length": graph.max_length,
        "num_layers": graph.num_layers,
        "num_heads": graph.num_heads,
        "head_dim": graph.head_dim,
        "hidden_dim": graph.hidden_dim,
        "parameters": int(model.num_parameters()),
        "special_ids": {"pad": int(tokenizer.pad_id),
                        "end_of_text": int(tokenizer.end_of_text_id),
                        **{k: int(v) for k, v in tokenizer.separator_ids.items()}},
        "cache": {"shape": list(graph.cache_shape), "dtype": "float32",
                  "layout": "row 2*i: layer i keys, row 2*i+1: layer i values; "
                            "(heads, max_length, head_dim) each"},
        "signatures": {
            "prefill": {"inputs": {"token_ids": ["int32", [1, -1]]},
                        "outputs": {"logits": ["float32", [1, graph.vocab_size]],
                                    "cache": ["float32", list(graph.cache_shape)]}},
            "decode": {"inputs": {"token_id": ["int32", [1, 1]],
                                  "position": ["int32", [1]],
                                  "cache": ["float32", list(graph.cache_shape)]},
                       "outputs": {"logits": ["float32", [1, graph.vocab_size]],
                                   "cache": ["float32", list(graph.cache_shape)]}},
        },
        "tokenizer": {"kind": tokenizer.kind, "file": tokenizer_file},
        "prompt_format": "end_of_text id, then the tokenizer's ids of the prompt",
        "operators": tflite_operators(flatbuffer),
        "sha256": {MODEL_FILE: sha256_file(os.path.join(directory, MODEL_FILE)),
                   tokenizer_file: sha256_file(os.path.join(directory, tokenizer_file))},
        "size_bytes": len(flatbuffer),
    }


def export_tflite_run(run_dir, name, output_dir="tflite", quantize="none", checkpoint="final",
                      max_length=None, overwrite=False):
    """Exports a training run to `output_dir/name/` (see `export_tflite`)."""
    from gpt_tf.task_card import read_task_card
    from gpt_tf.training import load_model

    if not name or "/" in name or name.startswith("."):
        raise UserError(f"model name {name!r} must be a plain directory name")
    model, tokenizer, config = load_model(run_dir, checkpoint)
    extra = {"source": {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint},
             "task_card": read_task_card(run_dir)}
    return export_tflite(model, tokenizer, os.path.join(output_dir, name), quantize,
                         max_length, overwrite, extra)
