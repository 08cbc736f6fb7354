"""Fine-tuning data: task examples -> packed windows with the loss masked on prompts.

A fine-tuning run's `data_split.json` has `"kind": "tasks"` and, under
`train` and `validation`, a list of *task specs* (JSON objects):

    {"task": "translate", "path": ".../train.jsonl", "name": "mt-en-fr",
     "format": null, "select": "all", "holdout_fraction": 0.0, "weight": 1.0,
     "doc_stride": 128, "max_answer_tokens": 32}

- `task`: `translate`, `qa`, `sentiment` or `generate` (see `formats`).
- `path`: the file (a list of files or a folder for `generate`); `format`
  overrides the format taken from the file name.
- `select`: `all`, or `train` / `validation` to keep one side of a seeded
  hold-out of `holdout_fraction` of the file, chosen by a hash of each
  example's text (QA: of its context; `generate`: of each paragraph), so a
  user file can serve both splits without leaks.
- `weight`: copies of each example per epoch (fractions are sampled), to
  balance tasks of different sizes.
- QA: `doc_stride` (tokens between context window starts) and
  `max_answer_tokens` (room kept for the answer; longer answers are dropped).

`task_dataset` turns specs into `(inputs, targets, weights)` batches:
examples are tokenized on the host (`[EOT] prompt answer [EOT]`), packed
greedily into windows of `sequence_length + 1` tokens that each start with
end-of-text (an example is never split across windows; what does not fit
goes to the next window, the rest is padding), and shifted into inputs and
targets. Weights are 1.0 exactly on answer tokens and the end-of-text that
closes each answer, 0.0 on prompts and padding.
"""

import dataclasses
import hashlib
import os
import random
import re

import numpy as np

from gpt_tf import task_table
from gpt_tf.errors import UserError
from gpt_tf.task_data import formats
from gpt_tf.task_data.windows import text_windows

SPEC_KEYS = ("task", "path", "format", "name", "select", "holdout_fraction", "weight",
             "doc_stride", "max_answer_tokens")
DEFAULT_DOC_STRIDE = 128
DEFAULT_MAX_ANSWER_TOKENS = 32
# Fewer context tokens than this per window and a QA example is dropped.
MIN_CONTEXT_TOKENS = 16


@dataclasses.dataclass
class TokenExample:
    """A tokenized example: `prompt` ids (not learned), `answer` ids (learned).

    `close`: an end-of-text follows the answer (and is learned); False for a
    document chunk that continues in the next example.
    """

    prompt: list
    answer: list
    close: bool = True


def qa_context_budget(sequence_length, question_tokens, max_answer_tokens):
    """Context tokens per QA window: `[EOT] <|context|> C <|question|> Q <|answer|> A` fits."""
    return sequence_length - 4 - question_tokens - max_answer_tokens


def sentiment_text_budget(sequence_length, max_label_tokens):
    """Text tokens per sentiment chunk: `[EOT] <|text|> T <|label|> L [EOT]` fits."""
    return sequence_length - 3 - max_label_tokens


def check_spec(spec):
    """Validates a list of task specs; returns it with defaults filled in."""
    if isinstance(spec, dict):
        spec = [spec]
    if not isinstance(spec, list) or not spec:
        raise UserError("task data must be a non-empty list of task specs")
    out = []
    for entry in spec:
        if not isinstance(entry, dict):
            raise UserError(f"a task spec must be a JSON object, got {entry!r}")
        unknown = sorted(set(entry) - set(SPEC_KEYS))
        if unknown:
            raise UserError(f"unknown key(s) {unknown} in task spec; valid: {list(SPEC_KEYS)}")
        if "task" not in entry or "path" not in entry:
            raise UserError(f"task spec {entry!r} needs 'task' and 'path'")
        formats.check_task(entry["task"])
        full = {"format": None, "name": None, "select": "all", "holdout_fraction": 0.0,
                "weight": 1.0, "doc_stride": DEFAULT_DOC_STRIDE,
                "max_answer_tokens": DEFAULT_MAX_ANSWER_TOKENS, **entry}
        if full["select"] not in ("all", "train", "validation"):
            raise UserError(f"task spec 'select' must be all, train or validation, "
                            f"got {full['select']!r}")
        if not 0.0 <= float(full["holdout_fraction"]) < 1.0:
            raise UserError("task spec 'holdout_fraction' must be in [0, 1)")
        if float(full["weight"]) <= 0:
            raise UserError("task spec 'weight' must be > 0")
        out.append(full)
    return out


