"""`open_client(target)`: picks the backend from what the target is."""

import os
import re

from gpt_tf import logs
from gpt_tf.errors import UserError
from gpt_tf.export.layout import SAVED_MODEL_FILE, list_versions

_KINDS = ("a run directory (config.json), a SavedModel directory (saved_model.pb, or "
          "saved_models/NAME holding versions), a TFLite export (tflite/NAME or its "
          "model.tflite) or an http(s)://HOST:PORT/v1/models/NAME URL")


def _versions(directory):
    return list_versions(directory, require_manifest=False)


def resolve_target(target):
    """`(kind, path)` with kind `keras`, `savedmodel`, `rest` or `tflite`, or `UserError`.

    A model directory `saved_models/NAME` resolves to its highest version.
    """
    if not isinstance(target, (str, os.PathLike)):
        raise UserError(f"model target must be a path or URL, got {type(target).__name__}")
    target = os.fspath(target)
    if re.match(r"^https?://", target, re.IGNORECASE):
        return "rest", target
    if "://" in target:
        raise UserError(f"'{target}': only http(s) model URLs are supported; pass {_KINDS}")
    if not os.path.exists(target):
        raise UserError(f"model '{target}' does not exist; pass {_KINDS}")
    if os.path.isfile(target):
        if target.endswith(".tflite"):
            return "tflite", target
        raise UserError(f"'{target}' is a file of the wrong kind; pass {_KINDS}")
    if os.path.isfile(os.path.join(target, "config.json")):
        return "keras", target
    if os.path.isfile(os.path.join(target, SAVED_MODEL_FILE)):
        return "savedmodel", target
    if os.path.isfile(os.path.join(target, "model.tflite")):
        return "tflite", target
    versions = _versions(target)
    if versions:
        return "savedmodel", os.path.join(target, str(versions[-1]))
    models = sorted(d for d in os.listdir(target)
                    if os.path.isdir(os.path.join(target, d))
                    and _versions(os.path.join(target, d)))
    if models:
        raise UserError(f"'{target}' is a serving base directory holding the models "
                        f"{', '.join(models)}; pass one of them, e.g. "
                        f"{os.path.join(target, models[0])}")
    exports = sorted(d for d in os.listdir(target)
                     if os.path.isfile(os.path.join(target, d, "model.tflite")))
    if exports:
        raise UserError(f"'{target}' holds the TFLite exports {', '.join(exports)}; pass one "
                        f"of them, e.g. {os.path.join(target, exports[0])}")
    raise UserError(f"'{target}' is a directory of the wrong kind (no model in it); pass {_KINDS}")


def open_client(target, checkpoint="final", jit_compile=True, timeout=120.0, num_threads=None):
    """Opens a model for the apps, choosing the backend from the target.

    Args:
        target: a run directory (Keras, in process), a SavedModel directory
            (in process), an `http(s)://HOST:PORT/v1/models/NAME` URL (TF
            Serving REST: the real server or `gpt-tf serve`), or a TFLite
            export directory / `model.tflite` file (the `tflite/` runner).
            An already open `Client` is returned as is.
        checkpoint: for a run directory: `final`, `latest` or `best`.
        jit_compile: for a run directory: compile with XLA.
        timeout: for a URL: seconds per request.
        num_threads: for TFLite: interpreter threads.

    Returns:
        A `gpt_tf.clients.Client`.

    Raises:
        UserError: the target does not exist, is of the wrong kind, or the
            server cannot be reached.
    """
    from gpt_tf.clients.base import Client

    if isinstance(target, Client):
        return target
    kind, path = resolve_target(target)
    # Loading a SavedModel logs natively whatever TensorFlow's level (its in-graph
    # SentencePiece); hidden when a command line asked for quiet (`gpt_tf.logs`).
    with logs.quiet_native_logs():
        return _open(kind, path, checkpoint, jit_compile, timeout, num_threads)


def _open(kind, path, checkpoint, jit_compile, timeout, num_threads):
    if kind == "keras":
        from gpt_tf.clients.keras_client import KerasClient

        return KerasClient(path, checkpoint=checkpoint, jit_compile=jit_compile)
    if kind == "savedmodel":
        from gpt_tf.clients.signature_client import InProcessTransport, SignatureClient

        return SignatureClient(InProcessTransport(path))
    if kind == "rest":
        from gpt_tf.clients.signature_client import RestTransport, SignatureClient

        return SignatureClient(RestTransport(path, timeout=timeout))
    from gpt_tf.clients.tflite_client import TFLiteClient

    return TFLiteClient(path, num_threads=num_threads)
