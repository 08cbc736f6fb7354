"""The quiet command line (`gpt_tf.logs`): TensorFlow's log lines hidden unless asked for."""

import logging
import os
import re
import subprocess
import sys

import pytest

from gpt_tf import logs
from gpt_tf.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A C++ log line in absl's format: `E0000 00:00:1796151340.87 19201 cuda_platform.cc:52] ...`.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] ", re.MULTILINE)
CUINIT = "failed call to cuInit"


@pytest.fixture
def resumable_run(tmp_path):
    """A run directory `gpt-tf train` resumes: it imports TensorFlow, starts the devices
    (where a machine without a GPU logs the cuInit error), then stops with a user error
    (no tokenizer). About 4 s, most of it importing TensorFlow."""
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)


def _gpt_tf(args, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("GPT_TF_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "gpt_tf.cli", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def _train(run_dir, *flags, **env):
    return _gpt_tf([*flags, "train", "--run-dir", run_dir, "--strategy", "one_device"], **env)


def test_cli_hides_tensorflow_logs_and_keeps_user_errors(resumable_run):
    done = _train(resumable_run)
    assert done.returncode == 2
    # Only the user error: no absl banner, no oneDNN/CUDA notices, no cuInit error.
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("gpt-tf: error: tokenizer model"), done.stderr
    assert CUINIT not in done.stderr


def test_verbose_and_gpt_tf_log_bring_tensorflow_logs_back(resumable_run):
    verbose = _train(resumable_run, "--verbose")
    assert verbose.returncode == 2
    assert TF_LOG_LINE.search(verbose.stderr), verbose.stderr  # TensorFlow's info lines
    assert "gpt-tf: error: tokenizer model" in verbose.stderr

    errors_only = _train(resumable_run, GPT_TF_LOG="error")
    assert errors_only.returncode == 2
    assert "gpt-tf: error: tokenizer model" in errors_only.stderr
    severities = {line[0] for line in TF_LOG_LINE.findall(errors_only.stderr)}
    assert severities <= {"E", "F"}, errors_only.stderr  # info and warning lines stay hidden
    # The cuInit line is an error: `error` shows it wherever `--verbose` does.
    assert (CUINIT in errors_only.stderr) == (CUINIT in verbose.stderr)


def test_apps_hide_tensorflow_logs(resumable_run):
    done = subprocess.run([sys.executable, "-m", "apps.sentiment", "a film", "--model",
                           resumable_run], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items()
                                            if k not in ("GPT_TF_LOG", "TF_CPP_MIN_LOG_LEVEL")})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("apps.sentiment: error: tokenizer model")


def test_bad_gpt_tf_log_is_a_user_error(monkeypatch):
    monkeypatch.setenv("GPT_TF_LOG", "loud")
    with pytest.raises(UserError, match="GPT_TF_LOG='loud' is not a log level; use one of quiet"):
        logs.level_from_env()
    done = _gpt_tf(["--help"], GPT_TF_LOG="loud")
    assert done.returncode == 2
    assert done.stderr.startswith("gpt-tf: error: GPT_TF_LOG='loud' is not a log level")


@pytest.mark.parametrize("value, verbose, expected", [
    (None, False, "quiet"), ("", False, "quiet"), (None, True, "info"), ("warning", True, "info"),
    ("error", False, "error"), ("DEBUG", False, "debug"), ("debug", True, "debug")])
def test_level_from_env(monkeypatch, value, verbose, expected):
    if value is None:
        monkeypatch.delenv("GPT_TF_LOG", raising=False)
    else:
        monkeypatch.setenv("GPT_TF_LOG", value)
    assert logs.level_from_env(verbose) == expected


@pytest.mark.parametrize("argv, before_command, expected", [
    (["--verbose", "train"], True, True), (["train", "--verbose"], True, False),
    (["serve", "--verbose"], True, False), (["a text", "--verbose"], False, True),
    (["--", "--verbose"], False, False), (["--json"], False, False)])
def test_has_verbose_flag(argv, before_command, expected):
    assert logs.has_verbose_flag(argv, before_command) is expected


@pytest.fixture
def saved_logging(monkeypatch):
    """Restores the environment variables and logger levels `configure` changes."""
    for name in ("GPT_TF_LOG", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.setenv(name, "")  # recorded, so the original comes back afterwards
        monkeypatch.delenv(name)
    monkeypatch.setattr(logs, "_native_min_level", logs._native_min_level)
    levels = {name: logging.getLogger(name).level for name in logs.PYTHON_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_configure_sets_levels_for_tensorflow_and_workers(saved_logging):
    assert logs.configure() == "quiet"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert "GPT_TF_LOG" not in os.environ  # the default needs no export
    assert logging.getLogger("absl").level == logging.ERROR
    assert logs.configure(verbose=True) == "info"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert os.environ["GPT_TF_LOG"] == "info"  # inherited by `--workers` processes
    assert logging.getLogger("tensorflow").level == logging.INFO
    assert not any(isinstance(f, logs._QuietTensorFlowImport) for f in sys.meta_path)


def test_import_filter_drops_tensorflow_noise_only(capfd):
    banner = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    info = "I0000 00:00:1796151338.368609   19201 port.cc:153] oneDNN custom operations are on."
    error = "E0000 00:00:1796151340.875964   19201 cuda_platform.cc:52] failed call to cuInit: X"
    fatal = "F0000 00:00:1796151340.875964   19201 op_kernel.cc:12] Check failed: x"
    other = "UserWarning: something a user should see"
    with logs.filtered_native_stderr(min_level=3):
        os.write(2, "\n".join([banner, info, error, fatal, other, ""]).encode())
    assert capfd.readouterr().err.splitlines() == [fatal, other]
    with logs.filtered_native_stderr(min_level=2):  # GPT_TF_LOG=error keeps errors
        os.write(2, "\n".join([banner, info, error, ""]).encode())
    assert capfd.readouterr().err.splitlines() == [error]
    assert not logs.is_native_noise(info, min_level=0)


def test_sentencepiece_lines_are_noise_only_below_their_level():
    line = "normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization."
    assert logs.is_native_noise(line, min_level=3)
    assert logs.is_native_noise(line, min_level=1)
    assert not logs.is_native_noise(line, min_level=0)
    assert not logs.is_native_noise("model.cc(12) LOG(FATAL) bad model", min_level=3)


def test_quiet_native_logs_follows_configure(saved_logging, capfd, monkeypatch):
    line = "normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization."
    logs.configure(verbose=True)
    with logs.quiet_native_logs():
        os.write(2, (line + "\n").encode())
    assert capfd.readouterr().err == line + "\n"
    monkeypatch.delenv("GPT_TF_LOG")  # exported by the verbose call
    logs.configure()
    with logs.quiet_native_logs():
        os.write(2, (line + "\nkept\n").encode())
    assert capfd.readouterr().err == "kept\n"
