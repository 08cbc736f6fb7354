"""The TF Serving bundle beside the SavedModels: config files and commands.

`write_serving_bundle(base_dir)` (re)writes, from what is on disk:

- `models.config`: a `ModelServerConfig` listing every model under
  `base_dir`, each serving two versions with labels: `canary` = the newest
  version, `stable` = the version promoted last (kept from the previous
  config; the newest one if none was promoted). Base paths are
  `/models/NAME`, the path the Docker command mounts `base_dir` at;
  `gpt-tf serve` maps them back to `base_dir/NAME`.
- `batching_parameters.txt`: server-side batching for `--enable_batching`.
- `monitoring.config`: the Prometheus endpoint.
- `README.md`: the exact `tensorflow_model_server` and Docker command lines.
"""

import os

from gpt_tf.errors import UserError
from gpt_tf.export.layout import MANIFEST_FILE, list_versions
from gpt_tf.files import atomic_write_text

CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
MONITORING_FILE = "monitoring.config"
README_FILE = "README.md"
DOCKER_MODEL_ROOT = "/models"
SERVING_IMAGE = "tensorflow/serving:2.21.0"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

# Generation runs whole decode loops per batch: a few large batches, padded
# to a small set of sizes (each size compiles once), beat many small ones.
BATCHING_PARAMETERS = """\
max_batch_size { value: 8 }
batch_timeout_micros { value: 10000 }
max_enqueued_batches { value: 64 }
num_batch_threads { value: 2 }
allowed_batch_sizes: 1
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
pad_variable_length_inputs: true
"""

MONITORING_CONFIG = f"""\
prometheus_config {{
  enable: true
  path: "{PROMETHEUS_PATH}"
}}
"""


def read_model_config(path):
    """Parses a `models.config` text proto into a `ModelServerConfig`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        with open(path, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), config)
    except FileNotFoundError:
        raise UserError(f"model config file '{path}' not found") from None
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise UserError(f"model config file '{path}' is not a valid ModelServerConfig text "
                        f"proto: {error}") from None
    return config


def _models_on_disk(base_dir):
    models = {}
    for entry in sorted(os.listdir(base_dir)):
        path = os.path.join(base_dir, entry)
        if entry.startswith(".") or not os.path.isdir(path):
            continue
        versions = list_versions(path)
        if versions:
            models[entry] = versions
    return models


def write_serving_bundle(base_dir, promote=None):
    """Rewrites `models.config` and the side files of `base_dir`.

    Args:
        base_dir: the directory holding `NAME/<version>/` SavedModels.
        promote: `{name: version}` to label `stable` (default: keep).

    Returns:
        `{name: {"versions": [...], "stable": v, "canary": v}}`.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base_dir = os.path.abspath(base_dir)
    config_path = os.path.join(base_dir, CONFIG_FILE)
    previous = {}
    if os.path.isfile(config_path):
        try:
            old = read_model_config(config_path)
            previous = {c.name: dict(c.version_labels)
                        for c in old.model_config_list.config}
        except UserError:
            previous = {}
    summary = {}
    config = model_server_config_pb2.ModelServerConfig()
    for name, versions in _models_on_disk(base_dir).items():
        canary = versions[-1]
        stable = (promote or {}).get(name) or previous.get(name, {}).get("stable")
        if stable not in versions:
            stable = canary
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{DOCKER_MODEL_ROOT}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.specific.versions.extend(sorted({stable, canary}))
        entry.version_labels["stable"] = stable
        entry.version_labels["canary"] = canary
        summary[name] = {"versions": versions, "stable": stable, "canary": canary}
    header = ("# Written by gpt-tf export; base paths are where the Docker command mounts this\n"
              "# directory. `gpt-tf serve --model_config_file` maps /models/NAME to ./NAME.\n")
    atomic_write_text(config_path, header + text_format.MessageToString(config))
    atomic_write_text(os.path.join(base_dir, BATCHING_FILE), BATCHING_PARAMETERS)
    atomic_write_text(os.path.join(base_dir, MONITORING_FILE), MONITORING_CONFIG)
    atomic_write_text(os.path.join(base_dir, README_FILE), serving_readme(base_dir, summary))
    return summary


def server_commands(base_dir, model_name=None):
    """`{"docker": ..., "native": ..., "gpt_tf": ...}` command lines for this bundle."""
    rel = os.path.relpath(base_dir)
    flags = ("--model_config_file=/models/models.config "
             "--model_config_file_poll_wait_seconds=60 "
             "--file_system_poll_wait_seconds=10 "
             "--allow_version_labels_for_unavailable_models=true "
             "--enable_batching=true --batching_parameters_file=/models/batching_parameters.txt "
             "--monitoring_config_file=/models/monitoring.config "
             "--xla_cpu_compilation_enabled=true "
             "--enable_model_warmup=true")
    docker = (f'docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD/{rel}:/models" '
              f"{SERVING_IMAGE} {flags}")
    name = model_name or "NAME"
    native = (f"tensorflow_model_server --port=8500 --rest_api_port=8501 "
              f"--model_name={name} --model_base_path=\"$PWD/{rel}/{name}\" "
              f"--xla_cpu_compilation_enabled=true --enable_model_warmup=true "
              f"--enable_batching=true --batching_parameters_file=\"$PWD/{rel}/{BATCHING_FILE}\" "
              f"--monitoring_config_file=\"$PWD/{rel}/{MONITORING_FILE}\"")
    ours = f"gpt-tf serve --model_config_file={rel}/{CONFIG_FILE} --rest_api_port=8501"
    return {"docker": docker, "native": native, "gpt_tf": ours}


def serving_readme(base_dir, summary):
    first = next(iter(summary), "NAME")
    commands = server_commands(base_dir, first)
    rows = "\n".join(f"| {name} | {', '.join(map(str, info['versions']))} | {info['stable']} | "
                     f"{info['canary']} |" for name, info in summary.items())
    return f"""# SavedModels for TF Serving

Written by `gpt-tf export savedmodel`; regenerated on every export. See
`docs/SERVING.md` for the signatures and the REST/gRPC API.

| model | versions | stable | canary |
|-------|----------|--------|--------|
{rows}

Run the commands from the directory that contains `{os.path.relpath(base_dir)}/`.

TF Serving in Docker (all models, labels, batching, Prometheus, warm-up):

    {commands['docker']}

The `tensorflow_model_server` binary, one model:

    {commands['native']}

The suite's own TF-Serving-compatible REST server (no TF Serving needed):

    {commands['gpt_tf']}

Then:

    curl -s localhost:8501/v1/models/{first}
    curl -s -X POST localhost:8501/v1/models/{first}:predict \\
      -d '{{"instances": [{{"prompt": "ROMEO."}}]}}'
    curl -s -X POST localhost:8501/v1/models/{first}/labels/stable:predict \\
      -d '{{"signature_name": "generate", "instances": [{{"prompt": "ROMEO.",
           "max_new_tokens": 40, "temperature": 0.8, "top_k": 40, "top_p": 0.95,
           "repetition_penalty": 1.1, "seed": 1}}]}}'

Every version directory holds a `{MANIFEST_FILE}` manifest: `sha256sum -c {MANIFEST_FILE}`
inside it verifies the files; `gpt-tf serve` refuses versions that fail it.
"""
