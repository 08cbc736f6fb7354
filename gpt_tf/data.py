"""Text files -> `tf.data` windows of next-token training pairs.

The pipeline streams: files are read line by line (`TextLineDataset`),
tokenized in-graph in batches of lines, with an end-of-text token before every
document, cut into windows of `sequence_length + 1` tokens, shifted into
(inputs, targets), batched and prefetched. Training shuffles the document order
every epoch (seeded), interleaves windows of 16 documents at a time and shuffles
windows in a buffer; evaluation reads the joined stream once, in order.
Nothing holds the corpus in memory, so corpora larger than RAM work.

A *source* is `(path, skip_lines, take_lines)`: a whole file is
`(path, 0, -1)`; a single-file corpus is split into a contiguous head (train)
and tail (validation), never by random line.
"""

import dataclasses
import math
import os
import random

import tensorflow as tf

from gpt_tf.errors import UserError

# Lines tokenized per in-graph call; amortises op overhead.
_LINES_PER_BATCH = 256
# Documents read in parallel while training, so batches mix sources.
_DOCUMENTS_AT_ONCE = 16


@dataclasses.dataclass(frozen=True)
class Source:
    """A slice of one text file: `take_lines` lines after `skip_lines` (-1: all)."""

    path: str
    skip_lines: int = 0
    take_lines: int = -1


def _count_lines(path):
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def split_documents(files, validation_fraction, seed):
    """Splits whole documents (files) into train and validation sources.

    With two or more files, `round(n * validation_fraction)` files (at least one)
    are held out, chosen by a seeded shuffle of the sorted names. A single file
    holds out its last `validation_fraction` of lines as one contiguous block.

    Args:
        files: sorted list of file paths.
        validation_fraction: share held out (0 disables validation).
        seed: seed of the choice.

    Returns:
        `(train_sources, validation_sources)`, lists of `Source`.
    """
    if validation_fraction <= 0:
        return [Source(f) for f in files], []
    if len(files) == 1:
        lines = _count_lines(files[0])
        held_out = max(1, int(lines * validation_fraction))
        if lines - held_out < 1:
            raise UserError(
                f"'{files[0]}' has {lines} line(s), too few to hold out validation text; "
                "add text, pass --validation-data, or set data.validation_fraction=0")
        return ([Source(files[0], 0, lines - held_out)],
                [Source(files[0], lines - held_out, -1)])
    order = sorted(files)
    random.Random(seed).shuffle(order)
    count = min(len(files) - 1, max(1, round(len(files) * validation_fraction)))
    held_out = set(order[:count])
    return ([Source(f) for f in files if f not in held_out],
            [Source(f) for f in files if f in held_out])


def token_stream(sources, tokenizer):
    """A dataset of 1-D int32 token chunks: EOT, document, EOT, document, ...

    Args:
        sources: list of `Source`.
        tokenizer: a `gpt_tf.tokenizer.Tokenizer`.
    """
    return _files(sources).flat_map(
        lambda path, skip, take: _read(path, skip, take, tokenizer))


def _files(sources):
    return tf.data.Dataset.from_tensor_slices((
        [s.path for s in sources],
        tf.constant([s.skip_lines for s in sources], tf.int64),
        tf.constant([s.take_lines for s in sources], tf.int64),
    ))


def _read(path, skip, take, tokenizer):
    """One source as token chunks: end-of-text, then its lines (newline kept)."""
    graph_tokenizer = tokenizer.graph_tokenizer
    lines = tf.data.TextLineDataset(path).skip(skip).take(take)
    # TextLineDataset drops the newline; put it back so the model learns line breaks.
    ids = lines.batch(_LINES_PER_BATCH).map(
        lambda batch: graph_tokenizer.tokenize(tf.strings.join([batch, "\n"])).flat_values)
    return tf.data.Dataset.from_tensors(
        tf.constant([tokenizer.end_of_text_id], tf.int32)).concatenate(ids)


def lm_dataset(sources, tokenizer, sequence_length, batch_size, shuffle=True,
               shuffle_buffer=2048, seed=0, repeat=True, input_context=None):
    """Batches of `(inputs, targets)` int32 `(batch, sequence_length)` windows.

    Args:
        sources: list of `Source` (see `split_documents`).
        tokenizer: a `gpt_tf.tokenizer.Tokenizer`.
        sequence_length: tokens per window (the model's context).
        batch_size: batch size of this input pipeline (per worker).
        shuffle: shuffle windows (training) or keep order (evaluation).
        shuffle_buffer: windows in the shuffle buffer.
        seed: shuffle seed; the same seed gives the same order.
        repeat: loop forever (training) or stop after one pass.
        input_context: optional `tf.distribute.InputContext`; each input
            pipeline keeps every n-th batch of the shared seeded stream.

    Returns:
        A `tf.data.Dataset`.
    """
    if not sources:
        raise UserError("no text to build a dataset from; check the data paths")
    if shuffle:
        # Training: a seeded new document order every epoch, and windows drawn
        # from several documents at once. Reading files in a fixed order with
        # only a window shuffle buffer would feed a mixture one source after
        # the other (all the plays, then all the French, ...).
        files = _files(sources).shuffle(len(sources), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            files = files.repeat()
        windows = files.interleave(
            lambda path, skip, take: _read(path, skip, take, tokenizer).rebatch(
                sequence_length + 1, drop_remainder=True),
            cycle_length=min(_DOCUMENTS_AT_ONCE, len(sources)), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        windows = windows.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        # Evaluation: one pass over the end-of-text-joined stream, in order.
        windows = token_stream(sources, tokenizer).rebatch(sequence_length + 1,
                                                           drop_remainder=True)
        if repeat:
            windows = windows.repeat()
    windows = windows.map(lambda w: (w[:-1], w[1:]), num_parallel_calls=tf.data.AUTOTUNE)
    batches = windows.batch(batch_size, drop_remainder=repeat)
    if input_context is not None and input_context.num_input_pipelines > 1:
        # Shard whole batches of one seeded stream: worker w takes batches
        # w, w+n, ..., so n workers see exactly the windows one device would
        # see in a global batch, and losses do not depend on the worker count.
        # Each worker reads and tokenizes the whole corpus (cheap next to training).
        batches = batches.shard(input_context.num_input_pipelines,
                                input_context.input_pipeline_id)
    return batches.prefetch(tf.data.AUTOTUNE)


def count_bytes_and_tokens(sources, tokenizer):
    """Counts UTF-8 bytes and tokens (EOT included) of `sources`, streaming.

    Their ratio turns a per-token loss into bits per byte, a number that does
    not depend on the tokenizer.
    """
    total_bytes = 0
    for source in sources:
        with open(source.path, "rb") as handle:
            for number, line in enumerate(handle):
                if number < source.skip_lines:
                    continue
                if source.take_lines >= 0 and number >= source.skip_lines + source.take_lines:
                    break
                total_bytes += len(line.rstrip(b"\n")) + 1
    total_tokens = 0
    for chunk in token_stream(sources, tokenizer).map(tf.size):
        total_tokens += int(chunk)
    return total_bytes, total_tokens


def bits_per_byte(mean_loss_nats, total_bytes, total_tokens):
    """Converts a mean per-token loss (nats) into bits per UTF-8 byte."""
    if total_bytes == 0:
        return float("nan")
    return mean_loss_nats * (total_tokens / total_bytes) / math.log(2)


def describe_sources(sources):
    """Short human description, e.g. `3 files (12.1 MB)`."""
    names = sorted({s.path for s in sources})
    size = sum(os.path.getsize(n) for n in names)
    return f"{len(names)} file(s), {size / 1e6:.2f} MB"
