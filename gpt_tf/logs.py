"""How much of TensorFlow's own logging the command lines show (standard library only).

TensorFlow writes C++ log lines to stderr while it is imported ("oneDNN custom
operations are on", "Could not find cuda drivers") and when it starts its
devices (an error-level "failed call to cuInit" on every machine without a
GPU), and Python warnings through the `tensorflow` and `absl` loggers. None of
it is about the user's command. Every entry point (`gpt-tf`, `python -m
apps.NAME`, `python -m gpt_tf.evaluation`) calls `configure` first, before
anything imports TensorFlow.

Levels, from `GPT_TF_LOG` (`--verbose` is `info`):

    quiet    (default) no TensorFlow C++ log lines (TF_CPP_MIN_LOG_LEVEL=3),
             `tensorflow`/`absl` Python loggers at ERROR
    error    C++ errors (2), Python loggers at ERROR
    warning  C++ warnings and errors (1), Python loggers at WARNING
    info     everything TensorFlow prints by default (0), loggers at INFO
    debug    as info, Python loggers at DEBUG

Some native lines ignore TF_CPP_MIN_LOG_LEVEL: those TensorFlow logs while it is
imported, before it reads its level (absl's "before absl::InitializeLog()"
banner, oneDNN and CUDA notices) and those of the SentencePiece copy inside
tensorflow_text when a SavedModel with an in-graph tokenizer loads
("normalizer.cc(51) LOG(INFO) ..."). Below `info` they are filtered out of what
is written to stderr during the import and inside `quiet_native_logs()`
(`gpt_tf.clients.open_client` loads models in it): `filtered_native_stderr`.

`TF_CPP_MIN_LOG_LEVEL` is set from the level, and the level is exported in
`GPT_TF_LOG` when it is not the default, so worker processes log the same way.
gpt-tf's own messages (one-line user errors, warnings, progress) are printed by
the command lines themselves and shown at every level.

The library never calls this: importing `gpt_tf` leaves logging alone.
"""

import contextlib
import faulthandler
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

from gpt_tf.errors import UserError

ENV_VAR = "GPT_TF_LOG"
DEFAULT_LEVEL = "quiet"
VERBOSE_LEVEL = "info"
# level -> (TF_CPP_MIN_LOG_LEVEL, level of the `tensorflow` and `absl` Python loggers)
LEVELS = {
    "quiet": ("3", logging.ERROR),
    "error": ("2", logging.ERROR),
    "warning": ("1", logging.WARNING),
    "info": ("0", logging.INFO),
    "debug": ("0", logging.DEBUG),
}
PYTHON_LOGGERS = ("tensorflow", "absl")
VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = f"show TensorFlow's own log lines (same as {ENV_VAR}={VERBOSE_LEVEL})"

# Native lines that ignore TensorFlow's log level: absl's banner, absl's log lines
# (`I0000 00:00:1796151590.624 21329 port.cc:153] ...`, severity first: I, W, E, F),
# SentencePiece's (`normalizer.cc(51) LOG(INFO) ...`) and the second line of the
# CPU-instructions notice (info level). Anything else written then (a Python
# warning, a traceback) is always shown, and so is a fatal line.
_ABSL_BANNER = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called "
                          r"are written to STDERR\s*$")
_ABSL_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] ")
_SENTENCEPIECE_LINE = re.compile(r"[\w.\-]+\(\d+\) LOG\(([A-Z])[A-Z]*\) ")
_CPU_NOTICE = re.compile(r"To enable the following instructions: .* rebuild TensorFlow with "
                         r"the appropriate compiler flags\.\s*$")
_SEVERITIES = "IWE"  # index = the TF_CPP_MIN_LOG_LEVEL that hides them


def has_verbose_flag(argv, before_command=False):
    """Whether `argv` holds `--verbose` (before `--`; with `before_command`, before the
    first positional argument, so a subcommand's own `--verbose` keeps its meaning)."""
    for arg in argv:
        if arg == "--" or (before_command and not arg.startswith("-")):
            return False
        if arg == VERBOSE_FLAG:
            return True
    return False


