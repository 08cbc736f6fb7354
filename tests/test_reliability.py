"""Process-level reliability: kill -9, SIGTERM, dead workers, strategies agree.

Each test drives the real `gpt-tf train` in subprocesses, so these are slow.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

import gpt_tf.models  # noqa: F401  (registers the classes model.keras refers to)
from tests.conftest import CORPUS_FILES

pytestmark = pytest.mark.slow

TINY = ["--preset", "nano", "--model.vocab_size=320", "--model.sequence_length=32",
        "--model.hidden_dim=16", "--model.num_heads=2", "--model.intermediate_dim=64",
        "--model.dropout=0.1", "--data.validation_fraction=0.25", "--train.batch_size=8",
        "--train.warmup_steps=5", "--train.eval_every=1000", "--train.log_every=1",
        # No XLA: compiling would cost more than these tiny runs train.
        "--train.xla=false"]


def _command(run_dir, *extra):
    return [sys.executable, "-m", "gpt_tf.cli", "train", "--run-dir", str(run_dir),
            "--data", *CORPUS_FILES, "--deterministic", *TINY, *extra]


class _Process:
    """A subprocess whose merged output is collected line by line."""

    def __init__(self, command):
        self.lines = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, timeout=180):
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.process.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"'{pattern}' not seen; output:\n" + "\n".join(self.lines[-40:]))

    def finish(self, timeout=300):
        status = self.process.wait(timeout=timeout)
        self.thread.join(timeout=10)
        return status

    @property
    def text(self):
        return "\n".join(self.lines)


def _summary(process):
    return json.loads([line for line in process.lines if line.startswith("{")][-1])


def _final_weights(run_dir):
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    return [np.asarray(w) for w in model.weights]


def test_kill_9_then_restart_equals_uninterrupted_run(tmp_path):
    steps = ["--train.steps=150", "--train.checkpoint_every=7"]
    # The reference and the victim run side by side (2 cores; independent runs).
    reference = _Process(_command(tmp_path / "reference", *steps))
    kill_at = random.Random().randint(15, 120)
    victim = _Process(_command(tmp_path / "killed", *steps))
    victim.wait_for(rf"step {kill_at}/150")
    victim.process.send_signal(signal.SIGKILL)
    assert victim.finish() == -signal.SIGKILL
    resumed = _Process(_command(tmp_path / "killed", *steps))
    assert resumed.finish() == 0, resumed.text
    assert reference.finish() == 0, reference.text
    match = re.search(r"resumed at step (\d+)", resumed.text)
    assert match and 0 < int(match.group(1)) <= 150, f"killed at step {kill_at}: {resumed.text}"
    for a, b in zip(_final_weights(tmp_path / "reference"), _final_weights(tmp_path / "killed")):
        np.testing.assert_array_equal(a, b, err_msg=f"killed at step {kill_at}")


def test_sigterm_saves_current_step_and_restart_loses_nothing(tmp_path):
    steps = ["--train.steps=400", "--train.checkpoint_every=1000"]
    first = _Process(_command(tmp_path / "run", *steps))
    first.wait_for(r"step 30/400")
    first.process.send_signal(signal.SIGTERM)
    assert first.finish() == 143, first.text
    stopped_at = _summary(first)["step"]
    assert _summary(first)["status"] == "preempted" and stopped_at >= 30
    assert os.path.exists(tmp_path / "run" / "checkpoints" / f"ckpt-{stopped_at}.index")
    second = _Process(_command(tmp_path / "run", "--train.steps=400"))
    assert second.finish() == 0, second.text
    assert f"resumed at step {stopped_at} " in second.text
    assert _summary(second)["step"] == 400


def test_strategies_give_the_same_losses(tmp_path):
    # Dropout off: each replica draws its own dropout masks, so with dropout
    # the runs agree only statistically.
    steps = ["--train.steps=12", "--train.checkpoint_every=100", "--model.dropout=0.0"]
    runs = {
        "one_device": _command(tmp_path / "one", *steps, "--strategy", "one_device"),
        "mirrored": _command(tmp_path / "mirrored", *steps, "--strategy", "mirrored",
                             "--cpu-devices", "2"),
        "multi_worker": _command(tmp_path / "multi", *steps, "--workers", "2"),
    }
    losses = {}
    processes = {name: _Process(command) for name, command in runs.items()}  # side by side
    for name, process in processes.items():
        assert process.finish() == 0, process.text
        lines = process.lines
        if name == "multi_worker":
            lines = [line.split("] ", 1)[1] for line in lines if line.startswith("[worker 0] ")]
        assert "(2 replica(s))" in "\n".join(lines) or name == "one_device"
        losses[name] = [float(m) for m in re.findall(r"step \d+/12 loss ([0-9.]+)", "\n".join(lines))]
        assert len(losses[name]) == 12
    # Stated tolerance: 1e-4 relative on the 4-decimal progress-bar losses
    # (summation order differs across replicas; observed differences ~1e-6).
    np.testing.assert_allclose(losses["mirrored"], losses["one_device"], rtol=1e-4)
    np.testing.assert_allclose(losses["multi_worker"], losses["one_device"], rtol=1e-4)


def test_killed_worker_stops_the_other_and_the_launcher_resumes(tmp_path):
    steps = ["--train.steps=300", "--train.checkpoint_every=10"]
    launcher = _Process(_command(tmp_path / "run", *steps, "--workers", "2",
                                 "--max-restarts", "2"))
    pids = json.loads(launcher.wait_for(r"worker pids (\[.*\])").group(1))
    launcher.wait_for(r"\[worker 1\] .*step 40/300")
    os.kill(pids[1], signal.SIGKILL)
    launcher.wait_for(r"worker 1 exited with status -9")
    # The survivor ends by itself with a clear error (no hang, no traceback).
    launcher.wait_for(r"\[worker 0\] gpt-tf: a peer worker failed", timeout=60)
    launcher.wait_for(r"restarting all workers")
    assert launcher.finish() == 0, launcher.text
    resumed = re.search(r"\[worker 0\] resumed at step (\d+)", launcher.text)
    assert resumed and int(resumed.group(1)) >= 40
    assert "all workers finished" in launcher.text
    assert "Traceback" not in launcher.text
