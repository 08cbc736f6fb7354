"""Translation over any client: `<|source|>{text}<|target|>` -> greedy continuation.

Texts longer than a third of the window are cut into consecutive chunks
between words, each translated on its own, and the translations joined.
A translation never carries another task's tokens: it ends at the first
separator symbol, and words starting with a sentiment label word of the
model ("negativement" for `negative`) are dropped unless the source has
that label word (`clean_translation`). A phrase that the decoder repeats
three or more times in a row ("de l'adresse de l'adresse de l'adresse ...",
a greedy loop) is kept once (`collapse_repeats`). Placeholders of the
source (`%s`, `%(name)s`, `{name}`, `${name}`, HTML tags, entities) come
through verbatim: a mangled copy in the translation ("%{name}" for
"${name}", "{kibles}" for "{kibibytes}") is replaced by the source's
placeholder it resembles most (`keep_placeholders`).
"""

import difflib
import re

from gpt_tf import task_table
from gpt_tf.errors import UserError
from gpt_tf.task_data import formats
from gpt_tf.task_data.windows import text_windows

DEFAULT_PAIR = ("en", "fr")
_BATCH = 16


def model_pair(client):
    """The `(source, target)` language keys the model was tuned for (default en->fr)."""
    card = client.task_card or {}
    tasks = card.get("tasks", {})
    if card and task_table.TRANSLATE not in tasks and not card.get("partial"):
        raise UserError(f"{client.describe()} was not fine-tuned for translation (its tasks: "
                        f"{', '.join(tasks) or 'none'}); fine-tune one with "
                        "`gpt-tf finetune --task translate=mt-en-fr`")
    info = tasks.get(task_table.TRANSLATE) or {}
    if info.get("source_language") and info.get("target_language"):
        return info["source_language"], info["target_language"]
    return DEFAULT_PAIR


def check_pair(client, source_language, target_language):
    """Raises `UserError` for a pair the data layer does not know or the model was not tuned for."""
    from gpt_tf.datasets import mt

    name = f"mt-{source_language}-{target_language}"
    try:
        known = mt.parse_pair_name(name)
    except UserError:
        known = None
    if known is None:
        raise UserError(f"unknown language pair {source_language}->{target_language}; "
                        f"languages: {', '.join(mt.BIBLE_VERSIONS)}")
    pair = model_pair(client)
    if (source_language, target_language) != tuple(pair):
        raise UserError(f"{client.describe()} translates {pair[0]}->{pair[1]}, not "
                        f"{source_language}->{target_language}; fine-tune a model with "
                        f"`gpt-tf finetune --task translate={name}`")


def label_words(client):
    """The sentiment label words of a multi-task model (lower case), else ()."""
    card = client.task_card or {}
    labelled = task_table.labelled_task().name
    labels = ((card.get("tasks") or {}).get(labelled) or {}).get("labels") or ()
    return tuple(label.lower() for label in labels if label.strip())


def _leaked_words(source, text, labels):
    source = source.lower()
    return [word for word in re.findall(r"\w+", text)
            if any(word.lower().startswith(label) and label not in source for label in labels)]


def label_leak(source, translation, client):
    """The label words and separators in `translation` that `source` does not hold."""
    separators = [s for s in formats.separators_in(translation) if s not in source]
    return separators + _leaked_words(source, translation, label_words(client))


def _run_length(words, start, size):
    """How many times `words[start:start+size]` repeats back to back from `start`."""
    unit = words[start:start + size]
    count = 1
    while words[start + count * size:start + (count + 1) * size] == unit:
        count += 1
    return count


