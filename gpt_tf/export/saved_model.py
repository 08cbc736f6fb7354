"""SavedModel export: versioned, atomic, with a manifest and a TF Serving bundle.

Layout written by `export_run` / `export_versioned` (TF Serving's layout):

    saved_models/
      models.config              every exported model, stable/canary labels
      batching_parameters.txt    --enable_batching settings
      monitoring.config          Prometheus endpoint
      README.md                  the exact server command lines
      NAME/
        1/ 2/ ...                one SavedModel per version
          saved_model.pb, variables/, assets/
          assets.extra/tf_serving_warmup_requests   replayed by the server at load
          assets.extra/gpt_tf.json                  export metadata (limits, ids, tasks)
          assets.extra/tokenizer.model              for host-side tokenization
                                                    (bpe_tokenizer.json for a GPT-2 BPE)
          SHA256SUMS                                manifest, written last

A version is written into `NAME/.tmp-*` and renamed to `NAME/<N>` only when
complete, so a polling server never sees half a model (directories that are
not integers are ignored by TF Serving and `gpt-tf serve`).
"""

import dataclasses
import datetime
import json
import os
import re
import shutil
import tempfile

from gpt_tf.errors import UserError
from gpt_tf.export.bundle import write_serving_bundle
from gpt_tf.export.layout import (  # noqa: F401  (METADATA_FILE, read_metadata re-exported)
    EXTRA_DIR,
    METADATA_FILE,
    SAVED_MODEL_FILE,
    WARMUP_FILE,
    list_versions,
    metadata_path,
    read_metadata,
)
from gpt_tf.export.manifest import verify_manifest, write_manifest

FORMAT_VERSION = 1


@dataclasses.dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        path: the version directory (or the SavedModel directory).
        name: model name (None for an unversioned export).
        version: integer version (None for an unversioned export).
        signatures: signature names.
        size_bytes: total size of the files.
    """

    path: str
    name: str
    version: int
    signatures: list
    size_bytes: int


def float32_model(model):
    """The model with a float32 compute policy (exports always run float32).

    A mixed-precision model is rebuilt from its config and its (float32)
    weights copied, so the exported graphs are float32 end to end.
    """
    from gpt_tf.models import GPTCausalLM

    if model.backbone.compute_dtype == "float32":
        return model
    backbone = type(model.backbone).from_config({**model.backbone.get_config(), "dtype": "float32"})
    clone = GPTCausalLM(backbone)
    clone.set_weights(model.get_weights())
    return clone


def _patch_method_names(export_dir, method_names):
    """Sets `method_name` of signatures (TF2 always writes the predict method)."""
    if not method_names:
        return
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, SAVED_MODEL_FILE)
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        proto.ParseFromString(handle.read())
    for meta_graph in proto.meta_graphs:
        for name, method in method_names.items():
            meta_graph.signature_def[name].method_name = method
    with open(path, "wb") as handle:
        handle.write(proto.SerializeToString())


def _dir_size(directory):
    return sum(os.path.getsize(os.path.join(root, n))
               for root, _, names in os.walk(directory) for n in names)


def write_saved_model(model, tokenizer, export_dir, tasks=(), max_new_tokens_limit=None,
                      defaults=None, jit_compile=True, stepwise=True, warmup=True,
                      extra_metadata=None):
    """Writes a SavedModel with all serving signatures into `export_dir`.

    `export_dir` must not exist. The directory gets the SavedModel, the
    `assets.extra/` files and finally the `SHA256SUMS` manifest; it is built
    under a temporary name and renamed, so it appears complete or not at all.

    Args:
        model: a trained `GPTCausalLM`.
        tokenizer: its `Tokenizer`.
        tasks: task objects (`gpt_tf.export.tasks`).
        max_new_tokens_limit: largest `max_new_tokens` a request may ask
            (default: half the context window).
        defaults: `serving_default` sampling settings (see `ServingSignatures`).
        jit_compile: compile generation with XLA (TF Serving then needs
            `--xla_cpu_compilation_enabled=true` on CPU).
        stepwise: include the batch-1 `prefill`/`decode` signatures (streaming).
        warmup: write `assets.extra/tf_serving_warmup_requests`.
        extra_metadata: dict merged into `assets.extra/gpt_tf.json`.

    Returns:
        An `ExportResult` (name and version None).
    """
    import keras

    from gpt_tf.export.signatures import ServingSignatures
    from gpt_tf.export.tasks import check_unique
    from gpt_tf.export.warmup import write_warmup_requests

    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir):
        raise UserError(f"'{export_dir}' already exists; choose another path or remove it")
    check_unique(tasks)
    model = float32_model(model)
    signatures = ServingSignatures(model, tokenizer, tasks, max_new_tokens_limit, defaults,
                                   jit_compile=jit_compile, stepwise=stepwise)
    archive = keras.export.ExportArchive()
    # Not `archive.track(model)`: the archive then saves every weight twice (the
    # Keras variables it tracks plus the tf.Variables the endpoints use), doubling
    # `variables/`. The endpoints' variables are saved either way.
    archive.track(signatures.graph_tokenizer)
    method_names = {}
    for name, fn, specs, method in signatures.endpoints():
        archive.add_endpoint(name, fn, specs)
        if method:
            method_names[name] = method

    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        archive.write_out(tmp, verbose=False)
        _patch_method_names(tmp, method_names)
        extra = os.path.join(tmp, EXTRA_DIR)
        os.makedirs(extra, exist_ok=True)
        tokenizer.save_host(extra)
        metadata = _metadata(model, tokenizer, signatures, tasks, jit_compile, stepwise)
        metadata.update(extra_metadata or {})
        with open(metadata_path(tmp), "w", encoding="utf-8") as handle:
            json.dump(metadata, handle, indent=2)
        if warmup:
            write_warmup_requests(os.path.join(extra, WARMUP_FILE), signatures, tasks)
        write_manifest(tmp)
        os.rename(tmp, export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(export_dir, None, None, metadata["signatures"], _dir_size(export_dir))


def _metadata(model, tokenizer, signatures, tasks, jit_compile, stepwise):
    """`assets.extra/gpt_tf.json`: the model's shape, tokenizer ids, limits and signatures."""
    from gpt_tf.export.tasks import task_to_dict

    config = model.backbone
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            **{key: int(getattr(config, key)) for key in (
                "vocab_size", "sequence_length", "num_layers", "hidden_dim", "num_heads",
                "intermediate_dim")},
            "parameters": int(model.num_parameters()),
        },
        "tokenizer": {"kind": tokenizer.kind, "pad_id": int(tokenizer.pad_id),
                      "end_of_text_id": int(tokenizer.end_of_text_id),
                      "separators": {k: int(v) for k, v in tokenizer.separator_ids.items()}},
        "limits": {"max_new_tokens": signatures.max_new_tokens_limit,
                   "sequence_length": int(config.sequence_length)},
        "defaults": signatures.defaults,
        "jit_compile": bool(jit_compile),
        "signatures": [name for name, *_ in signatures.endpoints()],
        "tasks": [task_to_dict(t) for t in tasks],
        "stepwise_cache_shape": list(signatures.stepwise.cache_shape) if stepwise else None,
    }


