"""Per-request budgets, checked before a signature runs.

Two limits bound what one legal request may cost the server:

- compute: rows x tokens, where a row's tokens are its prompt (the widest
  `token_ids`, or the bytes of its strings, a SentencePiece token being at
  least one byte) plus the tokens it asks to generate, capped at the model's
  context (generation truncates longer prompts); `classify` scores every
  label, so it counts rows x labels. Limit: `--max_request_tokens`.
- response size: the bytes the encoded outputs will take, estimated from
  the signature's declared output shapes before the run and measured on the
  arrays after it, before any JSON is built. Limit: `--max_response_bytes`.

Both raise `ServingError(413)` (gRPC RESOURCE_EXHAUSTED) naming the limit and
the flag that raises it. `check_window` refuses (400) `token_ids` wider than
the context for the signatures that do not truncate them. Issue 15's `logits` request (16 rows x 256 tokens,
a 12 KB body) built a 678 MB JSON answer before these checks existed.
"""

import dataclasses

import numpy as np

from gpt_tf.serving.errors import ServingError, bad_request

# Bytes one value takes in the encoded response, an upper bound: a float32
# printed as JSON ("-1.2345678901234567e-05, ") or a proto field.
VALUE_BYTES = {
    "json": {"float": 25, "int": 13, "bool": 7, "string": 2},
    "proto": {"float": 8, "int": 10, "bool": 1, "string": 1},
}
_MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class RequestCost:
    """What a request asks for, known before it runs.

    Attributes:
        rows: batch size.
        prompt_tokens: the longest row's prompt, in tokens (an upper bound).
        new_tokens: tokens generated per row (0 for non-generating signatures).
        labels: label continuations scored per row (classify), else 1.
        context: the model's context window (0 if unknown).
    """

    rows: int
    prompt_tokens: int
    new_tokens: int = 0
    labels: int = 1
    context: int = 0

    @property
    def tokens_per_row(self):
        tokens = self.prompt_tokens + self.new_tokens
        return min(tokens, self.context) if self.context else tokens

    @property
    def row_tokens(self):
        """The compute budget's unit: rows x tokens per row (x labels)."""
        return self.rows * self.tokens_per_row * self.labels


def _task(servable, signature):
    for task in servable.metadata.get("tasks", []):
        if signature in (task.get("name"), f"{task.get('name')}_text"):
            return task
    return None


def _string_bytes(array):
    flat = np.asarray(array, dtype=object).reshape(len(array), -1) if np.ndim(array) else \
        np.asarray([[array]], dtype=object)
    return [sum(len(v) if isinstance(v, (bytes, str)) else 0 for v in row) for row in flat]


def request_cost(servable, signature, inputs):
    """`RequestCost` of running `signature` on numpy `inputs` (batch-first)."""
    specs = servable.input_specs[signature]
    rows = max((int(np.shape(v)[0]) for v in inputs.values() if np.ndim(v)), default=1)
    string_bytes = [0] * rows
    width = 0
    for name, value in inputs.items():
        dtype = specs.get(name, ("", None))[0]
        if dtype == "string":
            for row, size in enumerate(_string_bytes(value)[:rows]):
                string_bytes[row] += size
        elif dtype.startswith("int") and np.ndim(value) == 2 and name != "max_new_tokens":
            width = max(width, int(np.shape(value)[1]))
    prompt = max(width, max(string_bytes) + 1 if any(string_bytes) else width)
    meta = servable.metadata
    task = _task(servable, signature)
    if "max_new_tokens" in inputs and np.size(inputs["max_new_tokens"]):
        new = int(np.max(inputs["max_new_tokens"]))
    elif signature == "serving_default":
        new = int(meta.get("defaults", {}).get("max_new_tokens", 0))
    elif task is not None and task.get("kind") == "generate":
        new = int(task.get("max_new_tokens", 0))
    else:
        new = 0
    labels = 1
    if task is not None and task.get("kind") == "classify":
        labels = max(1, len(task.get("labels", [])))
        # Templates add a few separator tokens and every label's own tokens.
        prompt += 8
    context = int(meta.get("model", {}).get("sequence_length", 0))
    return RequestCost(rows, max(1, prompt), max(0, new), labels, context)