def in_holdout(key, fraction):
    """Whether `key` falls in the held-out `fraction` (stable across runs and machines)."""
    if fraction <= 0:
        return False
    digest = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16)
    return digest / float(1 << 48) < fraction


def _keep(entry, key):
    if entry["select"] == "all":
        return True
    held_out = in_holdout(key, float(entry["holdout_fraction"]))
    return held_out == (entry["select"] == "validation")


def _owner(entry):
    return f"data set '{entry['name']}'" if entry.get("name") else None


def load_records(entry):
    """Reads the text-level records of one spec entry (after the hold-out selection).

    Returns:
        translate: `TranslationPair`s; qa: `QAExample`s; sentiment:
        `SentimentExample`s; generate: document strings.
    """
    from gpt_tf import datasets

    task, path, owner = entry["task"], entry["path"], _owner(entry)
    if task == task_table.GENERATE:
        docs = datasets.load_text_files(path, owner=owner)
        if entry["select"] == "all":
            return docs
        # Held out by paragraph, so that a single file feeds both splits.
        paragraphs = [p for d in docs for p in re.split(r"\n\s*\n", d) if p.strip()]
        return [p for p in paragraphs if _keep(entry, p)]
    if isinstance(path, list):
        raise UserError(f"task '{task}' takes one file, got {len(path)}")
    if task == task_table.TRANSLATE:
        records = datasets.load_translation_pairs(path, format=entry["format"], owner=owner)
        return [r for r in records if _keep(entry, r.source)]
    if task == task_table.QA:
        records = datasets.load_squad(path, owner=owner)
        return [r for r in records if _keep(entry, r.context)]
    records = datasets.load_sentiment(path, format=entry["format"], owner=owner)
    return [r for r in records if _keep(entry, r.text)]


def _count_fn(tokenizer):
    def count(texts):
        return [len(ids) for ids in tokenizer.encode(list(texts))]
    return count


def qa_windows(context, question, count_tokens, sequence_length, max_answer_tokens, doc_stride):
    """Character spans of the context windows of one question (inference and training).

    Returns:
        `[(start, end)]`, or `[]` when the question leaves too little room.
    """
    question_tokens = count_tokens([formats.strip_separators(question)])[0]
    budget = qa_context_budget(sequence_length, question_tokens, max_answer_tokens)
    if budget < MIN_CONTEXT_TOKENS:
        return []
    return text_windows(formats.strip_separators(context), count_tokens, budget,
                        min(doc_stride, budget))


def build_examples(entry, tokenizer, sequence_length, stats=None):
    """Tokenized `TokenExample`s of one spec entry.

    Args:
        entry: a checked spec entry (see `check_spec`).
        tokenizer: a `gpt_tf.tokenizer.Tokenizer`.
        sequence_length: the model's context window.
        stats: optional dict, updated with counts (`records`, `examples`,
            `dropped_too_long`, `windows_without_answer`).
    """
    stats = {} if stats is None else stats
    records = load_records(entry)
    counts = {"dropped": 0, "no_answer": 0}
    examples = _BUILDERS[entry["task"]](records, tokenizer, sequence_length, entry, counts)
    stats.update(records=len(records), examples=len(examples),
                 dropped_too_long=counts["dropped"], windows_without_answer=counts["no_answer"])
    return examples


