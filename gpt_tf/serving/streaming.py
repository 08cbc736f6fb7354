"""Token streaming over a SavedModel's stepwise `prefill`/`decode` signatures.

An extension of the TF Serving REST API (TF Serving has no streaming): the
server runs the batch-1 `prefill` once and `decode` per token, samples and
yields each token as it is chosen. The loop (and its sampler, the
`generate` signature's own) is `gpt_tf/export/host_loop.py`, shared with the
in-process SavedModel client; text pieces are `gpt_tf.text_stream.StreamDecoder`'s.
"""

import tensorflow as tf

from gpt_tf.errors import UserError
from gpt_tf.export.host_loop import HostDecodeLoop, fit_prompt
from gpt_tf.sampling import Sampler
from gpt_tf.serving.errors import bad_request, not_found
from gpt_tf.text_stream import StreamDecoder

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


def stream_generate(servable, prompt, max_new_tokens, sampler, seed):
    """Yields `{"token_id", "text"}` per new token, then a final summary event."""
    for name in ("prefill", "decode"):
        if name not in servable.signatures:
            raise not_found("this model has no stepwise prefill/decode signatures; re-export it "
                            "with `gpt-tf export savedmodel` to stream")
    tokenizer = servable.host_tokenizer
    meta = servable.metadata
    sequence_length = int(meta.get("model", {}).get("sequence_length", 0))
    if sequence_length - max_new_tokens < 1:
        raise bad_request(f"max_new_tokens must be below the context ({sequence_length})")
    end_of_text = int(meta["tokenizer"]["end_of_text_id"])
    ids, truncated = fit_prompt([end_of_text] + tokenizer.encode(prompt), max_new_tokens,
                                sequence_length)

    def prefill(token_ids):
        out = servable.signatures["prefill"](token_ids=tf.constant([token_ids], tf.int32))
        return out["logits"], out["cache"]

    def decode(token, position, cache):
        out = servable.signatures["decode"](token_id=tf.constant([[token]], tf.int32),
                                            position=tf.constant([position], tf.int32),
                                            cache=cache)
        return out["logits"], out["cache"]

    loop = HostDecodeLoop(prefill, decode, end_of_text, meta.get("jit_compile", True))
    text = StreamDecoder(tokenizer.decode)
    for token in loop.tokens(ids, max_new_tokens, sampler.temperature, sampler.top_k,
                             sampler.top_p, sampler.repetition_penalty, seed):
        yield {"token_id": token, "text": text.push(token)}
    yield {"done": True, "completion": tokenizer.decode(text.ids), "num_tokens": len(text.ids),
           "stop_reason": loop.stop_reason, "prompt_tokens_truncated": truncated}
