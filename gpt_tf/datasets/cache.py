"""Where fetched and prepared data lives, and writing it without half-written files.

Layout of a cache directory (`~/.cache/gpt_tf` unless `$GPT_TF_CACHE` or an
explicit argument says otherwise):

    raw/<package>-<version>/          members extracted from a pinned PyPI file
    prepared/<data set name>/         converted splits plus card.json and card.md

Everything is first written under a temporary name beside its final path and
renamed into place when complete (`gpt_tf.files`), so an interrupted fetch or
prepare leaves nothing that looks finished.
"""

import os
from pathlib import Path

from gpt_tf.files import atomic_write_text  # noqa: F401  (re-exported: the data builders use it)

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