def check_compute(cost, limit):
    """Raises `ServingError(413)` when `cost.row_tokens` is over `limit` (0: no limit)."""
    if limit and cost.row_tokens > limit:
        labels = f" x {cost.labels} labels" if cost.labels > 1 else ""
        raise ServingError(
            413, f"this request needs about {cost.row_tokens} row-tokens ({cost.rows} rows x "
                 f"{cost.tokens_per_row} tokens{labels}), over the limit of {limit} per request "
                 "(--max_request_tokens); send fewer rows or shorter inputs, or raise "
                 "--max_request_tokens")


def _kind(dtype):
    if dtype == "string":
        return "string"
    if dtype == "bool":
        return "bool"
    return "float" if "float" in dtype else "int"


def estimate_response_bytes(servable, signature, cost, encoding="json"):
    """Upper-bound-ish size of the encoded outputs, from the declared output shapes.

    Unknown dimensions after the batch are taken as the row's tokens (prompt
    plus new tokens): what `token_ids`, `logits` (B, T, V) or per-token
    outputs grow with. Strings count a few bytes per token.
    """
    per_value = VALUE_BYTES[encoding]
    unknown = cost.prompt_tokens + cost.new_tokens
    total = 0
    for dtype, shape in servable.output_specs.get(signature, {}).values():
        kind = _kind(dtype)
        if shape is None:
            continue
        count = 1
        for axis, dim in enumerate(shape):
            count *= cost.rows if axis == 0 and dim is None else (unknown if dim is None else dim)
        if kind == "string":
            total += count * (unknown * per_value["string"] + 8)
        else:
            total += count * per_value[kind]
    return total


def outputs_bytes(outputs, encoding="json"):
    """Size of the encoded outputs `{name: np.ndarray}`, measured before encoding."""
    per_value = VALUE_BYTES[encoding]
    total = 0
    for array in outputs.values():
        array = np.asarray(array)
        if array.dtype == object or array.dtype.kind in "SU":
            # JSON may escape a byte as \\u00XX (6 bytes); count 2 per byte as typical text.
            total += sum(len(v) if isinstance(v, (bytes, str)) else 8
                         for v in array.reshape(-1)) * per_value["string"] + 4 * array.size
        else:
            kind = "bool" if array.dtype == bool else "float" if array.dtype.kind == "f" \
                else "int"
            total += array.size * per_value[kind]
    return total


def check_response(size, limit, measured=False):
    """Raises `ServingError(413)` when a response of `size` bytes is over `limit` (0: none)."""
    if limit and size > limit:
        what = "is" if measured else "would be"
        raise ServingError(
            413, f"the response {what} about {_human(size)}, over the limit of {_human(limit)} "
                 "(--max_response_bytes); ask for fewer rows or tokens, or raise "
                 "--max_response_bytes")


def _human(size):
    return f"{size / _MiB:.1f} MiB" if size >= _MiB else f"{size} bytes"


# Signatures that run `token_ids` through the model as given (no truncation).
_WHOLE_WINDOW = ("prefill", "logits")


def check_window(servable, signature, inputs):
    """`ServingError(400)` for `token_ids` wider than the context of a no-truncation signature."""
    ids = inputs.get("token_ids")
    if signature not in _WHOLE_WINDOW or ids is None or np.ndim(ids) != 2:
        return
    width = int(np.shape(ids)[1])
    context = int(servable.metadata.get("model", {}).get("sequence_length", 0))
    if width < 1:
        raise bad_request(f"'token_ids' has no positions; signature '{signature}' needs at "
                          "least one token per row")
    if context and width > context:
        raise bad_request(f"'token_ids' has {width} positions; signature '{signature}' takes at "
                          f"most {context} (the model's context): send the last {context} tokens")


def check_request(servable, signature, inputs, options, encoding="json"):
    """Both budgets for a predict/classify request, before it runs; returns its cost."""
    check_window(servable, signature, inputs)
    cost = request_cost(servable, signature, inputs)
    check_compute(cost, options.max_request_tokens)
    check_response(estimate_response_bytes(servable, signature, cost, encoding),
                   options.max_response_bytes)
    return cost