def level_from_env(verbose=False):
    """The level `GPT_TF_LOG` asks for; `verbose` (`--verbose`) makes it at least `info`.

    Raises:
        UserError: `GPT_TF_LOG` is set to a name that is not a level.
    """
    name = os.environ.get(ENV_VAR, "").strip().lower() or DEFAULT_LEVEL
    if name not in LEVELS:
        raise UserError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a log level; use one of "
                        f"{', '.join(LEVELS)} (or unset it for {DEFAULT_LEVEL})")
    if verbose and LEVELS[name][0] > LEVELS[VERBOSE_LEVEL][0]:
        name = VERBOSE_LEVEL
    return name


def configure(verbose=False):
    """Sets TensorFlow's logging for a command-line process; call it before TensorFlow loads.

    Args:
        verbose: the command line had `--verbose` (at least level `info`).

    Returns:
        The level name in force.

    Raises:
        UserError: `GPT_TF_LOG` names no level.
    """
    global _native_min_level
    name = level_from_env(verbose)
    cpp_level, python_level = LEVELS[name]
    _native_min_level = int(cpp_level)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = cpp_level
    if name != DEFAULT_LEVEL:
        os.environ[ENV_VAR] = name
    _set_python_loggers(python_level)
    for finder in [f for f in sys.meta_path if isinstance(f, _QuietTensorFlowImport)]:
        sys.meta_path.remove(finder)  # configured twice in one process: the last call wins
    if int(cpp_level) > 0 and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietTensorFlowImport(int(cpp_level), python_level))
    return name


def _set_python_loggers(level):
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(level)


def is_native_noise(line, min_level=3):
    """Whether `line` is a native log line below `min_level` (a TF_CPP_MIN_LOG_LEVEL:
    3 drops I, W and E lines, 1 only I lines)."""
    if min_level <= 0:
        return False
    if _ABSL_BANNER.match(line) or _CPU_NOTICE.match(line):
        return True
    match = _ABSL_LINE.match(line) or _SENTENCEPIECE_LINE.match(line)
    return bool(match) and match.group(1) in _SEVERITIES[:min_level]


_native_min_level = 0  # set by `configure`; 0: nothing is filtered


def quiet_native_logs():
    """A context manager: inside it, native log lines below the level `configure` chose
    are dropped from stderr (`filtered_native_stderr`); without `configure`, a no-op.

    For work that makes native libraries log whatever TensorFlow's level (loading a
    SavedModel with an in-graph SentencePiece tokenizer). Output written to stderr inside
    it appears when the block ends.
    """
    if _native_min_level <= 0:
        return contextlib.nullcontext()
    return filtered_native_stderr(_native_min_level)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once and imports it with the noise of its import filtered out."""

    def __init__(self, min_level, python_level):
        self.min_level = min_level
        self.python_level = python_level

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one import only; the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self.min_level, self.python_level)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader, min_level, python_level):
        self.loader = loader
        self.min_level = min_level
        self.python_level = python_level

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with filtered_native_stderr(self.min_level):
            self.loader.exec_module(module)
        # TensorFlow's import sets up absl logging; the levels apply from here on.
        _set_python_loggers(self.python_level)

    def __getattr__(self, name):
        return getattr(self.loader, name)


@contextlib.contextmanager
def filtered_native_stderr(min_level=3):
    """Captures what C++ code and Python write to file descriptor 2 inside the block, then
    writes it back to stderr without the lines `is_native_noise(line, min_level)` drops.

    If the process dies inside the block, `faulthandler` still reports where on the real
    stderr (the captured lines are lost; `--verbose` shows them).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield  # no usable stderr descriptor: nothing to filter
        return
    reporting = faulthandler.is_enabled()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        if not reporting:
            faulthandler.enable(file=saved)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            if not reporting:
                faulthandler.disable()
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True)
                           if not is_native_noise(line, min_level))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
