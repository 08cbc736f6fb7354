"""Software message catalogues (gettext `.po`/`.mo`) as English -> French pairs.

Programs translated with gettext ship one catalogue per language: every
English message (`msgid`) with its translation (`msgstr`). They are modern,
technical and aligned by construction. This module reads them (no third-party
parser), cleans the pairs and splits them by package, so a held-out split
holds packages, hence publishers and vocabularies, that training never saw.
"""

import ast
import gettext
import re
import unicodedata

from gpt_tf.datasets import markup
from gpt_tf.datasets.splits import SPLITS, dedup_key
from gpt_tf.errors import UserError

# %s, %(name)s, %1$s, {name}, {0}, {{ var }}, $VAR, ${var}
PLACEHOLDER = re.compile(
    r"%(?:\([\w.]+\))?[-+ #0]*\d*(?:\.\d+)?[sdifuxXeEgGcr%]|%\d+\$[sd]|\{\{[^{}]*\}\}|\{[\w.:!]*\}"
    r"|\$\{?\w+\}?"
)
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
# "_File", "&Open": a letter after the marker is a keyboard accelerator; so is an "&" inside
# a word ("Enregi&strer"), except between capitals ("R&D", "AT&T")
_ACCELERATOR = re.compile(r"(?<![\w&])[_&](?=\w)|(?<=[^\W\d_])&(?=[^\W\d_])")

CATALOG_CLEANING = [
    "fuzzy, obsolete (#~) and untranslated entries skipped; plural entries give their singular "
    "forms (msgid -> msgstr[0]); the catalogue header skipped",
    "keyboard accelerators (_File, &Open, Enregi&strer) removed; HTML character references "
    "(&hellip;, &lt;) replaced by their characters; runs of whitespace and newlines joined with "
    "one space; Unicode NFC",
    "dropped: pairs whose placeholders (%s, %(name)s, {name}, ...) differ between the sides, "
    "pairs with no letter, pairs whose French equals the English, messages over 400 characters",
    "de-duplicated on the English (case- and space-insensitive): the first package in split "
    "order keeps it; a held-out pair whose English or French occurs in an earlier split is dropped",
]
MAX_MESSAGE_CHARS = 400


def _unquote(text, path, line_number):
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        raise UserError(f"{path}, line {line_number}: malformed PO string {text[:60]!r}; the "
                        "catalogue is corrupt: fetch the data set again (--force)") from None
    if not isinstance(value, str):
        raise UserError(f"{path}, line {line_number}: expected a quoted string")
    return value


