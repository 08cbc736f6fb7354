"""Server-side request batching (`gpt-tf serve --enable_batching`), as TF Serving does it.

Concurrent requests for the same signature of the same model version wait
in a queue until `max_batch_size` rows have gathered, or `batch_timeout_micros`
has passed and one of the `num_batch_threads` threads is free, and then share
one call of the signature; each request gets its own rows of the outputs back.
As in TF Serving's shared batch scheduler, a batch keeps taking requests until
a thread takes it, so under load batches fill even with a timeout of 0. A batch's rows are padded (copies of
its first row) up to the next of `allowed_batch_sizes`, so the programs XLA
compiles are bounded: one per allowed size and prompt-length bucket (the
export's generation loop rounds its buffer up to 32 positions,
`gpt_tf.export.generation_graph.LENGTH_BUCKET`, and its prefill to one of
`PREFILL_BUCKETS` or the whole buffer). A request with more rows
than `max_batch_size` is split into pieces of at most that size (TF Serving's
`enable_large_batch_splitting`).

How a signature is batched follows from its declared shapes (`batch_plan`):

- "merge": every input and output is batch-first and no output has an
  unknown dimension after the batch (`generate`, `serving_default`, `score`,
  `classify`, the task signatures, `detokenize`; `logits` of current
  exports). Requests are queued and merged. Inputs of rank 2 (`token_ids`)
  merge only with requests of the same width: padding them would change
  the answer of `logits` (it reads the last position) and `detokenize`.
- "pad": batch-first, but an output's width depends on the whole batch
  (`tokenize`, `generate_ids`): each request runs alone, its rows padded to an
  allowed size and cut back, so its answer is the same and its shape bounded.
- None: not batch-first (the batch-1 `prefill`/`decode`): run as they are.

Rows are independent in every gpt-tf signature (generation samples each row
with its own `[seed, position]`), so a merged answer equals the request's
answer alone, up to float rounding of the differently shaped matmuls. A
merged call that fails (one request with an invalid value fails the graph's
checks) is retried request by request, so only the bad request gets the
error. A full queue (`max_enqueued_batches` batches waiting) answers 503,
as TF Serving's UNAVAILABLE "the batch scheduling queue ... is full".
"""

import collections
import dataclasses
import logging
import re
import threading
import time

import numpy as np

from gpt_tf.errors import UserError
from gpt_tf.serving.errors import ServingError, bad_request

log = logging.getLogger("gpt_tf.serving")

_INT_FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
               "num_batch_threads")
# TF Serving's BatchingParameters fields this server reads without acting on them.
_IGNORED_FIELDS = ("thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size",
                   "batch_padding_policy")
