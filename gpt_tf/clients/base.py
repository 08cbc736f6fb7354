"""The one client interface the apps and the evaluation use, whatever the backend."""

import dataclasses

from gpt_tf.text_stream import StreamDecoder  # noqa: F401  (re-exported)
from gpt_tf.validation import (  # noqa: F401  (re-exported: the apps and tests use them here)
    check_sampling,
    check_sampling_values,
    check_seed,
    check_text,
    check_texts,
)


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