def _translate_examples(records, tokenizer, L, entry, counts):
    examples = []
    prompts = tokenizer.encode([formats.translate_prompt(r.source) for r in records])
    answers = tokenizer.encode([r.target for r in records])
    for p, a in zip(prompts, answers):
        if 1 + len(p) + len(a) + 1 > L + 1:
            counts["dropped"] += 1
            continue
        examples.append(TokenExample(p, a))
    return examples


def _sentiment_examples(records, tokenizer, L, entry, counts):
    examples = []
    labels = sorted({r.label for r in records})
    label_ids = dict(zip(labels, tokenizer.encode(labels)))
    budget = sentiment_text_budget(L, max(len(v) for v in label_ids.values()))
    if budget < 4:
        raise UserError(f"labels {labels} leave no room for text in a {L}-token window")
    count = _count_fn(tokenizer)
    for record in records:
        text = formats.strip_separators(record.text)
        for start, end in text_windows(text, count, budget):
            prompt = tokenizer.encode(formats.sentiment_prompt(text[start:end]))
            examples.append(TokenExample(prompt, label_ids[record.label]))
    return examples


def _qa_examples(records, tokenizer, L, entry, counts):
    examples, count = [], _count_fn(tokenizer)
    max_answer = int(entry["max_answer_tokens"])
    for record in records:
        answer_ids = tokenizer.encode(record.answers[0].text)
        windows = [] if len(answer_ids) + 1 > max_answer else qa_windows(
            record.context, record.question, count, L, max_answer, int(entry["doc_stride"]))
        kept = 0
        for start, end in windows:
            inside = [a for a in record.answers
                      if start <= a.answer_start and a.answer_start + len(a.text) <= end]
            if not inside:
                counts["no_answer"] += 1
                continue
            prompt = tokenizer.encode(
                formats.qa_prompt(record.context[start:end], record.question))
            examples.append(TokenExample(prompt, tokenizer.encode(inside[0].text)))
            kept += 1
        if not kept:
            counts["dropped"] += 1
    return examples


def _generate_examples(records, tokenizer, L, entry, counts):
    # Documents in chunks of L - 1 tokens.
    examples = []
    for doc in records:
        ids = tokenizer.encode(doc)
        pieces = [ids[i:i + L - 1] for i in range(0, len(ids), L - 1)] or [[]]
        for n, piece in enumerate(pieces):
            if piece:
                examples.append(TokenExample([], piece, close=n == len(pieces) - 1))
    return examples


# Each task's own example builder (the tasks: `gpt_tf.task_table`).
_BUILDERS = {task_table.TRANSLATE: _translate_examples, task_table.SENTIMENT: _sentiment_examples,
             task_table.QA: _qa_examples, task_table.GENERATE: _generate_examples}


def _weighted(examples, weight, seed):
    if weight == 1.0:
        return list(examples)
    rng = random.Random(seed)
    whole, fraction = int(weight), weight - int(weight)
    out = []
    for example in examples:
        out.extend([example] * whole)
        if fraction and rng.random() < fraction:
            out.append(example)
    return out


