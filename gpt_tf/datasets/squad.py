"""SQuAD v1.1 JSON: reading with validation, and writing.

The format (https://rajpurkar.github.io/SQuAD-explorer/):

    {"version": "1.1",
     "data": [{"title": str,
               "paragraphs": [{"context": str,
                               "qas": [{"id": str, "question": str,
                                        "answers": [{"text": str, "answer_start": int}]}]}]}]}

`answer_start` is a character offset into `context`, and
`context[answer_start:answer_start + len(text)] == text`.
"""

import dataclasses
import json

from gpt_tf.datasets.cache import atomic_write_text
from gpt_tf.datasets.textio import describe, read_text
from gpt_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Answer:
    """An answer span: its text and its character offset in the context."""

    text: str
    answer_start: int


@dataclasses.dataclass(frozen=True)
class QAExample:
    """One extractive question with its context and accepted answers.

    `answers` holds at least one span; SQuAD dev files list several (one per
    annotator, often the same span).
    """

    id: str
    title: str
    context: str
    question: str
    answers: tuple


class _Checker:
    """Turns structural problems into one `UserError` naming file and JSON path."""

    def __init__(self, path, owner):
        self.path = path
        self.owner = owner

    def fail(self, where, problem, qid=None):
        about = f" (question id {qid!r})" if qid is not None else ""
        raise UserError(
            f"{describe(self.path, self.owner)} is not valid SQuAD v1.1: at {where}{about}, {problem}; "
            "fix the file or regenerate it"
        )

    def field(self, obj, key, kind, where, qid=None):
        if not isinstance(obj, dict):
            self.fail(where, f"expected an object, got {type(obj).__name__}", qid)
        if key not in obj:
            self.fail(f"{where}.{key}", "the field is missing", qid)
        value = obj[key]
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            self.fail(
                f"{where}.{key}", f"expected {kind.__name__}, got {type(value).__name__}", qid
            )
        return value


def load_squad(path, check_spans=True, owner=None):
    """Reads a SQuAD v1.1 JSON file (e.g. the official `train-v1.1.json`).

    Args:
        path: the JSON file.
        check_spans: whether every answer must match its context slice exactly.
        owner: names the data set in error messages (None for user files).

    Returns:
        List of `QAExample`, in file order.

    Raises:
        UserError: unreadable file, invalid JSON, a missing or mistyped field
            (named by its JSON path and question id), an answer outside its
            context, an unanswerable (SQuAD v2.0) question, or no questions.
    """
    text = read_text(path, owner)
    try:
        root = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{describe(path, owner)} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); fix the file"
        ) from None
    check = _Checker(path, owner)
    articles = check.field(root, "data", list, "top level")
    examples = []
    for a, article in enumerate(articles):
        where_a = f"data[{a}]"
        paragraphs = check.field(article, "paragraphs", list, where_a)
        title = article.get("title", "")
        if not isinstance(title, str):
            check.fail(f"{where_a}.title", f"expected str, got {type(title).__name__}")
        for p, paragraph in enumerate(paragraphs):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = check.field(paragraph, "context", str, where_p)
            for q, qa in enumerate(check.field(paragraph, "qas", list, where_p)):
                where_q = f"{where_p}.qas[{q}]"
                qid = check.field(qa, "id", str, where_q)
                question = check.field(qa, "question", str, where_q, qid)
                if not question.strip():
                    check.fail(f"{where_q}.question", "the question is empty", qid)
                if qa.get("is_impossible"):
                    check.fail(
                        where_q,
                        "the question is unanswerable (SQuAD v2.0); only v1.1 is supported",
                        qid,
                    )
                answers = check.field(qa, "answers", list, where_q, qid)
                if not answers:
                    check.fail(f"{where_q}.answers", "there is no answer", qid)
                spans = []
                for n, answer in enumerate(answers):
                    where_n = f"{where_q}.answers[{n}]"
                    answer_text = check.field(answer, "text", str, where_n, qid)
                    start = check.field(answer, "answer_start", int, where_n, qid)
                    if not answer_text:
                        check.fail(f"{where_n}.text", "the answer is empty", qid)
                    if start < 0 or start + len(answer_text) > len(context):
                        check.fail(
                            f"{where_n}.answer_start", f"{start} lies outside the context", qid
                        )
                    if check_spans and context[start : start + len(answer_text)] != answer_text:
                        check.fail(
                            f"{where_n}",
                            f"the context at {start} reads {context[start : start + len(answer_text)]!r}, "
                            f"not the answer {answer_text!r}",
                            qid,
                        )
                    spans.append(Answer(answer_text, start))
                examples.append(QAExample(qid, title, context, question, tuple(spans)))
    if not examples:
        raise UserError(f"{describe(path, owner)} holds no questions; add some")
    return examples


def squad_json(examples):
    """Builds a SQuAD v1.1 document; consecutive examples sharing title and context share a paragraph.

    Args:
        examples: iterable of `QAExample`.

    Returns:
        A dict ready for `json.dump`.
    """
    data = []
    for example in examples:
        if not data or data[-1]["title"] != example.title:
            data.append({"title": example.title, "paragraphs": []})
        paragraphs = data[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != example.context:
            paragraphs.append({"context": example.context, "qas": []})
        paragraphs[-1]["qas"].append(
            {
                "id": example.id,
                "question": example.question,
                "answers": [
                    {"text": a.text, "answer_start": a.answer_start} for a in example.answers
                ],
            }
        )
    return {"version": "1.1", "data": data}


def write_squad(examples, path):
    """Writes examples as SQuAD v1.1 JSON (atomically).

    Args:
        examples: iterable of `QAExample`.
        path: destination file.
    """
    atomic_write_text(path, json.dumps(squad_json(examples), ensure_ascii=False) + "\n")
