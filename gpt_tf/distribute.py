"""`tf.distribute` strategy by name."""

import json
import os

import tensorflow as tf

from gpt_tf.errors import UserError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (call before any op).

    Lets `mirrored` run on a CPU-only machine, e.g. for tests. The devices
    share the same cores, so this tests the code path, not speed.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        logical = len(tf.config.list_logical_devices("CPU"))
        if logical != num_devices:
            raise UserError(
                f"cannot split the CPU into {num_devices} devices after TensorFlow started "
                f"({logical} already); pass --cpu-devices before anything else runs") from None


def make_strategy(name="auto", cpu_devices=0):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: `auto` (TPU if configured, else all GPUs mirrored, else one
            device), `one_device`, `mirrored`, `multi_worker` (reads
            `TF_CONFIG`) or `tpu`.
        cpu_devices: if > 1, split the CPU into that many logical devices
            first (for `mirrored` on a CPU-only machine).
    """
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")
    if cpu_devices > 1:
        split_cpu(cpu_devices)
    if name == "tpu" or (name == "auto" and os.environ.get("TPU_NAME")):
        return _tpu_strategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("strategy multi_worker needs TF_CONFIG (cluster spec and task) in the "
                            "environment; see README 'Training on several workers'")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise UserError(f"TF_CONFIG is not valid JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as error:
        raise UserError(
            f"no TPU found ({str(error).splitlines()[0]}); run on a TPU VM or set TPU_NAME, "
            "or choose --strategy auto") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True on the worker that writes shared files (always true off multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0)