def collapse_repeats(text, min_repeats=3, longest_unit=8):
    """`text` with each run of `min_repeats`+ back-to-back copies of a phrase of
    up to `longest_unit` words kept once, and a cut-off copy at the very end
    dropped. Text without such a run comes back unchanged (whitespace too)."""
    words = text.split()
    out, i, changed = [], 0, False
    while i < len(words):
        for size in range(1, min(longest_unit, (len(words) - i) // min_repeats) + 1):
            count = _run_length(words, i, size)
            if count >= min_repeats:
                unit = words[i:i + size]
                out.extend(unit)
                i += count * size
                tail = words[i:]
                if len(tail) < size and tail == unit[:len(tail)]:
                    i = len(words)
                changed = True
                break
        else:
            out.append(words[i])
            i += 1
    return " ".join(out) if changed else text


# Format fields and markup a translation must copy: `${name}`, `%(name)s`,
# printf fields, `{name}` / `{0}`, HTML tags and entities.
_PLACEHOLDER = re.compile(
    r"\$\{[^}\s]*\}|%\([^)\s]*\)[-#0+]*\d*(?:\.\d+)?[sdifrxXeEgGc]"
    r"|%[-#0+]*\d*(?:\.\d+)?[sdifrxXeEgGc]|\{[\w.\[\]]*\}|</?[a-zA-Z][^<>]*>|&\w+;")
# What the decoder writes for them: the same shapes, loosely (a wrong sigil, a
# missing closing brace, a changed name).
_PLACEHOLDER_LIKE = re.compile(
    r"[$%]\{[^}\s]*\}?|%\([^)\s]*\)?[a-zA-Z]?|%[-#0+]*\d*(?:\.\d+)?[a-zA-Z]"
    r"|\{[^{}\s]*\}|</?[a-zA-Z][^<>]*>|&\w+;")


def _family(placeholder):
    return placeholder[:2] if placeholder[:2] in ("${", "%{", "%(", "</") else placeholder[:1]


def keep_placeholders(source, text):
    """`text` with each placeholder-like span that is not one of `source`'s
    placeholders replaced by the unused source placeholder it resembles most
    (same opening or similar enough); other text is untouched."""
    wanted = _PLACEHOLDER.findall(source)
    if not wanted:
        return text
    unused = list(wanted)
    for found in _PLACEHOLDER.findall(text):
        if found in unused:
            unused.remove(found)

    def repair(match):
        found = match.group()
        if found in wanted or not unused:
            return found
        scores = [difflib.SequenceMatcher(None, found, p).ratio() for p in unused]
        # Near-ties go to the earliest: fields usually keep their order.
        best = next(i for i, score in enumerate(scores) if score >= max(scores) - 0.1)
        score = scores[best]
        same_kind = _family(found) == _family(unused[best]) or found[:1] in "$%"
        if score < 0.5 and not (same_kind and score >= 0.3):
            return found
        return unused.pop(best)

    return _PLACEHOLDER_LIKE.sub(repair, text)


def placeholders(text):
    """The format fields and markup of `text` (see `_PLACEHOLDER`), sorted."""
    return sorted(_PLACEHOLDER.findall(text))


def placeholders_differ(source, text):
    """Whether `text` lacks one of `source`'s placeholders or adds one: such a
    translation of a software message breaks the program that formats it."""
    return placeholders(source) != placeholders(text)


def clean_translation(source, text, labels):
    """A generated translation without separators, leaked label words or
    greedy repetition loops, with the source's placeholders (see the module doc)."""
    text = formats.cut_at_separator(text)
    leaked = set(_leaked_words(source, text, labels))
    if leaked:
        text = re.sub(r"\w+", lambda m: "" if m.group() in leaked else m.group(), text)
        text = re.sub(r"\s{2,}", " ", re.sub(r"\s+([.,;:!?])", r"\1", text))
    return keep_placeholders(source, collapse_repeats(text)).strip()


def source_budget(sequence_length):
    """Source tokens per chunk: a third of the window, the rest is for the translation."""
    return max(4, (sequence_length - 3) // 3)


def translate(client, texts, source_language="en", target_language="fr", max_new_tokens=None,
              stream=None):
    """Translates texts with a fine-tuned model.

    Args:
        client: a `gpt_tf.clients.Client`.
        texts: a string or a list of strings (none empty).
        source_language, target_language: language keys (`en`, `fr`, `es`,
            `de`, ... as in `mt-<src>-<tgt>`); the model's own pair is checked.
        max_new_tokens: tokens per chunk translation (default: as many as fit,
            up to the model's limit).
        stream: optional `fn(row, text)` for pieces of each translation
            (single text only; several texts get one call each).

    Returns:
        A list of translations (strings).
    """
    single = isinstance(texts, str)
    cleaned = formats.check_user_texts(texts)
    check_pair(client, source_language, target_language)
    L = client.sequence_length
    budget = source_budget(L)
    limit = client.max_new_tokens_limit
    # Not int(): a fraction is refused by `client.generate`, not cut.
    new_tokens = min(limit, L - 3 - budget) if max_new_tokens is None else max_new_tokens
    prompts, owners, chunks = [], [], []
    for row, clean in enumerate(cleaned):
        for start, end in text_windows(clean, client.count_tokens, budget):
            prompts.append(formats.translate_prompt(clean[start:end]))
            owners.append(row)
            chunks.append(clean[start:end])
    labels = label_words(client)
    pieces = [[] for _ in cleaned]
    streaming = stream if (stream is not None and single and len(prompts) == 1) else None
    for first in range(0, len(prompts), _BATCH):
        batch = prompts[first:first + _BATCH]
        completions = client.generate(batch, max_new_tokens=new_tokens, stream=streaming)
        for offset, completion in enumerate(completions):
            pieces[owners[first + offset]].append(
                clean_translation(chunks[first + offset], completion.text, labels))
    out = [" ".join(p for p in row if p) for row in pieces]
    if stream is not None and streaming is None:
        for row, text in enumerate(out):
            stream(row, text)
    return out
