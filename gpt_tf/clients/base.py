"""The one client interface the apps and the evaluation use, whatever the backend."""

import dataclasses
import math
import numbers

from gpt_tf.errors import UserError


@dataclasses.dataclass
class Completion:
    """One generated continuation.

    Attributes:
        text: the new text (the stop token excluded).
        num_tokens: new tokens generated.
        stop_reason: `stop_token`, `max_new_tokens` or `context_full`.
        prompt_tokens_truncated: leading prompt tokens dropped to fit the window.
    """

    text: str
    num_tokens: int
    stop_reason: str
    prompt_tokens_truncated: int = 0


def check_sampling(max_new_tokens, limit, temperature, top_k, top_p, repetition_penalty):
    """Raises `UserError` for settings every backend rejects (same rules as `Sampler`)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise UserError(f"max_new_tokens must be an integer (got {max_new_tokens!r})")
    if not 1 <= max_new_tokens <= limit:
        raise UserError(f"max_new_tokens must be in [1, {limit}] for this model "
                        f"(got {max_new_tokens})")
    check_sampling_values(temperature, top_k, top_p, repetition_penalty)


def _check_number(name, value, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise UserError(f"{name} must be {'an integer' if integer else 'a number'} "
                        f"(got {value!r})")


def check_sampling_values(temperature, top_k, top_p, repetition_penalty):
    """Raises `UserError` for sampling values no sampler accepts (NaN and infinity included)."""
    for name, value in (("temperature", temperature), ("top_p", top_p),
                        ("repetition_penalty", repetition_penalty)):
        _check_number(name, value)
    _check_number("top_k", top_k, integer=True)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise UserError(f"temperature must be a finite number >= 0 (got {temperature}); "
                        "0 is greedy")
    if not 0 <= top_k < 2**31:
        raise UserError(f"top_k must be in [0, {2**31 - 1}] (got {top_k}); 0 turns it off, "
                        "and so does any value of at least the vocabulary size")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"top_p must be in (0, 1] (got {top_p}); 1 turns it off")
    if not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise UserError(f"repetition_penalty must be a finite number > 0 "
                        f"(got {repetition_penalty})")


def check_seed(seed):
    """Raises `UserError` unless `seed` is an integer that fits every backend (int32)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise UserError(f"seed must be an integer (got {seed!r})")
    if not -2**31 <= seed < 2**31:
        raise UserError(f"seed must be in [{-2**31}, {2**31 - 1}] (got {seed})")


def check_texts(texts, what="prompts", allow_empty=True):
    """A list of strings from a string or an iterable of strings."""
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise UserError(f"{what} must be text (str), not bytes; decode them first, e.g. "
                        "data.decode('utf-8')")
    try:
        texts = list(texts)
    except TypeError:
        raise UserError(f"{what} must be a string or a list of strings") from None
    for number, text in enumerate(texts):
        check_text(text, f"{what}[{number}]", allow_empty)
    return texts


def check_text(text, what, allow_empty=True):
    """Raises `UserError` naming `what` unless `text` is a string of valid UTF-8
    (and, unless `allow_empty`, not blank)."""
    if not isinstance(text, str):
        raise UserError(f"{what} is {type(text).__name__}, not a string")
    if not allow_empty and not text.strip():
        raise UserError(f"{what} is empty; give some text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        # Undecodable input bytes arrive as lone surrogates (surrogateescape).
        raise UserError(f"{what} is not valid UTF-8 text (an undecodable byte at character "
                        f"{error.start}); convert it to UTF-8 first, e.g. "
                        "`iconv -f latin1 -t utf-8`") from None


class Client:
    """A model behind one of four backends, with the same three calls.

    Every backend feeds the model `[end_of_text] + tokens(prompt)`, as in
    training, and stops a continuation at end-of-text.

    Attributes:
        backend: `keras`, `savedmodel`, `rest` or `tflite`.
        target: what was opened (path or URL).
        sequence_length: the model's context window.
        max_new_tokens_limit: the largest `max_new_tokens` a call may ask.
        task_card: what the model was fine-tuned for (`task_card.json`), or None.
        vocab_size: the tokenizer's vocabulary size (None if the backend cannot tell).
    """

    backend = "base"
    vocab_size = None

    def __init__(self, target, sequence_length, max_new_tokens_limit, task_card=None):
        self.target = target
        self.sequence_length = int(sequence_length)
        self.max_new_tokens_limit = int(max_new_tokens_limit)
        self.task_card = task_card

    # ---- the interface ----------------------------------------------------------------

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, top_k=0, top_p=1.0,
                 repetition_penalty=1.0, seed=0, stream=None):
        """Continues each prompt.

        Args:
            prompts: a string or a list of strings (may hold task separators).
            max_new_tokens: new tokens per prompt, in `[1, max_new_tokens_limit]`.
            temperature, top_k, top_p, repetition_penalty: sampling settings
                (temperature 0 is greedy), as in `gpt_tf.sampling.Sampler`.
            seed: the same seed and inputs give the same tokens (per backend).
            stream: optional `fn(row, text)` called with each new piece of
                text as it is produced (backends that cannot stream call it
                once per row with the whole completion).

        Returns:
            A list of `Completion`, one per prompt.
        """
        prompts = check_texts(prompts)
        check_sampling(max_new_tokens, self.max_new_tokens_limit, temperature, top_k, top_p,
                       repetition_penalty)
        check_seed(seed)
        if not prompts:
            return []
        return self._generate(prompts, max_new_tokens, float(temperature), int(top_k),
                              float(top_p), float(repetition_penalty), int(seed), stream)

    def score(self, prompt, continuations):
        """Log-likelihoods (nats) of each continuation after `prompt`.

        `log p(continuation | [end_of_text] + prompt)`, summed over the
        continuation's tokens (no end-of-text added). Prompts and
        continuations are tokenized separately; served backends that only
        score whole texts use `score(prompt + c) - score(prompt)`, which is
        the same number when the prompt is empty or ends with a separator
        (all task prompts do).

        Returns:
            A list of floats, one per continuation.
        """
        (prompt,) = check_texts([prompt], "prompt")
        continuations = check_texts(continuations, "continuations")
        if not continuations:
            return []
        return self._score(prompt, continuations)

    def tokenize(self, texts):
        """Token ids of each text (no end-of-text added)."""
        return self._tokenize(check_texts(texts, "texts"))

    def count_tokens(self, texts):
        """Tokens in each text."""
        return [len(ids) for ids in self.tokenize(texts)]

    def close(self):
        """Releases what the backend holds (nothing for most)."""

    def describe(self):
        return f"{self.backend} model {self.target}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- for backends -----------------------------------------------------------------

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                  seed, stream):
        raise NotImplementedError

    def _score(self, prompt, continuations):
        raise NotImplementedError

    def _tokenize(self, texts):
        raise NotImplementedError


class StreamDecoder:
    """Turns token ids arriving one by one into text pieces, whole characters only.

    Args:
        decode: `fn(list of ids) -> str`.
    """

    def __init__(self, decode):
        self.decode = decode
        self.ids = []
        self.emitted = ""

    def push(self, token_id):
        """Adds a token; returns the new complete text (may be '')."""
        self.ids.append(int(token_id))
        text = self.decode(self.ids)
        # A multi-byte character split over byte tokens decodes to U+FFFD until complete.
        if text.endswith("\ufffd"):
            return ""
        piece = text[len(self.emitted):]
        self.emitted = text
        return piece
