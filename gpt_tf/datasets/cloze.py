"""Cloze span questions from real prose (the Children's Book Test / CNN recipe), in SQuAD form.

Recipe: the text of a work is cut into sentences (per scene for plays, per
article for news). For every sentence that follows at least
`min_context_sentences` sentences of its segment, the preceding sentences (up
to `max_context_chars`) are the context, and the sentence itself becomes the
question with one name or number masked as `@placeholder`; the masked span must
occur in the context, and every occurrence there is an accepted answer with
its character offset. Names are capitalised words that the whole corpus never
writes in lower case and that occur capitalised in mid-sentence at least once,
so sentence-initial and verse-initial capitals are not taken for names.

The questions are template-made, not written by people.
"""

import collections
import re

from gpt_tf.datasets.splits import stable_hash
from gpt_tf.datasets.squad import Answer, QAExample

PLACEHOLDER = "@placeholder"

GENERATION_RECIPE = (
    "Template-made cloze questions (the Children's Book Test / CNN-Daily Mail recipe), not written by "
    "people. The text of each work is cut into sentences (per scene for plays, per article for news; "
    "speaker names, stage directions and headings removed). For each sentence preceded by at least "
    "{min_sentences} sentences of its segment, the preceding sentences (at most {max_chars} characters, "
    "at least {min_chars}) form the context; the sentence itself is the question, with one name or "
    "number masked as '@placeholder' (every occurrence in the sentence). The masked span must occur in "
    "the context; all its occurrences there are listed as answers with their character offsets. A name "
    "is a capitalised word that the corpus never writes in lower case and that occurs capitalised in "
    "mid-sentence at least once; a number is a run of digits. When a sentence offers several spans, "
    "one is chosen by a fixed hash of its position."
)

_WORD = re.compile(r"[A-Za-z]+")
# A capitalised word right after a lower-case letter, comma or semicolon and spaces on the same line.
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z,;])[ \t]+([A-Z][A-Za-z]+)\b")
_CAPITALISED_RUN = re.compile(r"[A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)*")
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?![\w])")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")
_SPEAKER = re.compile(r"^[A-Z][A-Za-z'\-]*(?: [A-Za-z][A-Za-z'\-]*){0,3}\.$")
_ACT = re.compile(r"^(ACT|Act)\b")
_HEADING = re.compile(r"^(ACT|Act|SCENE|Scene)\b|^[IVXLC]+\.?$|^\d+\.?$")
_BRACKETED = re.compile(r"\[[^\]]*\]", re.S)
# Honorifics are never masked on their own ("Mr" without the name is no answer).
_TITLES = {"Mr", "Mrs", "Ms", "Dr", "Messrs", "Sir", "St"}


def split_sentences(text):
    """Splits running text into sentences at `.`, `!`, `?` followed by a capital or digit.

    Args:
        text: one paragraph or speech, lines already joined.

    Returns:
        List of stripped, non-empty sentences.
    """
    text = re.sub(r"\s+", " ", text).strip()
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def play_segments(text):
    """Cuts a Shakespeare work into scenes of spoken sentences.

    Text before the first act heading (title, list of persons) is skipped;
    act and scene headings start a new segment; speaker lines, bracketed
    stage directions and all-capital title lines are removed. Poems (no act
    headings) are cut at numbered headings such as sonnet numbers.

    Args:
        text: the cleaned text of one work.

    Returns:
        List of segments, each a list of sentences.
    """
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
    if any(_ACT.match(b) for b in blocks):
        first = next(i for i, b in enumerate(blocks) if _ACT.match(b))
        blocks = blocks[first:]
    segments, current = [], []
    for block in blocks:
        if _HEADING.match(block.split("\n", 1)[0].strip()):
            if current:
                segments.append(current)
            current = []
            continue
        block = _BRACKETED.sub(" ", block)
        block = block.split("[", 1)[0]  # an unclosed stage direction runs to the end of the block
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if lines and _SPEAKER.match(lines[0]):
            lines = lines[1:]
        lines = [
            line
            for line in lines
            if not (line.isupper() or line.lower().startswith("by william shakespeare"))
        ]
        if lines:
            current.extend(split_sentences(" ".join(lines)))
    if current:
        segments.append(current)
    return segments


