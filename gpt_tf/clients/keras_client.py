"""Keras backend: a run directory, in process (`load_model` + `Generator`)."""

import numpy as np

from gpt_tf.clients.base import Client, Completion
from gpt_tf.text_stream import StreamDecoder

# Score batches are padded to these sizes (rows) and to multiples of
# `_LENGTH_BUCKET` (positions), so a few compiled programs serve every call.
_ROW_BUCKETS = (1, 2, 4, 8)
_LENGTH_BUCKET = 32


class KerasClient(Client):
    """A trained run directory.

    Args:
        run_dir: the run (`gpt-tf train` or `gpt-tf finetune`).
        checkpoint: `final`, `latest` or `best`.
        jit_compile: compile generation and scoring with XLA.
    """

    backend = "keras"

    def __init__(self, run_dir, checkpoint="final", jit_compile=True):
        from gpt_tf.generation import Generator
        from gpt_tf.task_card import read_task_card
        from gpt_tf.training import load_model

        model, tokenizer, config = load_model(run_dir, checkpoint)
        L = config.model.sequence_length
        super().__init__(run_dir, L, max(1, L // 2), read_task_card(run_dir))
        self.model = model
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.generator = Generator(model, jit_compile=jit_compile)
        self.jit_compile = jit_compile
        self._forward = None

    def _tokenize(self, texts):
        return self.tokenizer.encode(list(texts)) if texts else []

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                  seed, stream):
        from gpt_tf.sampling import Sampler

        tokenizer = self.tokenizer
        eot = tokenizer.end_of_text_id
        sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p,
                          repetition_penalty=repetition_penalty)
        ids = [[eot] + row for row in self._tokenize(prompts)]
        on_token = None
        if stream is not None:
            decoders = [StreamDecoder(tokenizer.decode) for _ in prompts]

            def on_token(step, tokens):
                for row, token in enumerate(tokens):
                    if token is None or token == eot:
                        continue
                    piece = decoders[row].push(token)
                    if piece:
                        stream(row, piece)

        result = self.generator.generate(ids, max_new_tokens, sampler, seed, [eot], on_token)
        completions = []
        for row, new in enumerate(result.token_ids):
            text = tokenizer.decode(new)
            rest = decoders[row].finish(text) if stream is not None else ""
            if rest:
                stream(row, rest)
            completions.append(Completion(text, len(new), result.stop_reasons[row],
                                          result.truncated_prompts[row]))
        return completions

    def _log_probs(self):
        if self._forward is None:
            import tensorflow as tf

            model = self.model

            @tf.function(jit_compile=self.jit_compile, reduce_retracing=True)
            def forward(token_ids):
                logits = model(token_ids, training=False)  # (B, T, V)
                log_probs = tf.nn.log_softmax(logits[:, :-1], axis=-1)
                return tf.gather(log_probs, token_ids[:, 1:, None], batch_dims=2)[:, :, 0]

            self._forward = forward
        return self._forward

    def _score(self, prompt, continuations):
        eot = self.tokenizer.end_of_text_id
        L = self.sequence_length
        prompt_ids = [eot] + self._tokenize([prompt])[0]
        rows, spans = [], []
        for cont in self._tokenize(continuations):
            cont = cont[:L - 1]  # a continuation longer than the window: its head
            head = prompt_ids[-(L - len(cont)):]
            rows.append(head + cont)
            spans.append((len(head), len(head) + len(cont)))
        return self._score_rows(rows, spans)

    def _score_rows(self, rows, spans):
        import tensorflow as tf

        forward = self._log_probs()
        scores = []
        for first in range(0, len(rows), _ROW_BUCKETS[-1]):
            chunk = rows[first:first + _ROW_BUCKETS[-1]]
            batch = next(b for b in _ROW_BUCKETS if b >= len(chunk))
            width = min(self.sequence_length,
                        -(-max(len(r) for r in chunk) // _LENGTH_BUCKET) * _LENGTH_BUCKET)
            width = max(width, 2)
            ids = np.zeros((batch, width), np.int32)
            for i, row in enumerate(chunk):
                ids[i, :len(row)] = row
            picked = forward(tf.constant(ids)).numpy()  # (batch, width - 1)
            for i, (start, end) in enumerate(spans[first:first + len(chunk)]):
                # Token at position p is predicted by log-probs at p - 1.
                scores.append(float(picked[i, start - 1:end - 1].sum()))
        return scores
