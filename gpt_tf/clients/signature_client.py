"""SavedModel backends: in process (`tf.saved_model.load`) or a TF Serving REST URL.

Both call the export's named signatures (`gpt_tf/export/signatures.py`) with
columnar, batch-first inputs, so one client class serves both; only the
transport differs:

- `InProcessTransport`: `loaded.signatures[NAME](**tensors)`;
- `RestTransport`: `POST {url}:predict {"signature_name": NAME, "inputs": {...}}`,
  TF Serving's REST API (works with the real `tensorflow_model_server` and
  with `gpt-tf serve`). Only the standard library is used.

Signatures used: `generate` (text + per-row sampling controls), `score`
(log-likelihood of whole texts), `tokenize`; `prefill`/`decode` to stream in
process; `classify_text` to learn the sentiment labels over REST.
"""

import base64
import re
import urllib.parse

import numpy as np

from gpt_tf import task_table
from gpt_tf.clients.base import Client, Completion
from gpt_tf.errors import UserError
from gpt_tf.text_stream import StreamDecoder

_REQUIRED = ("generate", "score", "tokenize")
# Rows per request: servers bound the batch (gpt-tf serve: 64 by default).
_ROWS_PER_REQUEST = 32


class InProcessTransport:
    """Calls the signatures of a SavedModel loaded in this process.

    Args:
        export_dir: a SavedModel version directory (`saved_models/NAME/N`).
    """

    kind = "savedmodel"

    def __init__(self, export_dir):
        from gpt_tf.export.saved_model import load_saved_model, read_metadata

        self.loaded = load_saved_model(export_dir)
        self.metadata = read_metadata(export_dir)
        self.signatures = dict(self.loaded.signatures)
        self.where = export_dir

    def names(self):
        return set(self.signatures)

    def call(self, name, inputs):
        import tensorflow as tf

        function = self.signatures[name]
        specs = function.structured_input_signature[1]
        tensors = {key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()}
        try:
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            lines = str(error).strip().splitlines()
            first = lines[0] if lines else type(error).__name__
            raise UserError(f"the model rejected the request ({name}): {first[:300]}") from None
        return {key: _plain(value.numpy()) for key, value in outputs.items()}

    def input_shape(self, name, key):
        spec = self.signatures[name].structured_input_signature[1][key]
        return [None if d is None else int(d) for d in spec.shape]

    def output_shape(self, name, key):
        spec = self.signatures[name].structured_outputs.get(key)
        return None if spec is None else [None if d is None else int(d) for d in spec.shape]


def _plain(array):
    if array.dtype.kind in ("S", "O"):
        items = [b.decode("utf-8", "replace") if isinstance(b, bytes) else b for b in array.ravel()]
        return np.array(items + [None], dtype=object)[:-1].reshape(array.shape)
    return array


