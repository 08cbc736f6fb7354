"""Fine-tuning runs: a run directory that starts from a pretrained run's weights.

`prepare_finetune_run` writes (atomically, like `prepare_run`):

    config.json        the base run's config + overrides (train.*, data.*, model.dropout)
    tokenizer.model    copied from the base run (the vocabulary must not change)
    tokenizer.json
    data_split.json    {"kind": "tasks", "train": [specs], "validation": [specs]}
    init_from.json     {"run_dir": BASE}: `train` copies the base weights at step 0
    task_card.json     what the model was tuned for (tasks, data, language pair,
                       sentiment labels, QA window settings); the apps read it
    export_tasks.json  task signatures for `gpt-tf export savedmodel`
                       (`translate`, `answer`, `classify` + `classify_text`)

Then `gpt_tf.training.train(run_dir)` trains it like any run (resume,
strategies, LoRA via `train.lora_rank`).
"""

import json
import os

from gpt_tf import task_table
from gpt_tf.config import apply_overrides
from gpt_tf.errors import UserError
from gpt_tf.task_card import TASK_CARD, read_task_card, write_task_card  # noqa: F401  (re-exported)
from gpt_tf.task_data import formats
from gpt_tf.task_data.examples import (
    DEFAULT_DOC_STRIDE,
    DEFAULT_MAX_ANSWER_TOKENS,
    check_spec,
    load_records,
)
from gpt_tf.textfiles import atomic_directory

# Read by `gpt_tf.export.tasks.run_dir_tasks` (its TASKS_FILE).
EXPORT_TASKS_FILE = "export_tasks.json"
CARD_FORMAT_VERSION = 1
DEFAULT_HOLDOUT = 0.1



def parse_task_arg(text, flag="--task"):
    """`"translate=mt-en-fr"` -> `("translate", "mt-en-fr")`."""
    if "=" not in text:
        raise UserError(f"{flag} '{text}' must look like TASK=DATA (e.g. translate=mt-en-fr, "
                        f"sentiment=my_reviews.csv); tasks: {', '.join(formats.TASKS)}")
    task, source = text.split("=", 1)
    task, source = task.strip(), source.strip()
    formats.check_task(task)
    if not source:
        raise UserError(f"{flag} '{text}': name a data set or a file after '='")
    return task, source


def _normalise_tasks(tasks):
    items = _pairs(tasks, "--task")
    if not items:
        raise UserError("give at least one task, e.g. --task translate=mt-en-fr")
    seen = set()
    for task, _ in items:
        if task in seen:
            raise UserError(f"task '{task}' is given twice; a model learns one data source per "
                            "task (the prompt format has no room for a second one)")
        seen.add(task)
    return items


def _pairs(tasks, flag):
    if isinstance(tasks, dict):
        items = list(tasks.items())
    else:
        items = [parse_task_arg(t, flag) if isinstance(t, str) else tuple(t) for t in tasks]
    for task, _ in items:
        formats.check_task(task)
    return items


def _validation_sources(validation, tasks):
    """`{task: source}` of `--validation` values, each for a task being fine-tuned."""
    chosen = {}
    for task, source in _pairs(validation or [], "--validation"):
        if task in chosen:
            raise UserError(f"--validation {task}=... is given twice; give one file or data set "
                            "per task")
        if task not in tasks:
            raise UserError(f"--validation {task}={source}: there is no --task {task}; add "
                            f"--task {task}=DATA or drop this --validation")
        chosen[task] = source
    return chosen


def _locate(task, source, what, cache_dir=None):
    """`("file", path)` or `("set", name, {split: path})` for `task` data named by `source`."""
    from gpt_tf import datasets
    from gpt_tf.datasets import registry

    if os.path.exists(source):
        path = os.path.abspath(source)
        if os.path.isdir(path) and task != task_table.GENERATE:
            raise UserError(f"{what}: '{source}' is a folder; {task} data is one file (see "
                            "docs/DATASETS.md, 'Bringing your own data')")
        return "file", path, None
    try:
        spec = registry.get_spec(source)
    except UserError:
        raise UserError(f"{what}: '{source}' is neither a file nor a data set; data sets: "
                        f"{', '.join(registry.list_names())}") from None
    registry.check_trainable(source, what)
    if spec.task != task_table.task(task).data_kind:
        raise UserError(f"{what}: data set '{source}' is for {spec.task}, not {task}")
    if task == task_table.GENERATE:
        files = datasets.lm_split_files(source, cache_dir)
        return "set", source, {"train": files["train"], "validation": files["validation"]}
    return "set", source, datasets.split_paths(source, cache_dir)


