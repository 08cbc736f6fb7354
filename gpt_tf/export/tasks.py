"""Task signatures: named, string-in/string-out entry points for task models.

A fine-tuned task model is served with its own signatures beside the generic
ones. Two kinds cover the apps:

- `GenerationTask` (translate, answer): named string inputs are put into a
  prompt template, the model continues it greedily, the completion is the
  output. E.g. `translate(source) -> translation`.
- `ClassificationTask` (sentiment): the template is filled, each label's text
  is scored as a continuation, and the label probabilities come out. It is
  exported twice: `NAME_text` (predict signature over raw strings) and `NAME`
  (a TF Serving *Classify* signature over serialized `tf.Example`s, input
  `inputs`, outputs `classes`/`scores`, so `:classify` works).

Templates use `{field}` placeholders and the tokenizer's separator symbols,
which are matched literally in-graph: `"<|source|>{source}<|target|>"`.

Tasks can be given to `export_saved_model(tasks=...)` or described in JSON
(`load_tasks`): a run directory's `export_tasks.json` is picked up by
`gpt-tf export savedmodel` automatically.
"""

import dataclasses
import json
import os
import string

from gpt_tf.errors import UserError

TASKS_FILE = "export_tasks.json"
_RESERVED = {"serving_default", "generate", "generate_ids", "score", "tokenize", "detokenize",
             "logits", "prefill", "decode"}


def _template_fields(template):
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise UserError(f"task template {template!r} is malformed ({error}); use {{field}} "
                        "placeholders and double braces for literal braces") from None
    fields = [name for _, name, spec, conv in parsed if name is not None]
    for _, name, spec, conv in parsed:
        if name is not None and (not name.isidentifier() or spec or conv):
            raise UserError(f"task template {template!r}: placeholder {{{name}}} must be a "
                            "plain field name like {source}")
    return parsed, fields


def _check_name(name, what="task name"):
    if not isinstance(name, str) or not name.isidentifier():
        raise UserError(f"{what} {name!r} must be an identifier (letters, digits, underscore)")
    if name in _RESERVED:
        raise UserError(f"{what} '{name}' collides with a built-in signature; choose another")


@dataclasses.dataclass(frozen=True)
class GenerationTask:
    """Template in, greedy completion out.

    Args:
        name: signature name (e.g. `translate`).
        inputs: input field names, all used in `template`.
        template: prompt with `{field}` placeholders.
        output: output tensor name (e.g. `translation`).
        max_new_tokens: tokens generated at most.
        stop: extra strings (single tokens, e.g. a separator) that end the completion,
            besides end-of-text.
    """

    name: str
    inputs: tuple
    template: str
    output: str = "text"
    max_new_tokens: int = 64
    stop: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "stop", tuple(self.stop))
        _check_name(self.name)
        _check_name(self.output, "task output name")
        _, fields = _template_fields(self.template)
        for field in self.inputs:
            _check_name(field, "task input name")
        if set(fields) != set(self.inputs):
            raise UserError(f"task '{self.name}': template fields {sorted(set(fields))} must be "
                            f"exactly the inputs {sorted(self.inputs)}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise UserError(f"task '{self.name}': max_new_tokens must be a positive integer")

    @property
    def signature_names(self):
        return (self.name,)


@dataclasses.dataclass(frozen=True)
class ClassificationTask:
    """Template in, label probabilities out (predict and TF Serving Classify).

    Args:
        name: Classify signature name (e.g. `classify`); the predict form is
            `NAME_text`.
        input: the text field name (also the `tf.Example` feature key).
        template: prompt with the `{input}` placeholder.
        labels: class names, in output order.
        label_texts: the continuation scored for each label (default: the
            label names).
    """

    name: str
    input: str
    template: str
    labels: tuple
    label_texts: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "label_texts", tuple(self.label_texts or self.labels))
        _check_name(self.name)
        _check_name(self.name + "_text")
        _check_name(self.input, "task input name")
        _, fields = _template_fields(self.template)
        if fields != [self.input]:
            raise UserError(f"task '{self.name}': template must contain exactly one "
                            f"{{{self.input}}} placeholder")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise UserError(f"task '{self.name}': give at least two distinct labels")
        if len(self.label_texts) != len(self.labels) or not all(self.label_texts):
            raise UserError(f"task '{self.name}': label_texts must give one non-empty text per "
                            "label")

    @property
    def signature_names(self):
        return (self.name, self.name + "_text")


def task_from_dict(values):
    """Builds a task from a JSON object with `kind` = `generate` or `classify`."""
    if not isinstance(values, dict):
        raise UserError(f"a task must be a JSON object, got {type(values).__name__}")
    values = dict(values)
    kind = values.pop("kind", None)
    cls = {"generate": GenerationTask, "classify": ClassificationTask}.get(kind)
    if cls is None:
        raise UserError(f"task kind {kind!r} is unknown; use 'generate' or 'classify'")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown key(s) {unknown} in a '{kind}' task; valid: {sorted(names)}")
    try:
        return cls(**values)
    except TypeError as error:
        raise UserError(f"'{kind}' task is missing fields: {error}") from None


def load_tasks(path):
    """Reads `{"tasks": [...]}` (or a bare list) from a JSON file."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"task file '{path}' not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"task file '{path}' is not valid JSON: {error}") from None
    if isinstance(values, dict):
        values = values.get("tasks", [])
    if not isinstance(values, list):
        raise UserError(f"task file '{path}' must hold a list of tasks under 'tasks'")
    tasks = [task_from_dict(v) for v in values]
    check_unique(tasks)
    return tasks


def check_unique(tasks):
    seen = set()
    for task in tasks:
        for name in task.signature_names:
            if name in seen:
                raise UserError(f"two tasks define the signature '{name}'; rename one")
            seen.add(name)


def run_dir_tasks(run_dir):
    """Tasks declared by a run (`RUN_DIR/export_tasks.json`), or `[]`."""
    path = os.path.join(run_dir, TASKS_FILE)
    return load_tasks(path) if os.path.isfile(path) else []


def task_to_dict(task):
    kind = "generate" if isinstance(task, GenerationTask) else "classify"
    return {"kind": kind, **{k: list(v) if isinstance(v, tuple) else v
                             for k, v in dataclasses.asdict(task).items()}}


def template_pieces(template):
    """`[(literal, field_or_None), ...]` for building the prompt in-graph."""
    parsed, _ = _template_fields(template)
    return [(literal, name) for literal, name, _, _ in parsed]
