"""The table of tasks: every fact about a task that more than one module needs.

A new task is one `Task` entry here, plus the logic that is truly its own
(how its examples are built, how its answers are scored) in the module that
does that job. Read by `gpt_tf.config` (the scored tasks, `train.best_metric`),
`gpt_tf.task_data.formats` (names, prompt templates), `gpt_tf.tasks.finetune`
(data set kinds, export signatures), `gpt_tf.evaluation.report` (default data,
metrics, titles), the clients (task cards from an export's signatures) and
the task helpers. A leaf module (standard library only).

| task        | prompt                                                 | export signature  |
|-------------|--------------------------------------------------------|-------------------|
| `translate` | `<|source|>{source}<|target|>`                         | `translate`       |
| `qa`        | `<|context|>{context}<|question|>{question}<|answer|>` | `answer`          |
| `sentiment` | `<|text|>{text}<|label|>`                              | `classify`        |
| `generate`  | (empty)                                                | (the model's own) |
"""

import dataclasses

# The prompt separators (SentencePiece user-defined symbols).
SOURCE, TARGET = "<|source|>", "<|target|>"
CONTEXT, QUESTION, ANSWER = "<|context|>", "<|question|>", "<|answer|>"
TEXT, LABEL = "<|text|>", "<|label|>"

# Data set kinds (`gpt_tf.datasets.registry`).
LANGUAGE_MODELING = "language-modeling"
TRANSLATION = "translation"
SENTIMENT_DATA = "sentiment"
QUESTION_ANSWERING = "question-answering"


@dataclasses.dataclass(frozen=True)
class Export:
    """How a tuned task appears in a SavedModel (`gpt_tf.export.tasks` entry).

    Attributes:
        kind: "generate" (text out) or "classify" (label scores out).
        signature: the signature's name.
        inputs: the template's fields, the signature's string inputs.
        output: a generate signature's output name (None for classify).
        max_new_tokens: a generate signature's cap before the window's half; the
            task card's `max_answer_tokens` wins when `card_cap` is set.
    """

    kind: str
    signature: str
    inputs: tuple
    output: str = None
    max_new_tokens: int = None
    card_cap: bool = False


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How `gpt-tf evaluate` measures the task (`gpt_tf.evaluation.report`).

    Attributes:
        name: the task's name in reports and on the command line.
        title: its section title.
        data: the default (in-domain) data set.
        out_of_domain: evaluation-only data sets from other domains.
        limit: examples (language modelling: tokens) when no limit is given.
        metrics: the reported metrics, the first is the headline.
    """

    name: str
    title: str
    data: str
    out_of_domain: tuple
    limit: int
    metrics: tuple


@dataclasses.dataclass(frozen=True)
class Task:
    """One fine-tuning task.

    Attributes:
        name: as in `--task NAME=DATA` and the task card.
        data_kind: the data set kind its data sets have (registry).
        template: the prompt, `str.format`ted with the task's fields.
        answers_scored: validation scores its answers (`NAME_accuracy`).
        labelled: its answers are labels from a closed set (kept in the card).
        export: its signature in an export, or None.
        evaluation: how `gpt-tf evaluate` measures it, or None.
    """

    name: str
    data_kind: str
    template: str
    answers_scored: bool
    labelled: bool = False
    export: Export = None
    evaluation: Evaluation = None


TASKS = (
    Task("translate", TRANSLATION, SOURCE + "{source}" + TARGET, answers_scored=True,
         export=Export("generate", "translate", ("source",), "translation", 128),
         evaluation=Evaluation("translate", "Translation", "mt-en-fr", ("mt-en-fr-software",),
                               200, ("bleu", "chrf"))),
    Task("qa", QUESTION_ANSWERING, CONTEXT + "{context}" + QUESTION + "{question}" + ANSWER,
         answers_scored=True,
         export=Export("generate", "answer", ("context", "question"), "answer", 32,
                       card_cap=True),
         evaluation=Evaluation("qa", "Question answering", "qa-en", ("qa-en-wiki",), 200,
                               ("exact_match", "f1"))),
    Task("sentiment", SENTIMENT_DATA, TEXT + "{text}" + LABEL, answers_scored=True,
         labelled=True, export=Export("classify", "classify", ("text",)),
         evaluation=Evaluation("sentiment", "Sentiment", "sentiment-en",
                               ("sentiment-en-reviews", "sentiment-en-products"), 400,
                               ("accuracy", "macro_f1"))),
    Task("generate", LANGUAGE_MODELING, "", answers_scored=False,
         evaluation=Evaluation("lm", "Language modelling", "lm-en", ("lm-en-wiki",), 20000,
                               ("perplexity", "bits_per_byte"))),
)
BY_NAME = {task.name: task for task in TASKS}
NAMES = tuple(BY_NAME)
TRANSLATE, QA, SENTIMENT, GENERATE = NAMES
# Fine-tuning tasks whose validation answers are scored.
ANSWER_TASKS = tuple(task.name for task in TASKS if task.answers_scored)
# `gpt-tf evaluate`: the language model first (every model has one), then the answer tasks.
EVALUATIONS = tuple(task.evaluation for task in sorted(TASKS, key=lambda t: t.answers_scored)
                    if task.evaluation)


def task(name):
    """The `Task` called `name` (KeyError if there is none)."""
    return BY_NAME[name]


def labelled_task():
    """The task whose answers are labels (what a `classify` signature serves)."""
    return next(task for task in TASKS if task.labelled)


def task_of_export(entry):
    """The `Task` an export's task entry (`{"kind", "name", ...}`) serves, or None.

    Any classify signature serves the labelled task; another, the task whose
    signature has its name.
    """
    if entry.get("kind") == "classify":
        return labelled_task()
    for candidate in TASKS:
        if candidate.export and candidate.export.kind != "classify" \
                and candidate.export.signature == entry.get("name"):
            return candidate
    return None