def resolve_validation(task, source, train_spec, labels=None, cache_dir=None):
    """The validation spec of `task` from `source`: a user file (used whole) or a
    prepared data set (its validation split).

    Args:
        train_spec: the task's training spec (a file given for both is refused).
        labels: the sentiment labels of the training data (validation may not add any).
    """
    extra = {k: train_spec[k] for k in ("doc_stride", "max_answer_tokens") if k in train_spec}
    what = f"--validation {task}={source}"
    kind, located, paths = _locate(task, source, what, cache_dir)
    if kind == "file":
        if located == train_spec["path"]:
            raise UserError(f"{what}: that is the training file too; give a separate file, "
                            "or leave --validation out to hold out a share of it (--holdout)")
        spec = {"task": task, "path": located, "select": "all", **extra}
    else:
        if not paths.get("validation"):
            raise UserError(f"{what}: data set '{source}' has no validation split")
        spec = {"task": task, "name": located, "path": paths["validation"], **extra}
    records = load_records(check_spec([spec])[0])
    if not records:
        raise UserError(f"{what}: it holds no {task} examples")
    if task_table.task(task).labelled and labels is not None:
        unknown = sorted({r.label for r in records} - set(labels))
        if unknown:
            raise UserError(f"{what}: labels {unknown} are not in the training data "
                            f"({sorted(labels)}); remove those examples or add them to training")
    return spec


def resolve_task(task, source, holdout_fraction=DEFAULT_HOLDOUT, cache_dir=None, weight=1.0):
    """Train and validation specs (and card info) for one task and its data.

    Args:
        task: `translate`, `qa`, `sentiment` or `generate`.
        source: a prepared data set name (`mt-en-fr`, `qa-en`, `sentiment-en`,
            `lm-en`, ...) or a user file (TSV/JSONL pairs, SQuAD JSON,
            JSONL/CSV sentiment, text files or a folder for `generate`).
        holdout_fraction: share of a user file held out for validation.
        cache_dir: data set cache (default `~/.cache/gpt_tf`).
        weight: copies of each training example per epoch.

    Returns:
        `(train_spec, validation_spec_or_None, card_entry)`.
    """
    extra = {}
    if task == task_table.QA:
        extra = {"doc_stride": DEFAULT_DOC_STRIDE, "max_answer_tokens": DEFAULT_MAX_ANSWER_TOKENS}
    card = {"data": source, **extra}
    kind, located, paths = _locate(task, source, f"--task {task}={source}", cache_dir)
    if kind == "file":
        base = {"task": task, "path": located, "holdout_fraction": holdout_fraction, **extra}
        train = {**base, "select": "train", "weight": weight}
        validation = {**base, "select": "validation"} if holdout_fraction > 0 else None
        card["source_language"] = card["target_language"] = None
    else:
        base = {"task": task, "name": located, **extra}
        train = {**base, "path": paths["train"], "weight": weight}
        validation = {**base, "path": paths["validation"]} if paths.get("validation") else None
        if task == task_table.TRANSLATE:
            from gpt_tf.datasets import registry

            card["source_language"], card["target_language"] = (
                registry.translation_languages(source) or (None, None))
    if task_table.task(task).labelled:
        records = load_records(check_spec([train])[0])
        card["labels"] = sorted({r.label for r in records})
        if len(card["labels"]) < 2:
            raise UserError(f"--task {task}={source}: the data has one label "
                            f"({card['labels']}); a classifier needs two or more")
    else:
        load_records(check_spec([train])[0])  # fail now, not at step 0 of training
    return train, validation, card


