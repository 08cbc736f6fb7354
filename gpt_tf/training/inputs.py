"""The datasets a run trains and validates on, built from its `data_split.json`.

A `kind: lm` split lists text sources (`gpt_tf.data.lm_dataset`); a `kind: tasks`
split lists fine-tuning specs (`gpt_tf.task_data.examples.task_dataset`, whose batches
carry weights that score only the answers).
"""

import os
import random

import tensorflow as tf

from gpt_tf import data as data_lib
from gpt_tf.errors import UserError
from gpt_tf.task_data.examples import task_dataset


def _builder(split):
    return task_dataset if split["kind"] == "tasks" else data_lib.lm_dataset


def distributed_train_iterator(strategy, split, tokenizer, config, resumed_from):
    """An iterator over the training batches of every replica, `resumed_from` steps in.

    Resuming is exact: each input pipeline skips the batches it consumed in
    the first `resumed_from` steps (the shuffle is seeded by `data.seed`).
    """
    tc = config.train

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(tc.batch_size)
        replicas_per_pipeline = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        dataset = _builder(split)(
            split["train"], tokenizer, config.model.sequence_length, per_replica, shuffle=True,
            shuffle_buffer=config.data.shuffle_buffer, seed=config.data.seed,
            input_context=input_context)
        return dataset.skip(resumed_from * tc.gradient_accumulation * replicas_per_pipeline)

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


# Validation reads its documents (text) or examples (tasks) in one seeded order, the same at
# every evaluation, so that the `train.eval_steps` batches it scores are a sample of the whole
# split. In file order they were its first files only: a mixture's first source (round 13's
# pretraining scored 20 batches of documentation out of a split of docs, news, reviews, ...).
VALIDATION_ORDER_SEED = 0


def validation_dataset(split, tokenizer, config):
    """The whole validation text as one finite dataset, its documents in the fixed sample order."""
    sources = list(split["validation"])
    random.Random(VALIDATION_ORDER_SEED).shuffle(sources)
    return data_lib.lm_dataset(sources, tokenizer, config.model.sequence_length,
                               config.train.batch_size, shuffle=False, repeat=False)


def validation_sets(split, tokenizer, config, warn):
    """`{task: dataset}` of a fine-tuning run's validation data, or `{"": dataset}`.

    One dataset per task, so `train.eval_steps` caps each task: a single
    dataset would spend the cap on the first task in file order. Each task's
    examples come in the fixed sample order (`VALIDATION_ORDER_SEED`).
    A task none of whose validation examples fits the window is left out
    (with a warning) unless it is the only one.
    """
    if split["kind"] != "tasks":
        return {"": validation_dataset(split, tokenizer, config)}
    by_task = {}
    for spec in split["validation"]:
        by_task.setdefault(spec["task"], []).append(spec)
    sets, problems = {}, {}
    for task, specs in by_task.items():
        try:
            sets[task] = task_dataset(specs, tokenizer, config.model.sequence_length,
                                      config.train.batch_size, shuffle=False, repeat=False,
                                      example_order_seed=VALIDATION_ORDER_SEED)
        except UserError as error:
            problems[task] = f"{task} validation data ({', '.join(_spec_names(specs))}): {error}"
    if not sets:
        raise UserError("; ".join(problems.values()))
    for message in problems.values():
        warn(message + "; validating without it")
    return sets


def _spec_names(specs):
    return [s.get("name") or os.path.basename(str(s["path"])) for s in specs]


def validation_text_size(split, tokenizer):
    """`(bytes, tokens)` of plain-text validation data, for bits per byte; `(0, 0)` for tasks."""
    if split["kind"] != "lm":  # bits per byte only means something for plain text
        return 0, 0
    return data_lib.count_bytes_and_tokens(split["validation"], tokenizer)


def with_weights(batch):
    """`(inputs, targets, weights)`: an unweighted batch scores every token."""
    if len(batch) == 3:
        return batch
    inputs, targets = batch
    return inputs, targets, tf.ones_like(targets, dtype=tf.float32)
