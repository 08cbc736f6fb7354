"""On-device GPT runtime over `prefill`/`decode` signatures (no TensorFlow).

Imports only numpy, `ai_edge_litert` and `sentencepiece` (or `tokenizers` for
an imported GPT-2 BPE). A model directory is what `gpt-tf export tflite` writes:
`model.tflite`, `tokenizer.model` (or `bpe_tokenizer.json`), `meta.json`.

    lm = TFLiteLM("tflite/shakespeare-int8")
    print(lm.generate_text("ROMEO.", max_new_tokens=40, sampler=Sampler(0.8, 40), seed=1))

Prompts are laid out as in training: the end-of-text id, then the prompt's
ids; generation stops at end-of-text or after `max_new_tokens`. Prompts longer
than `max_length - max_new_tokens` keep their last tokens.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from tflite.host_tokenizer import HostTokenizer, find_tokenizer_file
from tflite.sampling import Sampler

MODEL_FILE = "model.tflite"
META_FILE = "meta.json"
SUPPORTED_FORMAT = 1


class ModelDirError(ValueError):
    """The model directory is missing files, damaged or of the wrong kind."""


class ModelInputError(ValueError):
    """An input has the wrong shape, dtype or value range for the .tflite model."""


@dataclasses.dataclass
class Generation:
    """Result of `TFLiteLM.generate`.

    Attributes:
        token_ids: new token ids (stop token excluded).
        stop_reason: `stop_token` or `max_new_tokens`.
        prompt_tokens_truncated: leading prompt tokens dropped to fit.
    """

    token_ids: list
    stop_reason: str
    prompt_tokens_truncated: int


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_array(value, name, dtype, shape, signature):
    """`value` as an array of `dtype` and `shape` (None = any), or `ModelInputError`."""
    array = np.asarray(value)
    if array.dtype != np.dtype(dtype):
        if array.dtype.kind in "iu" and np.dtype(dtype).kind == "i" and array.size and (
                array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
            raise ModelInputError(f"{signature}: input '{name}' has values outside {dtype}")
        if array.dtype.kind not in "iu" or np.dtype(dtype).kind != "i":
            raise ModelInputError(
                f"{signature}: input '{name}' must be {np.dtype(dtype).name}, got "
                f"{array.dtype.name}")
        array = array.astype(dtype)
    if len(array.shape) != len(shape) or any(
            want is not None and got != want for got, want in zip(array.shape, shape)):
        expected = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
        raise ModelInputError(f"{signature}: input '{name}' must have shape {expected}, got "
                              f"{tuple(array.shape)}")
    return np.ascontiguousarray(array)


class TFLiteLM:
    """A GPT `.tflite` model with its tokenizer.

    Args:
        model_dir: directory with `model.tflite`, `tokenizer.model`, `meta.json`.
        num_threads: interpreter threads (default: LiteRT's choice).
        verify: check the sha256 of both files against `meta.json`.
    """

    def __init__(self, model_dir, num_threads=None, verify=True):
        from ai_edge_litert.interpreter import Interpreter

        self.model_dir = model_dir
        meta_path = os.path.join(model_dir, META_FILE)
        if not os.path.isdir(model_dir):
            raise ModelDirError(f"'{model_dir}' is not a directory; pass a directory written by "
                                "`gpt-tf export tflite` (e.g. tflite/NAME)")
        tokenizer_path = find_tokenizer_file(model_dir)
        if tokenizer_path is None:
            raise ModelDirError(f"'{model_dir}' has no tokenizer.model or bpe_tokenizer.json; it "
                                "is not a gpt-tf TFLite export (re-run `gpt-tf export tflite`)")
        for name in (MODEL_FILE, META_FILE):
            if not os.path.isfile(os.path.join(model_dir, name)):
                raise ModelDirError(f"'{model_dir}' has no {name}; it is not a gpt-tf TFLite "
                                    "export (re-run `gpt-tf export tflite`)")
        try:
            with open(meta_path, encoding="utf-8") as handle:
                self.meta = json.load(handle)
        except (ValueError, UnicodeDecodeError):
            raise ModelDirError(f"'{meta_path}' is not valid JSON; re-export the model") from None
        if self.meta.get("format_version") != SUPPORTED_FORMAT:
            raise ModelDirError(f"'{meta_path}' has format {self.meta.get('format_version')!r}; "
                                f"this runner reads format {SUPPORTED_FORMAT}")
        if verify:
            for name, digest in self.meta.get("sha256", {}).items():
                if _sha256(os.path.join(model_dir, name)) != digest:
                    raise ModelDirError(f"'{os.path.join(model_dir, name)}' does not match the "
                                        "sha256 in meta.json: the file is corrupt or was "
                                        "replaced; re-export it")
        try:
            self.interpreter = Interpreter(model_path=os.path.join(model_dir, MODEL_FILE),
                                           num_threads=num_threads)
        except ValueError as error:
            raise ModelDirError(f"'{model_dir}/{MODEL_FILE}' cannot be loaded: {error}") from None
        signatures = self.interpreter.get_signature_list()
        if set(signatures) != {"prefill", "decode"}:
            raise ModelDirError(f"'{model_dir}/{MODEL_FILE}' has signatures {sorted(signatures)};"
                                " expected prefill and decode")
        special = self.meta.get("special_ids", {})
        self.tokenizer = HostTokenizer(
            tokenizer_path, [special[k] for k in ("pad", "end_of_text") if k in special])
        self.vocab_size = int(self.meta["vocab_size"])
        if self.tokenizer.vocab_size != self.vocab_size:
            raise ModelDirError(f"'{model_dir}': tokenizer has {self.tokenizer.vocab_size} "
                                f"tokens but the model {self.vocab_size}; re-export")
        self.max_length = int(self.meta["max_length"])
        self.cache_shape = tuple(self.meta["cache"]["shape"])
        self.end_of_text_id = int(self.meta["special_ids"]["end_of_text"])
        self.quantization = self.meta.get("quantization")
        self._prefill = self.interpreter.get_signature_runner("prefill")
        self._decode = self.interpreter.get_signature_runner("decode")
        self._decode_views = None

    # ---- raw signatures, validated -----------------------------------------------------

    def _check_ids(self, ids, signature, name):
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ModelInputError(f"{signature}: input '{name}' has ids outside "
                                  f"[0, {self.vocab_size})")

    def prefill(self, token_ids):
        """Runs a prompt from an empty cache.

        Args:
            token_ids: int32 `(1, T)`, 1 <= T <= max_length.

        Returns:
            `(logits (V,) float32, cache)` with logits at the last position.
        """
        token_ids = _check_array(token_ids, "token_ids", np.int32, (1, None), "prefill")
        if not 1 <= token_ids.shape[1] <= self.max_length:
            raise ModelInputError(f"prefill: token_ids must hold 1..{self.max_length} tokens, got "
                                  f"{token_ids.shape[1]}")
        self._check_ids(token_ids, "prefill", "token_ids")
        out = self._prefill(token_ids=token_ids)
        return out["logits"][0], out["cache"]

    def decode(self, token_id, position, cache):
        """Runs one token at `position` over `cache`.

        Args:
            token_id: int32 `(1, 1)`.
            position: int32 `(1,)`, in [0, max_length).
            cache: float32 `cache_shape`.

        Returns:
            `(logits (V,), updated cache)`.
        """
        token_id = _check_array(token_id, "token_id", np.int32, (1, 1), "decode")
        position = _check_array(position, "position", np.int32, (1,), "decode")
        cache = _check_array(cache, "cache", np.float32, self.cache_shape, "decode")
        self._check_ids(token_id, "decode", "token_id")
        if not 0 <= int(position[0]) < self.max_length:
            raise ModelInputError(f"decode: position must be in [0, {self.max_length}), got "
                                  f"{int(position[0])}")
        self._decode_views = None  # the runner call below re-sets the inputs
        out = self._decode(token_id=token_id, position=position, cache=cache)
        return out["logits"][0], out["cache"]

    # ---- fast loop: the cache stays inside the interpreter ------------------------------

    def _views(self):
        runner = self._decode
        wrapper = runner._interpreter_wrapper
        index = runner._subgraph_index
        ins, outs = runner.get_input_details(), runner.get_output_details()

        def view(tensor_index):
            return wrapper.tensor(wrapper, tensor_index, index)

        return {
            "invoke": lambda: wrapper.Invoke(index),
            "token_id": lambda: view(ins["token_id"]["index"]),
            "position": lambda: view(ins["position"]["index"]),
            "cache_in": lambda: view(ins["cache"]["index"]),
            "cache_out": lambda: view(outs["cache"]["index"]),
            "logits": lambda: view(outs["logits"]["index"]),
        }

    def _start(self, prompt_ids):
        logits, cache = self.prefill(np.asarray([prompt_ids], np.int32))
        # One validated runner call sizes the decode tensors; later steps write
        # into the interpreter's buffers directly (no per-step copies in Python).
        self._decode(token_id=np.zeros((1, 1), np.int32), position=np.zeros((1,), np.int32),
                     cache=cache)
        self._decode_views = self._views()  # cache_in now holds the prefill cache
        return logits

    def _step(self, token, position):
        views = self._decode_views
        views["token_id"]()[0, 0] = token
        views["position"]()[0] = position
        views["invoke"]()
        np.copyto(views["cache_in"](), views["cache_out"]())
        return views["logits"]()[0].copy()

    def generate(self, prompt_ids, max_new_tokens=64, sampler=None, seed=0, stop_ids=None,
                 on_token=None):
        """Generates a continuation of `prompt_ids`.

        Args:
            prompt_ids: list of ids (usually starting with the end-of-text id).
            max_new_tokens: 1 .. max_length - 1.
            sampler: a `Sampler` (default greedy).
            seed: seed of the numpy generator (sampling only).
            stop_ids: ids that end generation (default: end-of-text).
            on_token: optional `fn(token_id)` called for each new token (streaming).

        Returns:
            A `Generation`.
        """
        sampler = sampler or Sampler()
        stop_ids = {self.end_of_text_id} if stop_ids is None else set(stop_ids)
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens < self.max_length:
            raise ModelInputError(f"max_new_tokens must be in [1, {self.max_length - 1}], got "
                                  f"{max_new_tokens!r}")
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ModelInputError("the prompt has no tokens")
        room = self.max_length - max_new_tokens
        truncated = max(0, len(prompt) - room)
        prompt = prompt[truncated:]
        rng = np.random.default_rng(seed)
        presence = np.zeros(self.vocab_size, dtype=bool)
        presence[prompt] = True
        logits = self._start(prompt)
        new, reason = [], "max_new_tokens"
        for step in range(max_new_tokens):
            token = sampler(logits, rng, presence)
            if token in stop_ids:
                reason = "stop_token"
                break
            new.append(token)
            presence[token] = True
            if on_token is not None:
                on_token(token)
            if step + 1 < max_new_tokens:
                logits = self._step(token, len(prompt) + step)
        return Generation(new, reason, truncated)

    def encode(self, text):
        return self.tokenizer.encode(text)

    def decode_text(self, ids):
        return self.tokenizer.decode(ids)

    def generate_text(self, prompt, max_new_tokens=64, sampler=None, seed=0, on_text=None):
        """Text in, completion text out; `on_text(piece)` streams complete characters."""
        ids = [self.end_of_text_id] + self.encode(prompt)
        emitted, shown = [], ""

        def on_token(token):
            nonlocal shown
            emitted.append(token)
            text = self.decode_text(emitted)
            # Hold back an incomplete UTF-8 sequence (byte pieces) until it completes.
            if on_text is not None and not text.endswith("\ufffd") and text.startswith(shown):
                on_text(text[len(shown):])
                shown = text

        result = self.generate(ids, max_new_tokens, sampler, seed,
                               on_token=on_token if on_text else None)
        text = self.decode_text(result.token_ids)
        if on_text is not None and text.startswith(shown) and len(text) > len(shown):
            on_text(text[len(shown):])
        return text

    def log_likelihood(self, ids):
        """Teacher-forced log-likelihood of `ids[1:]` given the prefix (decode path).

        Args:
            ids: token ids, at most max_length of them (usually starting with end-of-text).

        Returns:
            `(sum of log-probabilities, number of predicted tokens)`.
        """
        ids = [int(t) for t in ids]
        if not 2 <= len(ids) <= self.max_length:
            raise ModelInputError(f"log_likelihood needs 2..{self.max_length} ids, got {len(ids)}")
        logits = self._start(ids[:1])
        total = 0.0
        for position in range(1, len(ids)):
            row = logits.astype(np.float64)
            row = row - row.max()
            total += float(row[ids[position]] - np.log(np.exp(row).sum()))
            if position + 1 < len(ids):
                logits = self._step(ids[position], position)
        return total, len(ids) - 1
