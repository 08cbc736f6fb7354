"""Model versions on disk -> loaded servables, with polling and hot swap.

`ModelManager` watches each model's base path like TF Serving's file-system
source: integer subdirectories are versions, anything else is ignored (so an
export's `.tmp-*` directory is invisible). A version is a candidate once it
has `saved_model.pb` and its `SHA256SUMS` manifest (written last by the
exporter): a half-copied directory without the manifest is ignored until it
is complete. Before loading, the manifest is verified; then the SavedModel is
loaded and its warm-up requests replayed. Only then does the version become
AVAILABLE and take traffic.

Hot swap is availability-preserving: an old version is unloaded only after
the versions that replace it are AVAILABLE, so a new version that fails to
load (bad manifest, broken graph, failing warm-up) leaves the old one
serving; its error shows in the model status. A failed version is retried
whenever any of its files changes, so a copy that lands out of order loads
once it is complete. Removing the newest version's directory falls back to
the next one (loaded again if needed) while the removed one keeps serving
from memory until then.
"""

import dataclasses
import logging
import os
import re
import threading
import time

from gpt_tf.errors import UserError
from gpt_tf.export.layout import VERSION_DIR, list_versions  # noqa: F401  (VERSION_DIR re-exported)
from gpt_tf.serving.errors import bad_request, not_found

log = logging.getLogger("gpt_tf.serving")

_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
           7: "string", 9: "int64", 10: "bool", 14: "bfloat16", 19: "float16"}


@dataclasses.dataclass
class ModelSpec:
    """One served model: name, base path, version policy, labels.

    Attributes:
        name: model name in URLs.
        base_path: directory holding the integer version directories.
        policy: `("latest", n)`, `("all", None)` or `("specific", [versions])`.
        labels: `{label: version}`.
    """

    name: str
    base_path: str
    policy: tuple = ("latest", 1)
    labels: dict = dataclasses.field(default_factory=dict)


class Servable:
    """One loaded SavedModel version.

    Attributes:
        version: integer version.
        signatures: `{name: concrete function}`.
        input_specs: `{signature: {input: (dtype, shape)}}`.
        output_specs: `{signature: {output: (dtype, shape)}}` (response budgets).
        signature_defs: `{name: SignatureDef proto}` (metadata endpoint).
        method_names: `{signature: method_name}`.
        metadata: `assets.extra/gpt_tf.json` (limits, tokenizer ids), or {}.
    """

    def __init__(self, path, version, verify=True, warmup=True):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (SentencePiece ops)
        from tensorflow.core.protobuf import saved_model_pb2

        from gpt_tf.export.layout import EXTRA_DIR, WARMUP_FILE, read_metadata
        from gpt_tf.export.manifest import verify_manifest

        self.path = path
        self.version = version
        if verify:
            verify_manifest(path)
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
            proto.ParseFromString(handle.read())
        graph = next((g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags),
                     proto.meta_graphs[0])
        self.signature_defs = {k: v for k, v in graph.signature_def.items()
                               if not k.startswith("__")}
        self.loaded = tf.saved_model.load(path)
        self.signatures = dict(self.loaded.signatures)
        self.input_specs = {}
        self.output_specs = {}
        self.method_names = {}
        for name, sig in self.signature_defs.items():
            self.method_names[name] = sig.method_name
            self.input_specs[name] = {key: _tensor_spec(info) for key, info in sig.inputs.items()}
            self.output_specs[name] = {key: _tensor_spec(info)
                                       for key, info in sig.outputs.items()}
        self.metadata = read_metadata(path)
        self.extra_dir = os.path.join(path, EXTRA_DIR)
        self.lock = threading.Lock()
        self._host_tokenizer = None
        warmup_path = os.path.join(path, EXTRA_DIR, WARMUP_FILE)
        if warmup and os.path.isfile(warmup_path):
            from gpt_tf.export.warmup import read_warmup_requests

            for signature, inputs in read_warmup_requests(warmup_path):
                self.run(signature, inputs)

    def signature(self, name):
        name = name or "serving_default"
        if name not in self.signatures or name not in self.input_specs:
            raise not_found(f"Serving signature name: \"{name}\" not found in signature def; "
                            f"available: {sorted(self.input_specs)}")
        return name

    def classify_feature(self, signature):
        """The string feature a gpt-tf classify signature reads (its task's input), or None."""
        for task in self.metadata.get("tasks", []):
            if task.get("kind") == "classify" and task.get("name") == signature:
                return task.get("input") or None
        return None

    def run(self, signature_name, inputs):
        """Runs a signature on numpy inputs; returns `{output: np.ndarray}`.

        Raises:
            ServingError(400) for inputs the graph rejects (InvalidArgument).
        """
        import tensorflow as tf

        name = self.signature(signature_name)
        fn = self.signatures[name]
        tensors = {}
        for key, value in inputs.items():
            dtype = self.input_specs[name][key][0]
            tensors[key] = tf.constant(value, dtype=tf.string if dtype == "string" else dtype)
        try:
            outputs = fn(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
            raise bad_request(_clean_tf_message(error)) from None
        except (TypeError, ValueError) as error:  # signature binding (names, shapes)
            raise bad_request(f"inputs do not match signature '{name}': {error}") from None
        return {k: v.numpy() for k, v in outputs.items()}

    @property
    def host_tokenizer(self):
        """A `tflite.host_tokenizer.HostTokenizer` over the exported tokenizer (streaming)."""
        if self._host_tokenizer is None:
            from tflite.host_tokenizer import HostTokenizer, find_tokenizer_file

            path = find_tokenizer_file(self.extra_dir)
            if path is None:
                raise not_found("this SavedModel has no assets.extra/tokenizer.model (or "
                                "bpe_tokenizer.json); streaming needs a gpt-tf export")
            meta = self.metadata.get("tokenizer", {})
            self._host_tokenizer = HostTokenizer(
                path, [meta[k] for k in ("pad_id", "end_of_text_id") if k in meta])
        return self._host_tokenizer


def _tensor_spec(info):
    """`(dtype name, shape with None for unknown dimensions)` of a `TensorInfo`."""
    return (_DTYPES.get(info.dtype, f"dtype{info.dtype}"),
            None if info.tensor_shape.unknown_rank else
            tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim))


