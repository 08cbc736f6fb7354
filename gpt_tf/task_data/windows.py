"""Cutting long texts into windows that fit a token budget.

Used the same way when building fine-tuning data and at inference, so the
model sees the same kind of windows in both: QA contexts in overlapping
windows (a *doc stride*, as in the BERT SQuAD recipe), long sentiment texts
and translation inputs in consecutive chunks.

Windows are cut between words (a word is a run of non-space characters with
the whitespace before it, SentencePiece's `▁word` convention) and measured
with a token-counting function, so any backend can cut them: a local
SentencePiece model, or a served model's `tokenize` signature.
"""

import re

_WORD = re.compile(r"\s*\S+")


def word_spans(text):
    """`[(start, end)]` character spans of the words of `text` (whitespace excluded)."""
    spans = []
    for match in _WORD.finditer(text):
        start = match.start() + (len(match.group()) - len(match.group().lstrip()))
        spans.append((start, match.end()))
    return spans


def _split_long_words(text, spans, counts, budget):
    """Splits words longer than `budget` tokens into pieces of `budget // 4` characters.

    A character is at most 4 UTF-8 bytes, hence at most 4 byte-fallback tokens,
    so such a piece always fits.
    """
    out_spans, out_counts = [], []
    width = max(1, budget // 4)
    for (start, end), count in zip(spans, counts):
        if count <= budget:
            out_spans.append((start, end))
            out_counts.append(count)
            continue
        for piece in range(start, end, width):
            out_spans.append((piece, min(end, piece + width)))
            out_counts.append(None)
    return out_spans, out_counts


def sliding_windows(counts, budget, stride):
    """Index ranges `[(i, j)]` of consecutive items whose counts sum to <= budget.

    Each window takes as many items as fit; the next one starts at the first
    item at least `stride` tokens after the current start (so windows overlap
    by about `budget - stride` tokens) and the last window ends at the last item.
    With `stride >= budget` the windows are consecutive chunks.

    Args:
        counts: tokens per item (each <= budget).
        budget: tokens per window.
        stride: tokens between window starts (>= 1).
    """
    n = len(counts)
    windows, start = [], 0
    while start < n:
        total, end = 0, start
        while end < n and (end == start or total + counts[end] <= budget):
            total += counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            break
        advanced, nxt = 0, start
        while nxt < end and advanced < stride:
            advanced += counts[nxt]
            nxt += 1
        start = max(nxt, start + 1)
    return windows


def text_windows(text, count_tokens, budget, stride=None):
    """Character spans of `text` cut into windows of at most `budget` tokens.

    Args:
        text: the text.
        count_tokens: `fn(list of str) -> list of int`, tokens per string.
        budget: tokens allowed per window (>= 4).
        stride: tokens between window starts; None: consecutive chunks.

    Returns:
        `[(start, end)]` character spans, in order; one span covering the
        text (stripped) if it fits. An empty or blank text gives `[]`.
    """
    budget = max(4, int(budget))
    stride = budget if stride is None else max(1, int(stride))
    spans = word_spans(text)
    if not spans:
        return []
    whole = (spans[0][0], spans[-1][1])
    if count_tokens([text[whole[0]:whole[1]]])[0] <= budget:
        return [whole]
    # The whitespace before a word is counted with it (as in running text).
    previous_end = [0] + [end for _, end in spans[:-1]]
    counts = count_tokens([text[p:e] for p, (_, e) in zip(previous_end, spans)])
    spans, counts = _split_long_words(text, spans, counts, budget)
    missing = [i for i, c in enumerate(counts) if c is None]
    if missing:
        for i, c in zip(missing, count_tokens([text[slice(*spans[i])] for i in missing])):
            counts[i] = c
    # Word counts estimate the joined text's count: check, and cut again with
    # a smaller estimate budget if any window came out too long.
    effective = budget
    for _ in range(6):
        step = max(1, stride * effective // budget)
        windows = [list(w) for w in sliding_windows(counts, effective, step)]
        actual = count_tokens([text[spans[i][0]:spans[j - 1][1]] for i, j in windows])
        worst = max(actual)
        if worst <= budget:
            break
        effective = max(4, min(effective - 1, int(effective * budget / worst)))
    else:
        # Still over: drop trailing words (never happens with SentencePiece in practice).
        for k, n in enumerate(actual):
            while n > budget and windows[k][1] - windows[k][0] > 1:
                windows[k][1] -= 1
                n = count_tokens([text[spans[windows[k][0]][0]:spans[windows[k][1] - 1][1]]])[0]
    return [(spans[i][0], spans[j - 1][1]) for i, j in windows]