_MODEL_URL = re.compile(
    r"^(?P<base>https?://[^/?#]+)/v1/models/(?P<name>[^/:?#]+)"
    r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:?#]+))?/?$")


class RestTransport:
    """TF Serving REST API, through `gpt_tf.serving.client.ServingClient`.

    Args:
        url: `http(s)://HOST:PORT/v1/models/NAME[/versions/N | /labels/L]`.
        timeout: seconds per request.
    """

    kind = "rest"

    def __init__(self, url, timeout=120.0):
        from gpt_tf.serving.client import ServingClient

        match = _MODEL_URL.match(url.strip())
        if not match:
            raise UserError(f"'{url}' is not a model URL; use http://HOST:PORT/v1/models/NAME "
                            "(optionally /versions/N or /labels/LABEL), e.g. "
                            "http://localhost:8501/v1/models/gpt")
        version = int(match.group("version")) if match.group("version") else None
        self.client = ServingClient(match.group("base"), urllib.parse.unquote(match.group("name")),
                                    version=version, label=match.group("label"), timeout=timeout)
        self.where = self.client.model_url
        status = self.client.status()
        states = [v.get("state") for v in status.get("model_version_status", [])]
        if states and "AVAILABLE" not in states:
            raise UserError(f"model at {self.where} is not available (state {states}); wait for "
                            "the server to load it")
        meta = self.client.metadata()
        try:
            self.signature_defs = meta["metadata"]["signature_def"]["signature_def"]
        except (KeyError, TypeError):
            raise UserError(f"{self.where}/metadata did not return TF Serving model metadata; "
                            "is this a TF Serving endpoint?") from None
        self.metadata = {}

    def names(self):
        return set(self.signature_defs)

    def call(self, name, inputs):
        reply = self.client.predict(
            inputs={k: np.asarray(v).tolist() for k, v in inputs.items()}, signature_name=name)
        if not isinstance(reply, dict) or "outputs" not in reply:
            raise UserError(f"the server's answer to {name} has no 'outputs'")
        outputs = reply["outputs"]
        if not isinstance(outputs, dict):  # TF Serving unwraps a single output
            names = list(self.signature_defs.get(name, {}).get("outputs", {}))
            outputs = {names[0] if names else "output": outputs}
        return {key: _from_json(value) for key, value in outputs.items()}

    def stream(self, prompt, **sampling):
        """Text pieces from the `:generateStream` extension (`gpt-tf serve` only), then a summary.

        Raises `UserError` (404) on servers without it, e.g. real TF Serving.
        """
        return self.client.stream(prompt, **sampling)

    def input_shape(self, name, key):
        return self._shape(name, "inputs", key)

    def output_shape(self, name, key):
        return self._shape(name, "outputs", key)

    def _shape(self, name, side, key):
        try:
            dims = self.signature_defs[name][side][key]["tensor_shape"]["dim"]
        except (KeyError, TypeError):
            return None
        return [None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in dims]


def _from_json(value):
    def unwrap(item):
        if isinstance(item, dict) and "b64" in item:
            return base64.b64decode(item["b64"]).decode("utf-8", "replace")
        if isinstance(item, list):
            return [unwrap(i) for i in item]
        return item

    value = unwrap(value)
    array = np.asarray(value, dtype=object)
    if array.size and all(isinstance(x, (int, float, bool)) for x in array.ravel()):
        return np.asarray(value)
    return array


class SignatureClient(Client):
    """A SavedModel behind a transport (`InProcessTransport` or `RestTransport`)."""

    def __init__(self, transport, sequence_length=None, max_new_tokens_limit=None,
                 task_card=None):
        self.transport = transport
        self.backend = transport.kind
        missing = [name for name in _REQUIRED if name not in transport.names()]
        if missing:
            raise UserError(f"{transport.where} lacks the signature(s) {missing}; export it "
                            "with `gpt-tf export savedmodel` (it writes generate, score, "
                            "tokenize, ...)")
        meta = transport.metadata or {}
        limits = meta.get("limits", {})
        L = sequence_length or limits.get("sequence_length") or self._window_from_signatures()
        limit = max_new_tokens_limit or limits.get("max_new_tokens") or max(1, L // 2)
        super().__init__(transport.where, L, limit, task_card or _card_from_metadata(meta))
        self.end_of_text_id = meta.get("tokenizer", {}).get("end_of_text_id")
        self.vocab_size = meta.get("model", {}).get("vocab_size") or self._vocab_from_signatures()
        if self.task_card is None and "classify_text" in transport.names():
            self.task_card = self._card_from_classify()

    def _window_from_signatures(self):
        # The stepwise cache (2L, H, S, hd) holds the window length S.
        if "decode" in self.transport.names():
            shape = self.transport.input_shape("decode", "cache")
            if shape and len(shape) == 4 and shape[2]:
                return shape[2]
        raise UserError(f"cannot tell the context window of {self.transport.where}; pass "
                        "sequence_length= to open_client")

    def _vocab_from_signatures(self):
        if "prefill" in self.transport.names():
            shape = self.transport.output_shape("prefill", "logits")
            if shape and shape[-1]:
                return shape[-1]
        return None

    def _card_from_classify(self):
        try:
            out = self.transport.call("classify_text", {"text": ["a"]})
            labels = [str(c) for c in out["classes"][0]]
        except (UserError, KeyError, IndexError):
            return None
        return {"tasks": {task_table.labelled_task().name: {"labels": labels}}, "partial": True}

    def _rows(self, name, inputs):
        """Calls `name` in slices of `_ROWS_PER_REQUEST` rows; yields each slice's outputs."""
        count = len(next(iter(inputs.values())))
        for first in range(0, count, _ROWS_PER_REQUEST):
            yield self.transport.call(
                name, {k: list(v[first:first + _ROWS_PER_REQUEST]) for k, v in inputs.items()})

    def _tokenize(self, texts):
        rows = []
        for out in self._rows("tokenize", {"text": list(texts)}):
            ids, lengths = np.asarray(out["token_ids"]), np.asarray(out["lengths"]).reshape(-1)
            rows.extend([int(t) for t in ids[i, :lengths[i]]] for i in range(len(lengths)))
        return rows

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                  seed, stream):
        names = self.transport.names()
        if (stream is not None and len(prompts) == 1 and self.backend == "savedmodel"
                and {"prefill", "decode", "detokenize"} <= names):
            return [self._stream_one(prompts[0], max_new_tokens, temperature, top_k, top_p,
                                     repetition_penalty, seed, stream)]
        if stream is not None and len(prompts) == 1 and self.backend == "rest":
            streamed = self._rest_stream(prompts[0], max_new_tokens, temperature, top_k, top_p,
                                         repetition_penalty, seed, stream)
            if streamed is not None:
                return [streamed]
        n = len(prompts)
        completions = []
        for out in self._rows("generate", {
                "prompt": prompts, "max_new_tokens": [max_new_tokens] * n,
                "temperature": [temperature] * n, "top_k": [top_k] * n, "top_p": [top_p] * n,
                "repetition_penalty": [repetition_penalty] * n, "seed": [seed] * n}):
            counts = np.asarray(out["num_tokens"]).reshape(-1)
            truncated = np.asarray(out.get("prompt_tokens_truncated", [0] * len(counts)))
            for i in range(len(counts)):
                completion = Completion(str(out["completion"][i]), int(counts[i]),
                                        str(out["stop_reason"][i]), int(truncated.reshape(-1)[i]))
                if stream is not None and completion.text:
                    # TF Serving cannot stream: one piece per row.
                    stream(len(completions), completion.text)
                completions.append(completion)
        return completions

    def _rest_stream(self, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                     seed, stream):
        """Streams through `gpt-tf serve`'s extension; None if the server lacks it."""
        from gpt_tf.serving.errors import ServingError

        pieces = []
        try:
            for event in self.transport.stream(
                    prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                    top_p=top_p, repetition_penalty=repetition_penalty, seed=seed):
                if isinstance(event, str):
                    pieces.append(event)
                    stream(0, event)
                    continue
                text = event.get("completion", "".join(pieces))
                return Completion(text, int(event.get("num_tokens", 0)),
                                  str(event.get("stop_reason", "max_new_tokens")),
                                  int(event.get("prompt_tokens_truncated", 0)))
        except ServingError as error:
            if error.status == 404 and not pieces:
                return None  # real TF Serving: no streaming endpoint
            raise
        return Completion("".join(pieces), 0, "max_new_tokens", 0)

    def _stream_one(self, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                    seed, stream):
        """Batch-1 streaming over the `prefill`/`decode` signatures: the host loop `gpt-tf
        serve` streams with (`gpt_tf/export/host_loop.py`), so the same seed gives its text."""
        from gpt_tf.export.host_loop import HostDecodeLoop, fit_prompt

        call = self.transport.call
        eot = int(self.end_of_text_id if self.end_of_text_id is not None else 2)
        ids, truncated = fit_prompt([eot] + self._tokenize([prompt])[0], max_new_tokens,
                                    self.sequence_length)

        def prefill(token_ids):
            out = call("prefill", {"token_ids": [token_ids]})
            return out["logits"], out["cache"]

        def decode(token, position, cache):
            out = call("decode", {"token_id": [[token]], "position": [position], "cache": cache})
            return out["logits"], out["cache"]

        loop = HostDecodeLoop(prefill, decode, eot,
                              (self.transport.metadata or {}).get("jit_compile", True))
        decoder = StreamDecoder(lambda t: str(call("detokenize", {"token_ids": [t]})["text"][0]))
        for token in loop.tokens(ids, max_new_tokens, temperature, top_k, top_p,
                                 repetition_penalty, seed):
            piece = decoder.push(token)
            if piece:
                stream(0, piece)
        new, text = decoder.ids, ""
        if new:
            text = str(call("detokenize", {"token_ids": [new]})["text"][0])
        rest = decoder.finish(text)
        if rest:
            stream(0, rest)
        return Completion(text, len(new), loop.stop_reason, truncated)

    def _score_texts(self, texts):
        values, truncated = [], []
        for out in self._rows("score", {"text": list(texts)}):
            values.extend(np.asarray(out["log_likelihood"], np.float64).reshape(-1))
            truncated.extend(np.asarray(out["truncated"]).reshape(-1))
        return np.asarray(values), np.asarray(truncated, bool)

    def _score(self, prompt, continuations):
        texts = [prompt + c for c in continuations]
        if prompt:
            texts.append(prompt)
        values, truncated = self._score_texts(texts)
        base = values[-1] if prompt else 0.0
        if truncated.any():
            raise UserError(f"a scored text is longer than the {self.sequence_length}-token "
                            "window; shorten the prompt or the continuation")
        return [float(v - base) for v in values[:len(continuations)]]


def _card_from_metadata(meta):
    """An export's task card: its own, else its source run's, else one made from its tasks."""
    from gpt_tf.task_card import read_task_card

    if not meta:
        return None
    if isinstance(meta.get("task_card"), dict):
        return meta["task_card"]
    source = (meta.get("source") or {}).get("run_dir")
    card = read_task_card(source) if source else None
    if card:
        return card
    tasks = {}
    for entry in meta.get("tasks", []):
        task = task_table.task_of_export(entry)
        if task is not None:
            tasks[task.name] = {"labels": list(entry.get("labels", []))} if task.labelled else {}
    return {"tasks": tasks, "partial": True} if tasks else None
