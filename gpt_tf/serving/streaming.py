"""Token streaming over a SavedModel's stepwise `prefill`/`decode` signatures.

An extension of the TF Serving REST API (TF Serving has no streaming): the
server runs the batch-1 `prefill` once and `decode` per token, samples and
yields each token as it is chosen.

Sampling is the `generate` signature's own `sample_rows`, with the same
`[seed, position]` stateless seeds, compiled with XLA when the export's
generation is (`jit_compile` in its metadata): TensorFlow's categorical
sampler draws different numbers under XLA than in its CPU kernel, so the
eager `gpt_tf.sampling.Sampler` gave the same greedy text as `generate` but
different sampled text for the same seed.
"""

import functools

import numpy as np
import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.export.generation_graph import sample_rows
from gpt_tf.sampling import Sampler
from gpt_tf.serving.errors import bad_request, not_found

STREAM_FIELDS = {"prompt": str, "max_new_tokens": int, "temperature": (int, float),
                 "top_k": int, "top_p": (int, float), "repetition_penalty": (int, float),
                 "seed": int}


def parse_stream_request(body, max_new_tokens_limit, max_string_bytes):
    """Validates `{"prompt": ..., sampling...}`; returns keyword arguments."""
    if not isinstance(body, dict):
        raise bad_request("the stream request must be a JSON object with a 'prompt'")
    unknown = sorted(set(body) - set(STREAM_FIELDS) - {"signature_name"})
    if unknown:
        raise bad_request(f"unknown key(s) {unknown}; valid: {sorted(STREAM_FIELDS)}")
    if not isinstance(body.get("prompt"), str):
        raise bad_request("'prompt' must be a string")
    for key, kind in STREAM_FIELDS.items():
        if key in body and (isinstance(body[key], bool) or not isinstance(body[key], kind)):
            raise bad_request(f"'{key}' has the wrong type")
    try:
        prompt_bytes = len(body["prompt"].encode("utf-8"))
    except UnicodeEncodeError:  # JSON allows "\ud800"; no tokenizer can take it
        raise bad_request("'prompt' is not valid Unicode (it holds a lone surrogate such as "
                          "\\ud800); send UTF-8 text") from None
    if prompt_bytes > max_string_bytes:
        raise bad_request(f"'prompt' exceeds {max_string_bytes} bytes (--max_string_bytes)")
    max_new = body.get("max_new_tokens", 64)
    if not 1 <= max_new <= max_new_tokens_limit:
        raise bad_request(f"max_new_tokens must be in [1, {max_new_tokens_limit}]")
    try:
        sampler = Sampler(float(body.get("temperature", 0.0)), int(body.get("top_k", 0)),
                          float(body.get("top_p", 1.0)),
                          float(body.get("repetition_penalty", 1.0)))
    except UserError as error:
        raise bad_request(str(error)) from None
    seed = body.get("seed", 0)
    if not -(2 ** 31) <= seed < 2 ** 31:
        raise bad_request("'seed' must fit in int32")
    return {"prompt": body["prompt"], "max_new_tokens": max_new, "sampler": sampler,
            "seed": seed}


@functools.lru_cache(maxsize=2)
def _row_sampler(jit_compile):
    return tf.function(sample_rows, jit_compile=jit_compile, autograph=False)


def stream_generate(servable, prompt, max_new_tokens, sampler, seed):
    """Yields `{"token_id", "text"}` per new token, then a final summary event."""
    for name in ("prefill", "decode"):
        if name not in servable.signatures:
            raise not_found("this model has no stepwise prefill/decode signatures; re-export it "
                            "with `gpt-tf export savedmodel` to stream")
    tokenizer = servable.host_tokenizer
    meta = servable.metadata
    end_of_text = int(meta["tokenizer"]["end_of_text_id"])
    sequence_length = int(meta.get("model", {}).get("sequence_length", 0))
    vocab_size = tokenizer.vocab_size
    ids = [end_of_text] + tokenizer.encode(prompt)
    room = sequence_length - max_new_tokens
    if room < 1:
        raise bad_request(f"max_new_tokens must be below the context ({sequence_length})")
    truncated = max(0, len(ids) - room)
    ids = ids[truncated:]
    presence = np.zeros((1, vocab_size), dtype=bool)
    presence[0, ids] = True
    sample = _row_sampler(bool(meta.get("jit_compile", True)))
    settings = (tf.constant([sampler.temperature], tf.float32),
                tf.constant([sampler.top_k], tf.int32),
                tf.constant([sampler.top_p], tf.float32),
                tf.constant([sampler.repetition_penalty], tf.float32),
                tf.constant([seed], tf.int32))
    out = servable.signatures["prefill"](token_ids=tf.constant([ids], tf.int32))
    logits, cache = out["logits"], out["cache"]
    new, text, reason = [], "", "max_new_tokens"
    for step in range(max_new_tokens):
        position = len(ids) + step
        token = int(sample(tf.cast(logits, tf.float32), tf.constant(position, tf.int32),
                           tf.constant(presence), *settings)[0])
        if token == end_of_text:
            reason = "stop_token"
            break
        new.append(token)
        presence[0, token] = True
        decoded = tokenizer.decode(new)
        # Hold back an incomplete UTF-8 sequence until its last byte arrives.
        piece = "" if decoded.endswith("\ufffd") or not decoded.startswith(text) \
            else decoded[len(text):]
        text = decoded if piece else text
        yield {"token_id": token, "text": piece}
        if step + 1 < max_new_tokens:
            out = servable.signatures["decode"](
                token_id=tf.constant([[token]], tf.int32),
                position=tf.constant([position], tf.int32), cache=cache)
            logits, cache = out["logits"], out["cache"]
    yield {"done": True, "completion": tokenizer.decode(new), "num_tokens": len(new),
           "stop_reason": reason, "prompt_tokens_truncated": truncated}