def read_po(path):
    """Translated messages of a `.po` file as `(msgid, msgstr)` pairs.

    Fuzzy, obsolete and untranslated entries and the header are skipped; a
    plural entry gives `(msgid, msgstr[0])`.

    Args:
        path: the `.po` file (UTF-8).

    Returns:
        List of `(english, translation)` in file order.

    Raises:
        UserError: the file is not UTF-8 or holds a malformed string.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8; only UTF-8 catalogues are read") from None
    pairs = []
    entry, field = {"fuzzy": False}, None

    def finish():
        source, target = entry.get("msgid", ""), entry.get("msgstr", "")
        if source and target and not entry["fuzzy"]:
            pairs.append((source, target))
        return {"fuzzy": False}, None

    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("#~"):
            continue
        if "msgstr" in entry and (not line or line.startswith(("#", "msgctxt ", "msgid "))):
            entry, field = finish()
        if not line:
            continue
        if line.startswith("#"):
            entry["fuzzy"] = entry["fuzzy"] or (line.startswith("#,") and "fuzzy" in line)
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgctxt", "msgid", "msgid_plural", "msgstr", "msgstr[0]"):
            field = "msgstr" if keyword == "msgstr[0]" else keyword
            entry[field] = _unquote(rest, path, number)
        elif keyword.startswith("msgstr["):
            field = None  # other plural forms
        elif line.startswith('"'):
            if field:
                entry[field] += _unquote(line, path, number)
        else:
            raise UserError(f"{path}, line {number}: unexpected {line[:40]!r}; the catalogue is "
                            "corrupt: fetch the data set again (--force)")
    if "msgstr" in entry:
        finish()
    return pairs


def read_mo(path):
    """Translated messages of a compiled `.mo` file as `(msgid, msgstr)` pairs.

    Raises:
        UserError: the file is not a valid catalogue.
    """
    try:
        with open(path, "rb") as handle:
            catalog = gettext.GNUTranslations(handle)._catalog
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path} is not a readable .mo catalogue ({error}); fetch the data set "
                        "again (--force)") from None
    pairs = []
    for key, value in catalog.items():
        if isinstance(key, tuple):  # plural: (msgid, index)
            if key[1] != 0:
                continue
            key = key[0]
        if key and value:
            pairs.append((key.split("\x04")[-1], value))  # drop a msgctxt prefix
    return pairs


def clean_message(text):
    """One line of text without accelerators, markup-free whitespace, NFC."""
    text = unicodedata.normalize("NFC", text)
    parts, at = [], 0
    for entity in markup.ENTITY.finditer(text):  # "&hellip;", "&lt;": not accelerators
        parts.append(_strip_accelerators(text[at:entity.start()]))
        parts.append(markup.unescape_entities(entity.group()))
        at = entity.end()
    parts.append(_strip_accelerators(text[at:]))
    return " ".join("".join(parts).split())


def _strip_accelerators(text):
    def keep_capitals(match):
        start = match.start()
        if match.group() == "&" and 0 < start < len(text) - 1 and text[start - 1].isupper() \
                and text[start + 1].isupper():
            return "&"
        return ""
    return _ACCELERATOR.sub(keep_capitals, text)


def placeholders(text):
    """The sorted placeholders of a message (`%s`, `{name}`, ...)."""
    return sorted(PLACEHOLDER.findall(text))


def clean_pair(source, target):
    """`(english, french)` cleaned, or None when the pair should be dropped (see CATALOG_CLEANING)."""
    source, target = clean_message(source), clean_message(target)
    if not source or not target or len(source) > MAX_MESSAGE_CHARS:
        return None
    if not re.search(r"[^\W\d_]", source) or dedup_key(source) == dedup_key(target):
        return None
    if placeholders(source) != placeholders(target):
        return None
    return source, target


def split_catalog_pairs(pairs_by_package, split_of, late=()):
    """Cleans, de-duplicates and splits pairs by package.

    Packages are read train first, then validation, then test: a held-out pair
    whose English or French text a train package already has is dropped. `late`
    train packages are read last instead, so a pair they share with a held-out
    package is dropped from them and the held-out splits do not change.

    Args:
        pairs_by_package: `{package: [(english, french), ...]}` (raw pairs).
        split_of: `{package: split}`; packages not named are train.
        late: train packages read after the held-out ones.

    Returns:
        `(splits, stats)`: `splits[split]` is a list of row dicts
        `{"source", "target", "book": package}`; `stats` counts what was dropped.
    """
    stats = {"read": 0, "dropped_cleaning": 0, "dropped_duplicates": 0, "dropped_cross_split": 0}
    splits = {split: [] for split in SPLITS}
    seen_source, seen_target = {}, {}
    order = {split: i for i, split in enumerate(SPLITS)}
    def rank(package):
        return (len(SPLITS) if package in late else order[split_of.get(package, "train")],
                package)

    for package in sorted(pairs_by_package, key=rank):
        split = split_of.get(package, "train")
        for raw_source, raw_target in pairs_by_package[package]:
            stats["read"] += 1
            pair = clean_pair(raw_source, raw_target)
            if pair is None:
                stats["dropped_cleaning"] += 1
                continue
            source_key, target_key = dedup_key(pair[0]), dedup_key(pair[1])
            earlier = [seen_source.get(source_key), seen_target.get(target_key)]
            if any(s is not None and s != split for s in earlier):
                stats["dropped_cross_split"] += 1
                continue
            if earlier[0] == split:
                stats["dropped_duplicates"] += 1
                continue
            seen_source[source_key] = split
            seen_target.setdefault(target_key, split)
            splits[split].append({"source": pair[0], "target": pair[1], "book": package})
    return splits, stats
