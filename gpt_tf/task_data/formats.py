"""Prompt formats of the fine-tuning tasks: the one place that spells them.

Every example is a *prompt* (never learned: weight 0) followed by an *answer*
(learned, closed by the end-of-text token). The separators are SentencePiece
user-defined symbols, so they are matched when they appear in a string and
`encode(prompt + answer) == encode(prompt) + encode(answer)` always holds at a
separator boundary (`tests/test_tasks_data.py` checks it).

The prompts are the templates of `gpt_tf.task_table` (the table of tasks);
the answers are a translation's `{target}`, a question's `{answer}`, a text's
`{label}`, and for `generate` the `{text}` itself (with an empty prompt).

In training and at inference the token sequence is `[end_of_text] + prompt
+ answer + [end_of_text]`.
"""

import dataclasses

from gpt_tf import task_table
from gpt_tf.errors import UserError
from gpt_tf.task_table import ANSWER, CONTEXT, LABEL, QUESTION, SOURCE, TARGET, TEXT
from gpt_tf.validation import check_text, check_texts

TASKS = task_table.NAMES
_ALL_SEPARATORS = ("<|sep|>", SOURCE, TARGET, CONTEXT, QUESTION, ANSWER, TEXT, LABEL,
                   "<|endoftext|>", "<|pad|>", "<|unk|>")

# Signature names and templates for `gpt_tf.export.tasks` (written to a
# fine-tuning run's `export_tasks.json`).
EXPORT_TEMPLATES = {task.name: task.template for task in task_table.TASKS if task.export}


@dataclasses.dataclass(frozen=True)
class TaskExample:
    """One prompt/answer pair, as text.

    Attributes:
        task: one of `TASKS`.
        prompt: the conditioning text (may be empty for `generate`).
        answer: the text the model learns to produce.
    """

    task: str
    prompt: str
    answer: str


def strip_separators(text):
    """Blanks separator symbols in user text, so it cannot fake a prompt.

    Each symbol becomes as many spaces as it has characters, so character
    offsets into the text (QA answer spans) stay valid.
    """
    for symbol in _ALL_SEPARATORS:
        if symbol in text:
            text = text.replace(symbol, " " * len(symbol))
    return text


def check_user_text(text, what):
    """One task input: a non-empty string of valid UTF-8 holding more than separators.

    Returns:
        `text` with its separator symbols blanked (`clean_user_text`).

    Raises:
        UserError: naming `what`.
    """
    check_text(text, what, allow_empty=False)
    return clean_user_text(text, what)


def check_user_texts(texts, what="texts"):
    """`check_user_text` of a string or a list of strings; returns the cleaned list."""
    return [clean_user_text(text, f"{what}[{number}]")
            for number, text in enumerate(check_texts(texts, what, allow_empty=False))]


def clean_user_text(text, what):
    """`text` with its separator symbols blanked (`strip_separators`).

    Raises:
        UserError: naming `what`, when only separators and spaces are left.
    """
    clean = strip_separators(text)
    if not clean.strip():
        raise UserError(f"{what} holds only task separator tokens such as <|text|> or "
                        "<|endoftext|> and no text; give some text")
    return clean


def separators_in(text):
    """The separator symbols that occur in `text`, in their fixed order."""
    return [symbol for symbol in _ALL_SEPARATORS if symbol in text]


def cut_at_separator(text):
    """`text` up to its first separator symbol (a generated answer ends there: what follows
    belongs to another task's format)."""
    cut = min((text.find(symbol) for symbol in separators_in(text)), default=len(text))
    return text[:cut]


def task_prompt(task, **fields):
    """The prompt of `task` (its template in `gpt_tf.task_table`) with the user's fields."""
    return task_table.task(task).template.format(
        **{key: strip_separators(value) for key, value in fields.items()})


def translate_prompt(source):
    return task_prompt(task_table.TRANSLATE, source=source)


def qa_prompt(context, question):
    return task_prompt(task_table.QA, context=context, question=question)


def sentiment_prompt(text):
    return task_prompt(task_table.SENTIMENT, text=text)


def check_task(task):
    if task not in TASKS:
        raise UserError(f"unknown task '{task}'; use one of {', '.join(TASKS)}")
    return task