_IGNORED_PREFIXES = ("low_priority_", "mixed_priority_")
_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<token>[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+|"[^"\n]*"|[{}:])')


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's `BatchingParameters` (the part this server implements).

    Attributes:
        max_batch_size: rows per model call.
        batch_timeout_micros: how long the first request of a batch waits for others.
        max_enqueued_batches: batches waiting per queue (model version, signature,
            input widths); a request that needs one more gets 503.
        num_batch_threads: batches running at once (all queues share them).
        allowed_batch_sizes: sizes a batch is padded up to; the last equals
            `max_batch_size`. Empty: no padding.
        pad_variable_length_inputs: accepted for compatibility; see the module
            docstring for what is padded.
        ignored: fields of the file read but not acted on.
    """

    max_batch_size: int = 8
    batch_timeout_micros: int = 10000
    max_enqueued_batches: int = 64
    num_batch_threads: int = 2
    allowed_batch_sizes: tuple = (1, 2, 4, 8)
    pad_variable_length_inputs: bool = True
    ignored: tuple = ()

    def __post_init__(self):
        for name in _INT_FIELDS:
            value = getattr(self, name)
            low = 0 if name == "batch_timeout_micros" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"batching parameter {name} must be an integer >= {low}, "
                                f"got {value!r}")
        sizes = tuple(self.allowed_batch_sizes)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes) or \
                list(sizes) != sorted(set(sizes)):
            raise UserError(f"allowed_batch_sizes must be increasing positive integers, got "
                            f"{list(sizes)}")
        if sizes and sizes[-1] != self.max_batch_size:
            raise UserError(f"the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
                            f"max_batch_size ({self.max_batch_size}), as in TF Serving")
        object.__setattr__(self, "allowed_batch_sizes", sizes)

    def padded_size(self, rows):
        """The batch size `rows` rows run at: the next allowed size, else a multiple
        of `max_batch_size` (requests of a "pad" signature may be larger)."""
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        if not self.allowed_batch_sizes:
            return rows
        return -(-rows // self.max_batch_size) * self.max_batch_size


def parse_batching_parameters(text, source="batching parameters"):
    """`BatchingParameters` from TF Serving's text format.

    Both `max_batch_size { value: 8 }` (the wrapper form TF Serving writes) and
    `max_batch_size: 8` are read; `allowed_batch_sizes` repeats.

    Raises:
        UserError naming `source` and the field for anything else.
    """
    tokens = []
    for match in _TOKEN.finditer(text):
        if match.group("token"):
            tokens.append(match.group("token"))
    leftover = _TOKEN.sub(" ", text).split()
    if leftover:
        bad = leftover[0]
        raise UserError(f"{source}: cannot read {bad!r} (TF Serving's BatchingParameters text "
                        "format: 'max_batch_size { value: 8 }', 'allowed_batch_sizes: 4')")
    values, ignored, position = {}, [], 0

    def take(expected=None):
        nonlocal position
        if position >= len(tokens):
            raise UserError(f"{source}: the text ends early" +
                            (f" (expected {expected!r})" if expected else ""))
        token = tokens[position]
        position += 1
        if expected is not None and token != expected:
            raise UserError(f"{source}: expected {expected!r}, got {token!r}")
        return token

    while position < len(tokens):
        name = take()
        if not re.match(r"^[A-Za-z_]", name):
            raise UserError(f"{source}: expected a field name, got {name!r}")
        if tokens[position:position + 1] == [":"]:
            take(":")
        if tokens[position:position + 1] == ["{"]:
            take("{")
            take("value")
            take(":")
            value = take()
            take("}")
        else:
            value = take()
        if name in _IGNORED_FIELDS or name.startswith(_IGNORED_PREFIXES):
            ignored.append(name)
            continue
        if name == "allowed_batch_sizes":
            values.setdefault(name, []).append(_integer(value, name, source))
        elif name in _INT_FIELDS:
            values[name] = _integer(value, name, source)
        elif name == "pad_variable_length_inputs":
            if value not in ("true", "false", "1", "0"):
                raise UserError(f"{source}: {name} must be true or false, got {value}")
            values[name] = value in ("true", "1")
        else:
            known = sorted(("allowed_batch_sizes", "pad_variable_length_inputs") + _INT_FIELDS)
            raise UserError(f"{source}: unknown field {name!r}; known: {', '.join(known)}")
    values.setdefault("allowed_batch_sizes", [])
    try:
        return BatchingParameters(**values, ignored=tuple(ignored))
    except UserError as error:
        raise UserError(f"{source}: {error}") from None


def _integer(text, name, source):
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{source}: {name} must be an integer, got {text}") from None


def read_batching_parameters(path=None):
    """`BatchingParameters` from a file, or the export bundle's defaults (`path` None)."""
    if path is None:
        from gpt_tf.export.bundle import BATCHING_PARAMETERS

        return parse_batching_parameters(BATCHING_PARAMETERS, "the default batching parameters")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--batching_parameters_file '{path}' cannot be read "
                        f"({getattr(error, 'strerror', None) or error})") from None
    return parse_batching_parameters(text, f"--batching_parameters_file '{path}'")


def batch_plan(servable, signature):
    """"merge", "pad" or None for `signature` of `servable` (see the module docstring)."""
    inputs = servable.input_specs.get(signature) or {}
    outputs = servable.output_specs.get(signature) or {}
    if not inputs or not outputs:
        return None
    for _, shape in list(inputs.values()) + list(outputs.values()):
        if not shape or shape[0] is not None:
            return None
    if any(None in shape[1:] for _, shape in outputs.values()):
        return "pad"
    return "merge"


def _rows(inputs):
    rows = {int(np.shape(value)[0]) for value in inputs.values()}
    if len(rows) != 1:
        raise bad_request("all inputs must have the same batch size (first dimension)")
    return rows.pop()


