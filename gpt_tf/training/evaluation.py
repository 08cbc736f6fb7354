"""Validation: mean next-token loss, answer accuracy, and the metrics a run records.

`evaluate` and `evaluate_totals` score any ids -> logits model on a dataset;
`Validator` scores a run's validation sets at a step and records the metrics
(TensorBoard, `history.jsonl`, an `eval` event); `check_best_metric` refuses a
`train.best_metric` the run cannot measure (`gpt_tf.config.selection_score` ranks
the metrics by it).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from gpt_tf import data as data_lib
from gpt_tf.config import ANSWER_TASKS, TASK_LOSS
from gpt_tf.errors import UserError
from gpt_tf.training.inputs import with_weights
from gpt_tf.training.run_dir import append_history


def evaluate(model, dataset, steps=0, jit_compile=True):
    """Mean next-token loss (nats) over `dataset`.

    Args:
        model: a `GPTCausalLM` (or any ids -> logits model).
        dataset: finite dataset of `(inputs, targets)` or
            `(inputs, targets, weights)` batches; weights (0/1) select the
            scored tokens (e.g. only answers when fine-tuning).
        steps: batches to use (0: all).
        jit_compile: compile the forward pass with XLA.

    Returns:
        `(mean_loss, tokens)`.
    """
    totals = evaluate_totals(model, dataset, steps, jit_compile)
    return mean_loss(totals["loss_sum"], totals["tokens"]), int(totals["tokens"])


def mean_loss(loss_sum, tokens):
    if tokens == 0:
        raise UserError("the validation data is shorter than one window; add validation text "
                        "or lower model.sequence_length")
    return loss_sum / tokens


def evaluate_totals(model, dataset, steps=0, jit_compile=True):
    """Sums over `dataset` (see `evaluate`): loss, tokens and answers.

    An answer is a run of consecutive weighted tokens (in a fine-tuning window:
    one example's answer and its closing end-of-text). It counts as correct when
    every one of its tokens is the model's top prediction given the true tokens
    before it (teacher forcing): for sentiment, the label is the greedy choice.

    Returns:
        `{"loss_sum", "tokens", "answers", "correct"}`.
    """
    forward = _eval_forward(model, jit_compile)
    totals = {"loss_sum": 0.0, "tokens": 0.0, "answers": 0, "correct": 0}
    for number, batch in enumerate(dataset):
        if steps and number >= steps:
            break
        inputs, targets, weights = with_weights(batch)
        loss_sum, tokens, hits = forward(inputs, targets, weights)
        totals["loss_sum"] += float(loss_sum)
        totals["tokens"] += float(tokens)
        answers, correct = count_answers(np.asarray(weights), hits.numpy())
        totals["answers"] += answers
        totals["correct"] += correct
    return totals


def count_answers(weights, hits):
    """`(answers, correct)` in a batch: runs of weighted positions per row, and
    how many of them have a hit at every position."""
    weighted = np.asarray(weights) > 0
    edge = np.zeros((weighted.shape[0], 1), bool)  # keeps runs from crossing rows
    weighted = np.concatenate([weighted, edge], axis=1).ravel()
    hits = np.concatenate([np.asarray(hits, bool), edge], axis=1).ravel()
    starts = weighted & ~np.concatenate([[False], weighted[:-1]])
    answers = int(starts.sum())
    if not answers:
        return 0, 0
    run = np.cumsum(starts) * weighted  # 1..answers on weighted positions, 0 elsewhere
    misses = np.bincount(run[weighted & ~hits], minlength=answers + 1)[1:]
    return answers, int((misses == 0).sum())


def _eval_forward(model, jit_compile):
    cached = getattr(model, "_gpt_tf_eval_forward", None)
    if cached is not None and cached[0] == jit_compile:
        return cached[1]

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(inputs, targets, weights):
        logits = model(inputs, training=False)
        nll = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=targets.dtype), targets)
        return tf.reduce_sum(nll * weights), tf.reduce_sum(weights), hits

    model._gpt_tf_eval_forward = (jit_compile, forward)
    return forward


def validation_metrics(totals, step, text_bytes=0, text_tokens=0):
    """The metrics of one evaluation from `{task: evaluate_totals(...)}` (task `""`: plain text).

    Returns:
        `{"step", "validation_loss", "validation_perplexity"}`, plus
        `validation_bits_per_byte` for plain text (`text_bytes` > 0) and, per
        task, `validation_TASK_loss` and (answer tasks) `validation_TASK_accuracy`.
    """
    loss = mean_loss(sum(t["loss_sum"] for t in totals.values()),
                     sum(t["tokens"] for t in totals.values()))
    metrics = {"step": step, "validation_loss": loss,
               "validation_perplexity": math.exp(min(loss, 50.0))}
    if text_bytes:
        metrics["validation_bits_per_byte"] = data_lib.bits_per_byte(loss, text_bytes, text_tokens)
    for task, t in totals.items():
        if task and t["tokens"]:
            metrics[f"validation_{task}_loss"] = t["loss_sum"] / t["tokens"]
        if task in ANSWER_TASKS and t["answers"]:
            metrics[f"validation_{task}_accuracy"] = t["correct"] / t["answers"]
    return metrics


def write_validation_summaries(writer, metrics, tasks):
    """The metrics of one evaluation as TensorBoard scalars (`loss`, `TASK/accuracy`, ...)."""
    with writer.as_default(step=metrics["step"]):
        tf.summary.scalar("loss", metrics["validation_loss"])
        tf.summary.scalar("perplexity", metrics["validation_perplexity"])
        if "validation_bits_per_byte" in metrics:
            tf.summary.scalar("bits_per_byte", metrics["validation_bits_per_byte"])
        for task in tasks:
            for name in ("loss", "accuracy"):
                value = metrics.get(f"validation_{task}_{name}")
                if task and value is not None:
                    tf.summary.scalar(f"{task}/{name}", value)


class Validator:
    """Scores a run's validation sets at a step and records the metrics.

    Args:
        model: the model being trained.
        sets: `{task: dataset}` (`inputs.validation_sets`).
        steps: batches per set (`train.eval_steps`; 0: all).
        jit_compile: compile the forward pass with XLA.
        text_size: `(bytes, tokens)` of plain-text validation data for bits per
            byte (`(0, 0)`: none).
        run_dir: where `history.jsonl` is appended, or None (not the chief).
        writer: the validation summary writer, or None (not the chief).
        emit: `fn(kind, info)`; gets `eval` with the metrics.
    """

    def __init__(self, model, sets, steps, jit_compile, text_size, run_dir, writer, emit):
        self.model = model
        self.sets = sets
        self.steps = steps
        self.jit_compile = jit_compile
        self.text_size = text_size
        self.run_dir = run_dir
        self.writer = writer
        self.emit = emit

    def __call__(self, step):
        """Returns the metrics at `step` (see `validation_metrics`)."""
        totals = {name: evaluate_totals(self.model, dataset, self.steps, self.jit_compile)
                  for name, dataset in self.sets.items()}
        metrics = validation_metrics(totals, step, *self.text_size)
        if self.writer is not None:
            write_validation_summaries(self.writer, metrics, totals)
        if self.run_dir is not None:
            append_history(self.run_dir, metrics)
        self.emit("eval", metrics)
        return metrics


def check_best_metric(best_metric, split):
    """Refuses a `train.best_metric` the run has no validation data for.

    `task_loss` needs at least one scored task (translate, qa, sentiment) in
    the validation data, `TASK_accuracy` that task.
    """
    if best_metric == "loss":
        return
    tasks = [s["task"] for s in split["validation"]] if split["kind"] == "tasks" else []
    scored = [t for t in ANSWER_TASKS if t in tasks]
    if best_metric == TASK_LOSS:
        needed, missing = "translate, qa or sentiment", not scored
    else:
        needed = best_metric[:-len("_accuracy")]
        missing = needed not in tasks
    if missing:
        choices = ", ".join(["loss"] + ([TASK_LOSS] if scored else [])
                            + [f"{t}_accuracy" for t in scored])
        raise UserError(f"train.best_metric={best_metric} needs {needed} validation data, "
                        f"which this run does not have; choose one of: {choices}")
