"""OpenAI's original GPT-2 release: `hparams.json`, `model.ckpt.*`, `encoder.json`, `vocab.bpe`.

The TensorFlow 1 checkpoint is read with `tf.train.load_checkpoint`. Its
Conv1D weights carry a leading axis of 1 (`[1, in, out]`); names are
`model/h{i}/attn/c_attn/w`, `model/ln_f/g`, ... (`g`/`b` for LayerNorm).
"""

import os

import numpy as np

from gpt_tf.errors import UserError
from gpt_tf.files import read_json
from gpt_tf.interop import gpt2

_PARTS = {"ln_1/g": "ln_1.weight", "ln_1/b": "ln_1.bias", "attn/c_attn/w": "attn.c_attn.weight",
          "attn/c_attn/b": "attn.c_attn.bias", "attn/c_proj/w": "attn.c_proj.weight",
          "attn/c_proj/b": "attn.c_proj.bias", "ln_2/g": "ln_2.weight", "ln_2/b": "ln_2.bias",
          "mlp/c_fc/w": "mlp.c_fc.weight", "mlp/c_fc/b": "mlp.c_fc.bias",
          "mlp/c_proj/w": "mlp.c_proj.weight", "mlp/c_proj/b": "mlp.c_proj.bias"}
_LAYOUT = ("pass the folder of OpenAI's GPT-2 release (hparams.json, model.ckpt.*, "
           "encoder.json, vocab.bpe)")
_TOP = {"model/wte": "wte.weight", "model/wpe": "wpe.weight", "model/ln_f/g": "ln_f.weight",
        "model/ln_f/b": "ln_f.bias"}


def read_checkpoint(directory):
    """The checkpoint's tensors under canonical GPT-2 names."""
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(directory) or os.path.join(directory, "model.ckpt")
    if not os.path.isfile(prefix + ".index"):
        raise UserError(f"'{directory}' has no model.ckpt.index; pass the folder of OpenAI's "
                        "GPT-2 release (hparams.json, model.ckpt.*, encoder.json, vocab.bpe)")
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        tensors = {}
        for name in names:
            if name in _TOP:
                tensors[_TOP[name]] = reader.get_tensor(name)
                continue
            head, _, rest = name.partition("/")
            block, _, part = rest.partition("/")
            if head == "model" and block.startswith("h") and block[1:].isdigit() \
                    and part in _PARTS:
                value = reader.get_tensor(name)
                tensors[f"h.{int(block[1:])}.{_PARTS[part]}"] = (
                    value[0] if part.endswith("/w") and value.ndim == 3 else value)
            else:
                tensors[name] = reader.get_tensor(name)  # reported as unknown by check_tensors
    except (tf.errors.OpError, ValueError) as error:
        raise UserError(f"'{prefix}' cannot be read ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:160]}); download the checkpoint "
                        "again") from None
    try:
        return {k: np.asarray(v, np.float32) for k, v in tensors.items()}, prefix
    except (TypeError, ValueError):
        raise UserError(f"'{prefix}' holds non-numeric variables; it is not a GPT-2 "
                        "checkpoint") from None


def import_openai(directory, run_dir):
    """Imports OpenAI's GPT-2 release layout as a gpt-tf run directory."""
    if not os.path.isdir(directory):
        raise UserError(f"'{directory}' is not a folder; pass OpenAI's GPT-2 model folder")
    hparams = read_json(os.path.join(directory, "hparams.json"), _LAYOUT)
    if not isinstance(hparams, dict):
        raise UserError(f"'{os.path.join(directory, 'hparams.json')}' must hold an object")
    model_config = gpt2.model_config_from_hparams(
        dict(hparams, resid_pdrop=0.1), os.path.join(directory, "hparams.json"))
    from gpt_tf.byte_bpe import read_vocab_and_merges

    vocab, merges = read_vocab_and_merges(directory, "encoder.json", "vocab.bpe")
    tensors, source = read_checkpoint(directory)
    gpt2.check_tensors(tensors, model_config, source)
    return gpt2.write_imported_run(run_dir, model_config, tensors, vocab, merges, {
        "format": "openai", "path": os.path.abspath(directory)})
