"""Reading text files strictly (existing, non-empty, not binary, valid UTF-8); writing JSON Lines."""

import json
from pathlib import Path

from gpt_tf.datasets.cache import atomic_write_text
from gpt_tf.errors import UserError

# Bytes inspected to tell a binary file from text.
_SNIFF_BYTES = 8192


def describe(path, owner=None):
    """Names a file for an error message, with the data set it belongs to if any.

    Args:
        path: the file.
        owner: e.g. "data set 'lm-en'"; None for a user's own file.

    Returns:
        A phrase such as "file 'x.tsv'" or "data set 'lm-en': file 'x.txt'".
    """
    return f"{owner}: file '{path}'" if owner else f"file '{path}'"


def read_text(path, owner=None, fix=None):
    """Reads a whole UTF-8 text file, raising `UserError` on anything else.

    A UTF-8 byte-order mark is dropped and line endings become `\\n`.

    Args:
        path: the file to read.
        owner: names the data set in error messages (None for user files).
        fix: what to tell the user to do about a bad file; a sensible default
            is used when None.

    Returns:
        The file's text.

    Raises:
        UserError: the file is missing, a directory, empty, binary or not UTF-8.
    """
    path = Path(path)
    name = describe(path, owner)
    if not path.exists():
        raise UserError(f"{name} does not exist; {fix or 'check the path'}")
    if path.is_dir():
        raise UserError(f"{name} is a directory, not a file; {fix or 'pass a file'}")
    data = path.read_bytes()
    if not data.strip():
        raise UserError(f"{name} is empty; {fix or 'pass a file that holds data'}")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UserError(
            f"{name} looks like a binary file (it holds NUL bytes); "
            f"{fix or 'pass a UTF-8 text file'}"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(
            f"{name} is not valid UTF-8 (line {line}, byte {error.start}: {error.reason}); "
            f"{fix or 'convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > NEW`'}"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def write_jsonl(rows, path):
    """Writes dicts as JSON Lines (UTF-8, not ASCII-escaped), atomically.

    Args:
        rows: iterable of JSON-serialisable dicts.
        path: destination file.
    """
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
