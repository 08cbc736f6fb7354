"""Writing files and directories atomically, and hashing files.

Work that writes artifacts (run directories, exports, prepared data sets,
manifests) writes under a temporary name beside the final path and renames it
into place when complete, so an interrupted write leaves nothing that looks
finished. A leaf module: standard library (and `gpt_tf.errors`) only.
(`tflite/runtime.py` hashes with its own copy: the runner must not import `gpt_tf`.)
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

from gpt_tf.errors import UserError


@contextlib.contextmanager
def atomic_directory(final_path, replace=False):
    """Yields a temporary directory that becomes `final_path` on success.

    The temporary directory is a sibling of `final_path` (same file system, so
    the rename is atomic). On any exception it is removed and `final_path` is
    left as it was.

    Args:
        final_path: where the finished directory should end up (str or path).
        replace: replace an existing `final_path`, swapped out only once the new
            content is complete. Without it, `final_path` must not exist: a
            `UserError` before anything is written.

    Yields:
        The temporary directory's path (a str).
    """
    final_path = os.path.abspath(final_path)
    if not replace and os.path.exists(final_path):
        raise UserError(f"'{final_path}' already exists; choose another path or remove it")
    parent, name = os.path.split(final_path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replace and os.path.exists(final_path):
        old = os.path.join(parent, f".{name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_path, old)
        os.replace(tmp, final_path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final_path)


def atomic_write_text(path, text):
    """Writes `text` as UTF-8 to `path` through a temporary file and a rename.

    Args:
        path: destination file (its folder is created if needed).
        text: the whole content.
    """
    path = os.fspath(path)
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path, chunk_size=1 << 20):
    """Hex SHA-256 of a file, read in chunks (files larger than memory work)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path, fix):
    """A JSON file's value; a missing, non-UTF-8 or non-JSON file is a `UserError`.

    Args:
        path: the file.
        fix: what the user should do, appended to the message.
    """
    if not os.path.isfile(path):
        raise UserError(f"'{path}' not found; {fix}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"'{path}' is not valid JSON ({error}); {fix}") from None