def article_segments(text):
    """Cuts a news article (title line, then paragraphs) into one segment of sentences, title dropped.

    Args:
        text: the cleaned article.

    Returns:
        A list holding one list of sentences (empty list if there is no body).
    """
    paragraphs = [p for p in text.split("\n")[1:] if p.strip()]
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    return [sentences] if sentences else []


def name_vocabulary(texts):
    """Finds the words that behave as names in a corpus.

    A name is a capitalised word (2+ letters) that never occurs in lower case
    and occurs capitalised after a lower-case word or comma on the same line
    (so not only at the start of sentences or verse lines).

    Args:
        texts: iterable of document texts.

    Returns:
        Set of name words.
    """
    lower, mid_capitalised = set(), set()
    for text in texts:
        lower.update(word for word in _WORD.findall(text) if word[0].islower())
        mid_capitalised.update(_MID_SENTENCE_CAPITAL.findall(text))
    return {word for word in mid_capitalised if word.lower() not in lower}


def candidate_spans(sentence, names):
    """Returns the maskable spans of a sentence: runs of name words, and numbers.

    Args:
        sentence: the question sentence.
        names: output of `name_vocabulary`.

    Returns:
        Distinct spans in order of first appearance.
    """
    spans = []
    for match in _CAPITALISED_RUN.finditer(sentence):
        run = []
        for word in match.group().split(" ") + [""]:
            if word in names:
                run.append(word)
            elif run:
                if not set(run) <= _TITLES:
                    spans.append(" ".join(run))
                run = []
    spans.extend(match.group() for match in _NUMBER.finditer(sentence))
    return list(dict.fromkeys(spans))


def _occurrences(span, text):
    pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(span) + r"(?![A-Za-z0-9])")
    return [match.start() for match in pattern.finditer(text)]


def _mask(span, sentence):
    return re.sub(r"(?<![A-Za-z0-9])" + re.escape(span) + r"(?![A-Za-z0-9])", PLACEHOLDER, sentence)


def cloze_examples(
    doc_id,
    title,
    segments,
    names,
    min_context_sentences=2,
    min_context_chars=150,
    max_context_chars=1200,
    min_question_words=4,
    max_question_words=60,
):
    """Builds cloze questions from one document's segments (see the module docstring).

    Args:
        doc_id: id of the document, used in question ids.
        title: the SQuAD article title (the work).
        segments: list of segments, each a list of sentences.
        names: output of `name_vocabulary` for the whole corpus.
        min_context_sentences: sentences a context needs at least.
        min_context_chars: characters a context needs at least.
        max_context_chars: characters a context may hold at most.
        min_question_words: shortest question sentence, in words.
        max_question_words: longest question sentence, in words.

    Returns:
        List of `QAExample`.
    """
    examples = []
    for s, sentences in enumerate(segments):
        for q in range(min_context_sentences, len(sentences)):
            sentence = sentences[q]
            if not min_question_words <= len(sentence.split()) <= max_question_words:
                continue
            start, length = q, -1
            while start > 0 and length + 1 + len(sentences[start - 1]) <= max_context_chars:
                start -= 1
                length += 1 + len(sentences[start])
            if q - start < min_context_sentences or length < min_context_chars:
                continue
            context = " ".join(sentences[start:q])
            spans = [
                span for span in candidate_spans(sentence, names) if _occurrences(span, context)
            ]
            if not spans:
                continue
            span = spans[stable_hash(f"{doc_id}:{s}:{q}") % len(spans)]
            answers = tuple(Answer(span, offset) for offset in _occurrences(span, context))
            examples.append(
                QAExample(
                    f"{doc_id}-{s:03d}-{q:04d}", title, context, _mask(span, sentence), answers
                )
            )
    return examples


def answer_type_counts(examples):
    """Counts answers that are numbers vs names."""
    counts = collections.Counter(
        "number" if _NUMBER.fullmatch(e.answers[0].text) else "name" for e in examples
    )
    return {"name": counts["name"], "number": counts["number"]}
