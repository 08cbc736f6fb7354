"""Export and deployment: SavedModel bundles for TF Serving, TFLite for devices.

Public API:
    export_run(run_dir, name, output_dir="saved_models", ...)      -> ExportResult
    export_versioned(model, tokenizer, base_dir, name, ...)         -> ExportResult
    write_saved_model(model, tokenizer, export_dir, ...)            -> ExportResult
    load_saved_model(export_dir, verify=True)                       -> loaded SavedModel
    export_tflite_run(run_dir, name, output_dir="tflite", quantize) -> meta dict
    export_tflite(model, tokenizer, output_dir, quantize, ...)      -> meta dict
    write_serving_bundle(base_dir)                                  -> label summary
    verify_manifest(directory) / write_manifest(directory)
    GenerationTask, ClassificationTask, load_tasks(path)

Submodules import TensorFlow lazily, so `gpt_tf.export.manifest` and
`gpt_tf.export.tasks` stay cheap to import.
"""

from gpt_tf.export.manifest import ManifestError, verify_manifest, write_manifest
from gpt_tf.export.tasks import ClassificationTask, GenerationTask, load_tasks


def __getattr__(name):
    # Heavy entry points (TensorFlow) are loaded on first use.
    lazy = {
        "export_run": "gpt_tf.export.saved_model",
        "export_versioned": "gpt_tf.export.saved_model",
        "write_saved_model": "gpt_tf.export.saved_model",
        "load_saved_model": "gpt_tf.export.saved_model",
        "ExportResult": "gpt_tf.export.saved_model",
        "export_tflite": "gpt_tf.export.tflite",
        "export_tflite_run": "gpt_tf.export.tflite",
        "write_serving_bundle": "gpt_tf.export.bundle",
    }
    if name in lazy:
        import importlib

        return getattr(importlib.import_module(lazy[name]), name)
    raise AttributeError(f"module 'gpt_tf.export' has no attribute {name!r}")


__all__ = ["ClassificationTask", "ExportResult", "GenerationTask", "ManifestError",
           "export_run", "export_tflite", "export_tflite_run", "export_versioned",
           "load_saved_model", "load_tasks", "verify_manifest", "write_manifest",
           "write_saved_model", "write_serving_bundle"]