def pack_examples(examples, sequence_length, end_of_text_id, pad_id=0):
    """Packs examples greedily into windows of `sequence_length + 1` tokens.

    Each window starts with end-of-text; an example goes whole into the
    current window or, if it does not fit, starts the next one.

    Returns:
        `(tokens, mask)`: int32 and float32 arrays `(windows, sequence_length + 1)`;
        `mask` is 1.0 on answer tokens and their closing end-of-text.
    """
    width = sequence_length + 1
    rows, masks = [], []
    tokens, mask = [end_of_text_id], [0.0]

    def flush():
        pad = width - len(tokens)
        rows.append(tokens + [pad_id] * pad)
        masks.append(mask + [0.0] * pad)

    for example in examples:
        closing = [end_of_text_id] if example.close else []
        ex_tokens = list(example.prompt) + list(example.answer) + closing
        ex_mask = [0.0] * len(example.prompt) + [1.0] * (len(example.answer) + len(closing))
        if 1 + len(ex_tokens) > width:
            raise ValueError(f"an example of {len(ex_tokens)} tokens cannot fit a window of "
                             f"{sequence_length}")
        if len(tokens) + len(ex_tokens) > width:
            flush()
            tokens, mask = [end_of_text_id], [0.0]
        tokens, mask = tokens + ex_tokens, mask + ex_mask
        if not example.close:  # a document continues: nothing may follow it here
            flush()
            tokens, mask = [end_of_text_id], [0.0]
    if len(tokens) > 1:
        flush()
    if not rows:
        return (np.zeros((0, width), np.int32), np.zeros((0, width), np.float32))
    return np.array(rows, np.int32), np.array(masks, np.float32)


def task_windows(spec, tokenizer, sequence_length, shuffle=True, seed=0, stats=None):
    """Packed `(tokens, mask)` windows of every task in `spec` (see `pack_examples`)."""
    examples = []
    stats = {} if stats is None else stats
    for number, entry in enumerate(check_spec(spec)):
        entry_stats = {}
        built = build_examples(entry, tokenizer, sequence_length, entry_stats)
        built = _weighted(built, float(entry["weight"]), seed + number)
        entry_stats["examples_weighted"] = len(built)
        name = entry.get("name") or os.path.basename(str(entry["path"]))
        stats[f"{entry['task']}:{name}"] = entry_stats
        examples.extend(built)
    if not examples:
        raise UserError("no task example fits the context window; check the data "
                        "(or use a model with a longer model.sequence_length)")
    if shuffle:
        random.Random(seed).shuffle(examples)
    return pack_examples(examples, sequence_length, tokenizer.end_of_text_id, tokenizer.pad_id)


def task_dataset(spec, tokenizer, sequence_length, batch_size, shuffle=True, shuffle_buffer=2048,
                 seed=0, repeat=True, input_context=None, example_order_seed=None):
    """Batches of `(inputs, targets, weights)` from task specs.

    Args:
        spec: list of task specs (see the module docstring), as stored in a
            run's `data_split.json`.
        tokenizer: a `gpt_tf.tokenizer.Tokenizer`.
        sequence_length: tokens per window (the model's context).
        batch_size: batch size of this input pipeline.
        shuffle: shuffle examples before packing and windows every epoch.
        shuffle_buffer: windows in the shuffle buffer.
        seed: seed of both shuffles; the same seed gives the same batches.
        repeat: loop forever (training) or one pass (evaluation, last batch
            may be smaller).
        input_context: optional `tf.distribute.InputContext`; each input
            pipeline keeps every n-th batch of the shared seeded stream.
        example_order_seed: without `shuffle`, put the examples in this
            seed's fixed order before packing (validation: the first batches
            are a sample of every entry, not the first entry's first examples).

    Returns:
        A `tf.data.Dataset` of int32, int32, float32 `(batch, sequence_length)`.
    """
    import tensorflow as tf

    reorder = shuffle or example_order_seed is not None
    tokens, mask = task_windows(spec, tokenizer, sequence_length, shuffle=reorder,
                                seed=example_order_seed if reorder and not shuffle else seed)
    dataset = tf.data.Dataset.from_tensor_slices((tokens[:, :-1], tokens[:, 1:], mask[:, 1:]))
    if shuffle:
        dataset = dataset.shuffle(min(shuffle_buffer, len(tokens)), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    batches = dataset.batch(batch_size, drop_remainder=repeat)
    if input_context is not None and input_context.num_input_pipelines > 1:
        # Same scheme as `gpt_tf.data.lm_dataset`: shard whole batches of one stream.
        batches = batches.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return batches.prefetch(tf.data.AUTOTUNE)