def _clean_tf_message(error):
    """The useful line of a TF runtime error (an assertion's text, else the op's message).

    Graph errors read "Graph execution error:", "Detected at node ...", a stack
    note, the op's own message, then "[[{{node ...}}]]"; only the op's message
    says what was wrong with the input.
    """
    text = getattr(error, "message", str(error))
    # "assertion failed: [message] [Condition ...] [x = ] [...]": the message may hold
    # a "]" itself ("top_p must be in (0, 1]; ..."), so it ends at a "]" before " [" or the end.
    found = re.findall(r"assertion failed: \[(.*?)\](?=\s*\[|\s*$)", text, flags=re.S)
    if found:
        return found[0]
    lines = [line.strip() for line in text.strip().splitlines()]
    useful = [line for line in lines if line and not (
        line.startswith(("Graph execution error", "Detected at node", "<stack traces",
                         "[[", "File \"", "Detected unsupported")) or line.endswith(":"))]
    first = useful[0] if useful else (lines[0] if lines and lines[0] else
                                      type(error).__name__)
    return re.sub(r"\s*\[\[\{\{.*$", "", first)[:500]


def _short(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__


@dataclasses.dataclass
class VersionState:
    version: int
    state: str  # LOADING, AVAILABLE, END
    error_code: str = "OK"
    error_message: str = ""
    fingerprint: tuple = ()


def _fingerprint(path):
    """`((relative path, size, mtime_ns), ...)` of every file under a version directory.

    A failed version is retried when this changes: a copy that lands out of
    order (`saved_model.pb` and `SHA256SUMS` first, `variables/` later) fails
    its first load, and loads once the missing files arrive.
    """
    parts = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            parts.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(parts)


class ModelManager:
    """Loads, serves and hot-swaps the versions of several models.

    Args:
        specs: `ModelSpec` list.
        require_manifest: only load versions with a valid `SHA256SUMS`.
        warmup: replay `assets.extra/tf_serving_warmup_requests` at load.
    """

    def __init__(self, specs, require_manifest=True, warmup=True):
        self._lock = threading.RLock()
        self.specs = {s.name: s for s in specs}
        self.require_manifest = require_manifest
        self.warmup = warmup
        self.servables = {s.name: {} for s in specs}  # name -> {version: Servable}
        self.states = {s.name: {} for s in specs}  # name -> {version: VersionState}
        self._stop = threading.Event()
        self._thread = None
        self._config_reloader = None

    # ---- discovery and loading -----------------------------------------------------------

    def _candidates(self, spec):
        # A version still being copied has no saved_model.pb yet; a half-written
        # export has no SHA256SUMS (the manifest comes last).
        return list_versions(spec.base_path, require_manifest=self.require_manifest)

    @staticmethod
    def _desired(spec, versions):
        kind, value = spec.policy
        if kind == "all":
            return list(versions)
        if kind == "specific":
            return [v for v in versions if v in set(value)]
        return versions[-max(1, int(value or 1)):]

    def poll_once(self):
        """One scan of every model's base path: load new versions, unload old ones."""
        with self._lock:
            specs = list(self.specs.values())
        for spec in specs:
            try:
                self._poll_model(spec)
            except Exception:  # a broken model must never stop the poller
                log.exception("polling model %s failed", spec.name)

    def _poll_model(self, spec):
        present = self._candidates(spec)
        desired = self._desired(spec, present)
        states = self.states.setdefault(spec.name, {})
        loaded = self.servables.setdefault(spec.name, {})
        for version in desired:
            if version in loaded:
                continue
            path = os.path.join(spec.base_path, str(version))
            fingerprint = _fingerprint(path)
            state = states.get(version)
            if state is not None and state.state == "END" and state.fingerprint == fingerprint:
                continue  # failed before, files unchanged
            states[version] = VersionState(version, "LOADING", fingerprint=fingerprint)
            log.info("loading %s version %d from %s", spec.name, version, path)
            started = time.perf_counter()
            try:
                servable = Servable(path, version, verify=self.require_manifest,
                                    warmup=self.warmup)
            except Exception as error:  # any failure keeps the old versions serving
                message = str(error) if isinstance(error, UserError) else _short(error)
                states[version] = VersionState(version, "END", "UNKNOWN",
                                               f"failed to load: {message}", fingerprint)
                log.error("%s version %d failed to load: %s", spec.name, version, message)
                continue
            with self._lock:
                loaded[version] = servable
                states[version] = VersionState(version, "AVAILABLE", fingerprint=fingerprint)
            log.info("%s version %d AVAILABLE (%.1fs)", spec.name, version,
                     time.perf_counter() - started)
        # Availability-preserving unload: keep the desired versions that loaded;
        # while fewer than wanted are AVAILABLE, keep others too, newest first and
        # those still on disk before removed ones. A version whose directory was
        # deleted keeps serving from memory until a successor is AVAILABLE.
        with self._lock:
            available = sorted(loaded)
            keep = [v for v in available if v in desired]
            wanted = len(desired) if desired else 1
            others = sorted((v for v in available if v not in keep),
                            key=lambda v: (v in present, v), reverse=True)
            keep += others[:max(0, wanted - len(keep))]
            for version in available:
                if version not in keep:
                    del loaded[version]
                    states[version] = VersionState(version, "END")
                    log.info("%s version %d unloaded", spec.name, version)
            for version in list(states):
                if version not in present and version not in loaded:
                    del states[version]

    def start_polling(self, interval, config_reloader=None, config_interval=0):
        """Polls every `interval` seconds (and reloads the config) in a daemon thread."""
        if interval <= 0 and config_interval <= 0:
            return

        def loop():
            last_config = time.monotonic()
            while not self._stop.wait(max(0.05, interval if interval > 0 else config_interval)):
                if config_reloader and config_interval > 0 and \
                        time.monotonic() - last_config >= config_interval:
                    last_config = time.monotonic()
                    try:
                        self.update_specs(config_reloader())
                    except Exception as error:
                        log.error("model config reload failed: %s", error)
                if interval > 0:
                    self.poll_once()

        self._thread = threading.Thread(target=loop, name="gpt-tf-model-poller", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def update_specs(self, specs):
        """Replaces the model list (config reload): labels and policies update."""
        with self._lock:
            names = {s.name for s in specs}
            for name in list(self.specs):
                if name not in names:
                    del self.specs[name]
                    self.servables.pop(name, None)
                    self.states.pop(name, None)
            for spec in specs:
                self.specs[spec.name] = spec
                self.servables.setdefault(spec.name, {})
                self.states.setdefault(spec.name, {})

    # ---- lookup --------------------------------------------------------------------------

    def resolve(self, name, version=None, label=None):
        """The `Servable` for a request (latest AVAILABLE by default).

        Raises:
            ServingError(404) for an unknown model, version or label.
        """
        with self._lock:
            spec = self.specs.get(name)
            loaded = self.servables.get(name) or {}
            if spec is None:
                raise not_found(f"Servable not found for request: Latest({name})")
            if label is not None:
                if label not in spec.labels:
                    raise not_found(f"Unrecognized servable version label: {label}")
                version = spec.labels[label]
                if version not in loaded:
                    raise not_found(f"Servable not found for request: Specific({name}, "
                                    f"{version}) (label '{label}')")
            if version is not None:
                servable = loaded.get(int(version))
                if servable is None:
                    raise not_found(f"Servable not found for request: Specific({name}, "
                                    f"{version})")
                return servable
            if not loaded:
                raise not_found(f"Servable not found for request: Latest({name})")
            return loaded[max(loaded)]

    def status(self, name, version=None, label=None):
        """TF Serving's `GetModelStatus` answer as a dict."""
        with self._lock:
            spec = self.specs.get(name)
            if spec is None:
                raise not_found(f"Could not find any versions of model {name}")
            states = dict(self.states.get(name, {}))
            if label is not None:
                if label not in spec.labels:
                    raise not_found(f"Unrecognized servable version label: {label}")
                version = spec.labels[label]
            if version is not None:
                version = int(version)
                if version not in states:
                    raise not_found(f"Could not find version {version} of model {name}")
                states = {version: states[version]}
            if not states:
                raise not_found(f"Could not find any versions of model {name}")
        return {"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code, "error_message": s.error_message}}
            for s in sorted(states.values(), key=lambda s: -s.version)]}

    def metadata(self, name, version=None, label=None):
        """TF Serving's `GetModelMetadata` answer (signature defs) as a dict."""
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        servable = self.resolve(name, version, label)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        as_dict = json_format.MessageToDict(signature_map, preserving_proto_field_name=True,
                                            always_print_fields_with_no_presence=True)
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(servable.version)},
                "metadata": {"signature_def": as_dict}}

    def model_names(self):
        with self._lock:
            return sorted(self.specs)

    def has_model(self, name):
        """Whether `name` is a configured model (metrics count others as `_unknown_`)."""
        with self._lock:
            return name in self.specs

    def wait_until_available(self, name, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.servables.get(name):
                    return True
            time.sleep(0.05)
        return False


def specs_from_config_file(path):
    """`ModelSpec`s from a `models.config` (TF Serving `ModelServerConfig` text)."""
    from gpt_tf.export.bundle import DOCKER_MODEL_ROOT, read_model_config

    config = read_model_config(path)
    if config.WhichOneof("config") != "model_config_list":
        raise UserError(f"'{path}' must use model_config_list")
    specs = []
    root = os.path.dirname(os.path.abspath(path))
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise UserError(f"'{path}': every model needs a name and a base_path")
        base = entry.base_path
        if not os.path.isabs(base):
            base = os.path.join(root, base)
        if not os.path.isdir(base) and entry.base_path.startswith(DOCKER_MODEL_ROOT + "/"):
            # The bundle's Docker paths: /models/NAME is ./NAME beside the config.
            base = os.path.join(root, entry.base_path[len(DOCKER_MODEL_ROOT) + 1:])
        policy = ("latest", 1)
        which = entry.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy = ("all", None)
        elif which == "specific":
            policy = ("specific", list(entry.model_version_policy.specific.versions))
        elif which == "latest":
            policy = ("latest", entry.model_version_policy.latest.num_versions or 1)
        specs.append(ModelSpec(entry.name, base, policy, dict(entry.version_labels)))
    if not specs:
        raise UserError(f"'{path}' lists no models")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"'{path}' lists a model name twice")
    return specs