def export_task_dicts(card, sequence_length):
    """`export_tasks.json` entries (`gpt_tf.export.tasks` format) for the tuned tasks."""
    limit = max(1, sequence_length // 2)
    out = []
    for task in task_table.TASKS:
        spec, entry = task.export, card["tasks"].get(task.name)
        if spec is None or entry is None:
            continue
        if spec.kind == "classify":
            out.append({"kind": "classify", "name": spec.signature, "input": spec.inputs[0],
                        "template": task.template, "labels": list(entry["labels"])})
            continue
        cap = entry.get("max_answer_tokens", spec.max_new_tokens) if spec.card_cap \
            else spec.max_new_tokens
        out.append({"kind": "generate", "name": spec.signature, "inputs": list(spec.inputs),
                    "template": task.template, "output": spec.output,
                    "max_new_tokens": min(cap, limit)})
    return out


def _override_items(overrides):
    """`{key: value}` of `"key=value"` strings or a dict (values as given)."""
    if isinstance(overrides, dict):
        return dict(overrides)
    items = {}
    for text in overrides:
        key, _, value = (text[2:] if text.startswith("--") else text).partition("=")
        items[key] = value
    return items


def _check_overrides(overrides):
    for key in _override_items(overrides):
        if key.startswith("model.") and key != "model.dropout":
            raise UserError(f"override '{key}' would change the base model's shape; fine-tuning "
                            "keeps the base model (only model.dropout, data.* and train.* may "
                            "change)")


def keep_floor_ratio(base_train, overrides):
    """`overrides`, plus a `train.min_learning_rate` scaled with a new `train.learning_rate`.

    A fine-tuning run inherits the base run's schedule. Overriding only the peak
    learning rate would keep the base run's floor, which is often as high as
    the new peak (a constant rate) or higher (an invalid config). Unless the
    floor is overridden too, it keeps the base run's floor-to-peak ratio, e.g.
    a base of 2e-3 -> 1e-4 fine-tuned at 1e-4 decays to 5e-6.
    """
    items = _override_items(overrides)
    if "train.learning_rate" not in items or "train.min_learning_rate" in items:
        return overrides
    try:
        peak = float(items["train.learning_rate"])
    except (TypeError, ValueError):
        return overrides  # apply_overrides names the bad value
    if base_train.learning_rate <= 0 or peak < 0:
        return overrides
    floor = float(f"{base_train.min_learning_rate * peak / base_train.learning_rate:.6g}")
    if isinstance(overrides, dict):
        return {**overrides, "train.min_learning_rate": floor}
    return [*overrides, f"train.min_learning_rate={floor!r}"]


def prepare_finetune_run(run_dir, base_run_dir, tasks, overrides=None,
                         holdout_fraction=DEFAULT_HOLDOUT, weights=None, cache_dir=None,
                         require_trained_base=True, validation=None):
    """Creates a fine-tuning run directory from a pretrained run.

    Args:
        run_dir: the new run directory (must not exist).
        base_run_dir: a trained run (its weights, config and tokenizer are used).
        tasks: `{"translate": "mt-en-fr", ...}`, or a list of `(task, data)`
            pairs or `"task=data"` strings; data is a prepared data set name or
            a user file.
        overrides: `train.*`, `data.*` or `model.dropout` overrides
            (strings `"train.steps=500"` or a dict), e.g. `train.lora_rank=8`.
            A new `train.learning_rate` without a `train.min_learning_rate`
            scales the base run's floor with it (`keep_floor_ratio`).
        holdout_fraction: share of user files held out for validation.
        weights: optional `{task: weight}` (copies of each example per epoch).
        cache_dir: data set cache.
        require_trained_base: refuse a base run without weights (False when
            both runs are trained elsewhere, see `gpt_tf.portable`).
        validation: optional `{task: data}`, or `"task=data"` strings: that
            task's validation data (a file, used whole, or a data set's
            validation split) instead of its default (a user file's hold-out,
            which then trains whole, or the data set's own validation split).

    Returns:
        The `RunConfig` written.
    """
    from gpt_tf.tokenizer import load_tokenizer
    from gpt_tf.training import CONFIG_FILE, INIT_FILE, SPLIT_FILE, load_run_config

    items = _normalise_tasks(tasks)
    base_config = load_run_config(base_run_dir)
    if require_trained_base and not (os.path.isfile(os.path.join(base_run_dir, "model.keras"))
            or os.path.isdir(os.path.join(base_run_dir, "checkpoints"))):
        raise UserError(f"base run '{base_run_dir}' has no trained model yet; train it first")
    overrides = overrides or []
    _check_overrides(overrides)
    overrides = keep_floor_ratio(base_config.train, overrides)
    config = apply_overrides(base_config, overrides) if overrides else base_config
    if not 0.0 <= holdout_fraction < 1.0:
        raise UserError(f"holdout fraction must be in [0, 1), got {holdout_fraction}")
    weights = weights or {}
    chosen = _validation_sources(validation, {task for task, _ in items})
    train_specs, validation_specs, card_tasks = [], [], {}
    for task, source in items:
        train, held_out, entry = resolve_task(
            task, source, 0.0 if task in chosen else holdout_fraction, cache_dir,
            float(weights.get(task, 1.0)))
        if task in chosen:
            held_out = resolve_validation(task, chosen[task], train, entry.get("labels"),
                                          cache_dir)
            entry["validation_data"] = chosen[task]
        train_specs.append(train)
        if held_out:
            validation_specs.append({**held_out, "weight": 1.0})
        card_tasks[task] = entry
    tokenizer = load_tokenizer(base_run_dir)
    card = {"format_version": CARD_FORMAT_VERSION, "base_run": os.path.abspath(base_run_dir),
            "sequence_length": config.model.sequence_length, "tasks": card_tasks,
            "prompt_formats": {t: formats.EXPORT_TEMPLATES.get(t, "{text}") for t in card_tasks}}
    with atomic_directory(run_dir) as tmp:
        tokenizer.save(tmp)
        with open(os.path.join(tmp, CONFIG_FILE), "w") as handle:
            handle.write(config.to_json())
        with open(os.path.join(tmp, SPLIT_FILE), "w") as handle:
            json.dump({"kind": "tasks", "train": train_specs, "validation": validation_specs},
                      handle, indent=2)
        with open(os.path.join(tmp, INIT_FILE), "w") as handle:
            json.dump({"run_dir": os.path.abspath(base_run_dir)}, handle, indent=2)
        write_task_card(tmp, card)
        export_tasks = export_task_dicts(card, config.model.sequence_length)
        if export_tasks:
            with open(os.path.join(tmp, EXPORT_TASKS_FILE), "w") as handle:
                json.dump({"tasks": export_tasks}, handle, indent=2)
    return config
