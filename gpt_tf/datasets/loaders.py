"""Loaders for the formats a user can bring: text, translation pairs, sentiment.

Formats (all UTF-8; a byte-order mark is accepted):
    * language modelling: plain text files, one document per file;
    * translation: TSV `source<TAB>target` (an optional `source<TAB>target`
      header line) or JSONL objects with string fields "source" and "target";
    * sentiment: JSONL objects with "text" (string) and "label" (string or
      integer), or CSV with a header row naming the columns "text" and "label".

Blank lines are skipped. Every other row is validated; the first bad one raises
`UserError` naming the file, the line and the field.
SQuAD JSON for question answering is read by `gpt_tf.datasets.squad.load_squad`.
"""

import csv
import dataclasses
import io
import json
from pathlib import Path

from gpt_tf.datasets.textio import describe, read_text
from gpt_tf.errors import UserError

_TSV_SUFFIXES = {".tsv", ".tab", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_CSV_SUFFIXES = {".csv"}


@dataclasses.dataclass(frozen=True)
class TranslationPair:
    """A source sentence and its translation."""

    source: str
    target: str


@dataclasses.dataclass(frozen=True)
class SentimentExample:
    """A text and its class label (labels are kept as strings, e.g. "positive" or "1")."""

    text: str
    label: str


def list_text_files(paths):
    """Expands files and directories (recursively, hidden entries skipped) into files.

    Args:
        paths: a path or a list of paths.

    Returns:
        Sorted list of distinct file paths as `Path`.

    Raises:
        UserError: a path does not exist or no file is found.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = set()
    for path in map(Path, paths):
        if path.is_dir():
            for child in path.rglob("*"):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden:
                    files.add(child)
        elif path.exists():
            files.add(path)
        else:
            raise UserError(f"input '{path}' does not exist; pass text files or directories")
    if not files:
        raise UserError(f"no text files found in {[str(p) for p in paths]}; the corpus is empty")
    return sorted(files)


def load_text_files(paths, owner=None):
    """Reads plain-text documents, one per file.

    Args:
        paths: a file, a directory (read recursively) or a list of them.
        owner: names the data set in error messages (None for user files).

    Returns:
        List of document texts, in sorted path order.

    Raises:
        UserError: a path is missing, or a file is empty, binary or not UTF-8.
    """
    return [read_text(path, owner) for path in list_text_files(paths)]


def _pick_format(path, allowed, given):
    if given is not None:
        if given not in allowed:
            raise UserError(f"unknown format '{given}' for {describe(path)}; use one of {allowed}")
        return given
    suffix = Path(path).suffix.lower()
    for name, suffixes in (
        ("tsv", _TSV_SUFFIXES),
        ("jsonl", _JSONL_SUFFIXES),
        ("csv", _CSV_SUFFIXES),
    ):
        if name in allowed and suffix in suffixes:
            return name
    return None


def _nonblank_lines(text):
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def _bad_row(path, owner, line, problem):
    return UserError(f"{describe(path, owner)}, line {line}: {problem}; fix or remove that row")


def _string_field(row, field, path, owner, line):
    if field not in row:
        raise _bad_row(path, owner, line, f"field '{field}' is missing")
    value = row[field]
    if not isinstance(value, str):
        raise _bad_row(
            path, owner, line, f"field '{field}' must be a string, not {type(value).__name__}"
        )
    value = value.strip()
    if not value:
        raise _bad_row(path, owner, line, f"field '{field}' is empty")
    return value


def _jsonl_objects(text, path, owner):
    for line, raw in _nonblank_lines(text):
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as error:
            raise _bad_row(
                path, owner, line, f"invalid JSON ({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(row, dict):
            raise _bad_row(path, owner, line, f"expected a JSON object, got {type(row).__name__}")
        yield line, row


def _check_sniffed_jsonl(text, path, owner, kinds):
    first = next(_nonblank_lines(text), (1, ""))[1].lstrip()
    if not first.startswith("{"):
        raise UserError(
            f"{describe(path, owner)}: cannot tell the format from the name; "
            f"use a {' or '.join(kinds)} file name ending"
        )


def load_translation_pairs(path, format=None, owner=None):
    """Reads translation pairs from TSV or JSONL.

    Args:
        path: the file. `.tsv`, `.tab`, `.txt` mean TSV; `.jsonl`, `.ndjson`,
            `.json` mean JSONL; any other name must hold JSONL.
        format: "tsv" or "jsonl" to override the file name.
        owner: names the data set in error messages (None for user files).

    Returns:
        List of `TranslationPair` in file order.

    Raises:
        UserError: unreadable file, malformed row (naming line and field), no pairs.
    """
    text = read_text(path, owner)
    kind = _pick_format(path, ("tsv", "jsonl"), format)
    if kind is None:
        _check_sniffed_jsonl(text, path, owner, [".tsv", ".jsonl"])
        kind = "jsonl"
    pairs = []
    if kind == "tsv":
        for line, raw in _nonblank_lines(text):
            fields = raw.split("\t")
            if not pairs and [f.strip().lower() for f in fields] == ["source", "target"]:
                continue  # header line
            if len(fields) != 2:
                raise _bad_row(
                    path,
                    owner,
                    line,
                    f"expected 2 tab-separated fields (source, target), found {len(fields)}",
                )
            row = {"source": fields[0], "target": fields[1]}
            pairs.append(
                TranslationPair(
                    _string_field(row, "source", path, owner, line),
                    _string_field(row, "target", path, owner, line),
                )
            )
    else:
        for line, row in _jsonl_objects(text, path, owner):
            pairs.append(
                TranslationPair(
                    _string_field(row, "source", path, owner, line),
                    _string_field(row, "target", path, owner, line),
                )
            )
    if not pairs:
        raise UserError(f"{describe(path, owner)} holds no translation pairs; add rows")
    return pairs


def _label_field(row, path, owner, line):
    if "label" not in row:
        raise _bad_row(path, owner, line, "field 'label' is missing")
    value = row["label"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad_row(
            path,
            owner,
            line,
            f"field 'label' must be a string or an integer, not {type(value).__name__}",
        )
    value = str(value).strip()
    if not value:
        raise _bad_row(path, owner, line, "field 'label' is empty")
    return value


def load_sentiment(path, format=None, owner=None):
    """Reads labelled texts from JSONL or CSV.

    Args:
        path: the file. `.jsonl`, `.ndjson`, `.json` mean JSONL; `.csv` means
            CSV with a header row holding "text" and "label" (other columns are
            ignored); any other name must hold JSONL.
        format: "jsonl" or "csv" to override the file name.
        owner: names the data set in error messages (None for user files).

    Returns:
        List of `SentimentExample` in file order; labels are strings.

    Raises:
        UserError: unreadable file, malformed row (naming line and field), no rows.
    """
    text = read_text(path, owner)
    kind = _pick_format(path, ("jsonl", "csv"), format)
    if kind is None:
        _check_sniffed_jsonl(text, path, owner, [".jsonl", ".csv"])
        kind = "jsonl"
    examples = []
    if kind == "jsonl":
        for line, row in _jsonl_objects(text, path, owner):
            examples.append(
                SentimentExample(
                    _string_field(row, "text", path, owner, line),
                    _label_field(row, path, owner, line),
                )
            )
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            while header is not None and not any(cell.strip() for cell in header):
                header = next(reader, None)
            if header is None:
                raise UserError(f"{describe(path, owner)} holds no rows; add a header and rows")
            columns = [cell.strip().lower() for cell in header]
            missing = [name for name in ("text", "label") if name not in columns]
            if missing:
                raise _bad_row(
                    path,
                    owner,
                    reader.line_num,
                    f"the header must name the columns 'text' and 'label' "
                    f"(missing {missing}, found {columns})",
                )
            text_at, label_at = columns.index("text"), columns.index("label")
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue
                line = reader.line_num
                if len(cells) != len(columns):
                    raise _bad_row(
                        path, owner, line, f"expected {len(columns)} columns, found {len(cells)}"
                    )
                row = {"text": cells[text_at], "label": cells[label_at]}
                examples.append(
                    SentimentExample(
                        _string_field(row, "text", path, owner, line),
                        _label_field(row, path, owner, line),
                    )
                )
        except csv.Error as error:
            raise _bad_row(path, owner, reader.line_num, f"malformed CSV ({error})") from None
    if not examples:
        raise UserError(f"{describe(path, owner)} holds no labelled texts; add rows")
    return examples