def export_versioned(model, tokenizer, base_dir, name, version=None, stable=False, **options):
    """Writes `base_dir/name/<version>/` and refreshes the serving bundle.

    Args:
        model, tokenizer: what to export.
        base_dir: e.g. `saved_models`.
        name: model name (TF Serving `model_name`).
        version: integer version (default: one above the highest present).
        stable: also point the `stable` label at this version (otherwise it
            becomes `canary` and `stable` stays where it was).
        **options: passed to `write_saved_model`.

    Returns:
        An `ExportResult`.
    """
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", name or ""):
        raise UserError(f"model name {name!r} must be letters, digits, '_', '-' or '.' "
                        "(it becomes a directory and a URL path)")
    model_dir = os.path.join(os.path.abspath(base_dir), name)
    existing = list_versions(model_dir, complete_only=False)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    elif version < 1:
        raise UserError(f"version must be a positive integer, got {version}")
    elif version in existing:
        raise UserError(f"'{model_dir}/{version}' already exists; omit --version to take the "
                        "next one")
    result = write_saved_model(model, tokenizer, os.path.join(model_dir, str(version)), **options)
    result.name, result.version = name, version
    write_serving_bundle(base_dir, promote={name: version} if stable else None)
    return result


def export_run(run_dir, name, output_dir="saved_models", checkpoint="final", tasks=None,
               stable=False, **options):
    """Exports a training run as `output_dir/name/<next version>/`.

    Args:
        run_dir: a run directory (`gpt-tf train`).
        name: model name.
        output_dir: the serving base directory.
        checkpoint: `final`, `latest` or `best`.
        tasks: task objects; default: the run's `export_tasks.json`, if any.
        stable: label this version `stable` too.
        **options: passed to `write_saved_model`.

    Returns:
        An `ExportResult`.
    """
    from gpt_tf.export.tasks import run_dir_tasks
    from gpt_tf.task_card import read_task_card
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(run_dir, checkpoint)
    if tasks is None:
        tasks = run_dir_tasks(run_dir)
    metadata = {"source": {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint,
                           "config": config.to_dict()},
                "task_card": read_task_card(run_dir)}
    return export_versioned(model, tokenizer, output_dir, name, stable=stable, tasks=tasks,
                            extra_metadata=metadata, **options)


def load_saved_model(export_dir, verify=True):
    """Verifies the manifest, then loads the SavedModel (`tf.saved_model.load`).

    Args:
        export_dir: a version directory.
        verify: check `SHA256SUMS` first (raises `ManifestError` on mismatch).

    Returns:
        The loaded object; call `.signatures[NAME](**inputs)`.
    """
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    if not os.path.isfile(os.path.join(export_dir, SAVED_MODEL_FILE)):
        raise UserError(f"'{export_dir}' is not a SavedModel directory (no saved_model.pb); "
                        "pass a version directory such as saved_models/NAME/1")
    if verify:
        verify_manifest(export_dir)
    return tf.saved_model.load(export_dir)
