"""Finding and checking the user's text files."""

import glob
import os

from gpt_tf.errors import UserError
from gpt_tf.files import atomic_directory  # noqa: F401  (re-exported: many callers use it here)


def check_text_file(path):
    """Raises `UserError` unless `path` is a non-empty UTF-8 text file.

    Reads the file in chunks, so it works on files larger than memory.
    """
    if not os.path.exists(path):
        raise UserError(f"input file '{path}' does not exist; check the path")
    if os.path.isdir(path):
        raise UserError(f"input '{path}' is a directory; pass the text files inside it")
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip():
        raise UserError(f"input file '{path}' is empty; remove it or add text")
    if b"\x00" in head:
        raise UserError(f"input file '{path}' looks binary (NUL bytes); pass UTF-8 text files only")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            for _ in iter(lambda: handle.read(1 << 20), ""):
                pass
    except UnicodeDecodeError as error:
        raise UserError(
            f"input file '{path}' is not valid UTF-8 ({error.reason} near byte {error.start} of a "
            "chunk); convert it, e.g. `iconv -f latin1 -t utf-8 FILE`"
        ) from None


def resolve_text_files(paths):
    """Expands files, directories (recursively) and globs into a sorted file list.

    Every file is checked with `check_text_file`; hidden files are skipped.

    Args:
        paths: list of path strings.

    Returns:
        Sorted list of distinct file paths.
    """
    if isinstance(paths, str):
        paths = [paths]
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
        elif os.path.exists(path):
            files.append(path)
        elif glob.has_magic(path):
            matched = sorted(glob.glob(path, recursive=True))
            if not matched:
                raise UserError(f"the pattern '{path}' matches no files; check it")
            files.extend(m for m in matched if os.path.isfile(m))
        else:
            raise UserError(f"input '{path}' does not exist; pass text files, directories or globs")
    files = sorted(set(files))
    if not files:
        raise UserError(f"no text files found in {list(paths)}; the corpus is empty")
    for path in files:
        check_text_file(path)
    return files
