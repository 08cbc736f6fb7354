"""Checks of what a caller passes in: sampling settings, seeds, texts.

One place for the rules and their messages, shared by `gpt_tf.sampling`,
`gpt_tf.generation`, the clients and the apps. A leaf module: it imports only
the standard library and `gpt_tf.errors`, so any layer may use it.
(`tflite/sampling.py` copies `check_sampling_values`, as the on-device runner
must not import `gpt_tf`; `tests/helpers.py` holds the cases both must pass.)
"""

import math
import numbers

from gpt_tf.errors import UserError


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