def _pad(inputs, size):
    """Rows padded up to `size` with copies of the first row (as TF Serving pads)."""
    out = {}
    for name, value in inputs.items():
        value = np.asarray(value)
        extra = size - value.shape[0]
        out[name] = value if extra <= 0 else np.concatenate(
            [value, np.repeat(value[:1], extra, axis=0)], axis=0)
    return out


def _take(outputs, start, stop, padded):
    part = {}
    for name, value in outputs.items():
        if np.ndim(value) == 0 or np.shape(value)[0] != padded:
            raise RuntimeError(f"output '{name}' is not batch-first (shape "
                               f"{list(np.shape(value))} for a batch of {padded})")
        part[name] = value[start:stop]
    return part


class _Task:
    """One request (or a piece of a large one) waiting for its rows of a batch."""

    def __init__(self, inputs, rows):
        self.inputs = inputs
        self.rows = rows
        self.outputs = None
        self.error = None
        self.done = threading.Event()


class _Batch:
    def __init__(self, queue, deadline):
        self.queue = queue
        self.deadline = deadline
        self.tasks = []
        self.rows = 0


class _Queue:
    """The batches of one (model version, signature, input widths)."""

    def __init__(self, key, model, servable, signature):
        self.key = key
        self.model = model
        self.servable = servable
        self.signature = signature
        self.open = None  # the batch still taking requests
        self.waiting = 0  # batches not yet taken by a thread, the open one included


