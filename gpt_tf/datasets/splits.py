"""Deterministic, leak-free splitting: duplicate keys, stable hashing, stratification."""

import collections
import hashlib
import re
import unicodedata

SPLITS = ("train", "validation", "test")

_URL = re.compile(r"https?://\S+|www\.\S+")
_SPACE = re.compile(r"\s+")


def dedup_key(text):
    """Returns the key under which two texts count as the same.

    NFKC-normalised, case-folded, URLs removed, whitespace collapsed: texts
    differing only in case, spacing or a shortened link are duplicates.

    Args:
        text: any text.

    Returns:
        The normalised key.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _URL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def stable_hash(text):
    """Returns a 64-bit integer hash of `text` that is the same on every run and machine."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def dedupe_labelled(items, key=dedup_key):
    """Drops repeated texts and texts that carry more than one label.

    Args:
        items: sequence of (text, label).
        key: maps a text to its duplicate key.

    Returns:
        (kept items in first-seen order, stats dict with "duplicates" and
        "conflicting_texts" (distinct keys dropped) and "conflicting_rows").
    """
    labels = collections.defaultdict(set)
    for text, label in items:
        labels[key(text)].add(label)
    conflicts = {k for k, found in labels.items() if len(found) > 1}
    kept, seen, duplicates, conflicting_rows = [], set(), 0, 0
    for text, label in items:
        k = key(text)
        if k in conflicts:
            conflicting_rows += 1
        elif k in seen:
            duplicates += 1
        else:
            seen.add(k)
            kept.append((text, label))
    return kept, {
        "duplicates": duplicates,
        "conflicting_texts": len(conflicts),
        "conflicting_rows": conflicting_rows,
    }


def split_sizes(count, fractions):
    """Returns how many of `count` items go to each split (rounded, summing to `count`).

    Args:
        count: number of items.
        fractions: dict split -> fraction, summing to 1; "train" takes the rest.
    """
    sizes = {
        name: int(round(count * fraction))
        for name, fraction in fractions.items()
        if name != "train"
    }
    sizes["train"] = count - sum(sizes.values())
    return sizes


def stratified_split(items, fractions, key=dedup_key):
    """Splits labelled items per label, in a fixed pseudo-random order.

    Items are ordered within each label by `stable_hash(key(text))`, so the
    assignment does not depend on file order or on the run; then the first
    share goes to test, the next to validation, the rest to train. Call
    `dedupe_labelled` first so no text lands in two splits.

    Args:
        items: sequence of (text, label) with distinct keys.
        fractions: dict with "validation" and "test" fractions (train gets the rest).
        key: maps a text to the string that is hashed.

    Returns:
        Dict split -> list of (text, label), each sorted by hash order.
    """
    by_label = collections.defaultdict(list)
    for text, label in items:
        by_label[label].append((text, label))
    result = {name: [] for name in SPLITS}
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda item: (stable_hash(key(item[0])), item[0]))
        sizes = split_sizes(len(group), fractions)
        start = 0
        for name in ("test", "validation", "train"):
            result[name].extend(group[start : start + sizes[name]])
            start += sizes[name]
    for name in SPLITS:
        result[name].sort(key=lambda item: (stable_hash(key(item[0])), item[0]))
    return result
