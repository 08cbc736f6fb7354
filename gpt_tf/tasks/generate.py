"""Free text generation over any client (sampling options, streaming)."""

from gpt_tf.validation import check_texts


def generate(client, prompts, max_new_tokens=64, temperature=0.8, top_k=40, top_p=1.0,
             repetition_penalty=1.0, seed=0, stream=None):
    """Continues prompts (see `gpt_tf.clients.Client.generate`).

    Prompts longer than the window keep their last tokens
    (`Completion.prompt_tokens_truncated` says how many were dropped).

    Returns:
        A list of `Completion`.
    """
    prompts = check_texts(prompts)
    return client.generate(prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
                           seed=seed, stream=stream)