class BatchScheduler:
    """Queues, merges and runs signature calls with `BatchingParameters`.

    `num_batch_threads` threads serve every queue, as TF Serving's shared
    batch scheduler. `run` is called from the request threads and blocks
    until the request's rows are done.

    Args:
        parameters: `BatchingParameters`.
    """

    def __init__(self, parameters):
        self.parameters = parameters
        self._cond = threading.Condition()
        self._queues = {}
        self._ready = collections.deque()
        self._stopped = False
        # (model, signature, padded batch size) -> [model calls, requests, request rows]
        self.stats = collections.defaultdict(lambda: [0, 0, 0])
        self._threads = [threading.Thread(target=self._work, name=f"gpt-tf-batch-{i}",
                                          daemon=True)
                         for i in range(parameters.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    # ---- request side --------------------------------------------------------------------

    def merges(self, servable, signature):
        """Whether requests for `signature` are queued and merged (they take no
        `--max_concurrent_requests` slot: the queue bounds them)."""
        return batch_plan(servable, signature) == "merge"

    def run(self, model, servable, signature, inputs):
        """Runs `signature` on `inputs` batched per its plan; returns `{output: array}`."""
        plan = batch_plan(servable, signature)
        rows = _rows(inputs) if plan else 0
        if not plan or rows == 0:  # an empty batch: the graph's own error
            return servable.run(signature, inputs)
        if plan == "pad":
            return self._run_padded(model, servable, signature, inputs, rows)
        limit = self.parameters.max_batch_size
        key = (id(servable), signature) + tuple(
            (name, np.shape(value)[1:]) for name, value in sorted(inputs.items())
            if np.ndim(value) > 1)
        tasks = []
        for start in range(0, rows, limit):
            piece = {name: value[start:start + limit] for name, value in inputs.items()}
            tasks.append(self._enqueue(key, model, servable, signature,
                                       _Task(piece, min(limit, rows - start))))
        for task in tasks:
            task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error
        if len(tasks) == 1:
            return tasks[0].outputs
        return {name: np.concatenate([t.outputs[name] for t in tasks], axis=0)
                for name in tasks[0].outputs}

    def _enqueue(self, key, model, servable, signature, task):
        limit = self.parameters.max_batch_size
        with self._cond:
            if self._stopped:
                raise ServingError(503, "the server is shutting down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(key, model, servable, signature)
            batch = queue.open
            if batch is None or batch.rows + task.rows > limit:
                if queue.waiting >= self.parameters.max_enqueued_batches:
                    raise ServingError(
                        503, f"the batch queue of model '{model}' signature '{signature}' is "
                             f"full ({self.parameters.max_enqueued_batches} batches of up to "
                             f"{limit} rows waiting; max_enqueued_batches in "
                             "--batching_parameters_file); retry later")
                if batch is not None:
                    self._close(queue)
                batch = queue.open = _Batch(
                    queue, time.monotonic() + self.parameters.batch_timeout_micros / 1e6)
                queue.waiting += 1
            batch.tasks.append(task)
            batch.rows += task.rows
            if batch.rows >= limit:
                self._close(queue)
            self._cond.notify_all()  # a new deadline or a ready batch: every idle thread looks
        return task

    def _close(self, queue):
        self._ready.append(queue.open)
        queue.open = None

    # ---- batch threads -------------------------------------------------------------------

    def _next_batch(self):
        # A full batch first; else the open batch whose timeout passed longest ago. An
        # open batch keeps taking requests until a thread is free to run it, so under
        # load batches fill while the threads are busy, even with a timeout of 0.
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                due = min((q for q in self._queues.values() if q.open is not None),
                          key=lambda q: q.open.deadline, default=None)
                if not self._ready and due is not None and due.open.deadline <= now:
                    self._close(due)
                if self._ready:
                    batch = self._ready.popleft()
                    queue = batch.queue
                    queue.waiting -= 1
                    if queue.waiting == 0 and self._queues.get(queue.key) is queue:
                        del self._queues[queue.key]  # e.g. an unloaded version's queue
                    return batch
                self._cond.wait(None if due is None else due.open.deadline - now)
            return None

    def _work(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._process(batch)
            except BaseException as error:  # never leave a request waiting
                log.exception("batch failed")
                for task in batch.tasks:
                    if not task.done.is_set():
                        task.error = error
            finally:
                for task in batch.tasks:
                    task.done.set()

    def _process(self, batch):
        queue, tasks = batch.queue, batch.tasks
        if len(tasks) == 1:
            task = tasks[0]
            try:
                task.outputs = self._run_padded(queue.model, queue.servable, queue.signature,
                                                task.inputs, task.rows, merged=1)
            except Exception as error:
                task.error = error
            return
        names = tasks[0].inputs
        merged = {name: np.concatenate([t.inputs[name] for t in tasks], axis=0)
                  for name in names}
        try:
            outputs = self._run_padded(queue.model, queue.servable, queue.signature, merged,
                                       batch.rows, merged=len(tasks), cut=False)
            padded = self.parameters.padded_size(batch.rows)
            start = 0
            parts = []
            for task in tasks:
                parts.append(_take(outputs, start, start + task.rows, padded))
                start += task.rows
        except Exception as error:
            # One bad request fails the merged call: run each alone, so only it fails.
            log.debug("merged batch of %d failed (%s); running its requests one by one",
                      len(tasks), error)
            for task in tasks:
                try:
                    task.outputs = self._run_padded(queue.model, queue.servable,
                                                    queue.signature, task.inputs, task.rows,
                                                    merged=1)
                except Exception as task_error:
                    task.error = task_error
            return
        for task, part in zip(tasks, parts):
            task.outputs = part

    def _run_padded(self, model, servable, signature, inputs, rows, merged=1, cut=True):
        padded = self.parameters.padded_size(rows)
        outputs = servable.run(signature, _pad(inputs, padded))
        with self._cond:
            entry = self.stats[(model, signature, padded)]
            entry[0] += 1
            entry[1] += merged
            entry[2] += rows
        return _take(outputs, 0, rows, padded) if cut else outputs

    # ---- metrics and shutdown --------------------------------------------------------------

    def render(self, escape):
        """Prometheus lines: model calls, the requests and rows in them, per padded size."""
        names = ("gpt_tf_batches", "gpt_tf_batched_requests", "gpt_tf_batched_rows")
        with self._cond:
            items = sorted((key, list(value)) for key, value in self.stats.items())
        lines = []
        for column, name in enumerate(names):
            lines.append(f"# TYPE {name} counter")
            for (model, signature, size), values in items:
                lines.append(f'{name}{{model_name="{escape(model or "")}",'
                             f'signature="{escape(signature)}",batch_size="{size}"}} '
                             f"{values[column]}")
        return lines

    def stop(self):
        """Stops the threads; requests still queued get 503."""
        with self._cond:
            self._stopped = True
            pending = list(self._ready) + [q.open for q in self._queues.values() if q.open]
            self._ready.clear()
            self._queues.clear()
            self._cond.notify_all()
        for batch in pending:
            for task in batch.tasks:
                task.error = ServingError(503, "the server is shutting down")
                task.done.set()
        for thread in self._threads:
            thread.join(timeout=30)
