"""TFLite backend: a `.tflite` export through the on-device runner in `tflite/`.

The runner (`tflite.runtime.TFLiteLM`) needs only numpy, `ai_edge_litert`
and `sentencepiece`; tokenization stays on the host, next to the model.
"""

import os
import sys

from gpt_tf.clients.base import Client, Completion
from gpt_tf.errors import UserError
from gpt_tf.text_stream import StreamDecoder


def _runtime():
    try:
        from tflite import runtime

        return runtime
    except ImportError:
        pass
    # `tflite/` sits at the repository root, beside `gpt_tf/`: importable when
    # running from the repository; found here for an installed (editable) gpt_tf.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.isfile(os.path.join(root, "tflite", "runtime.py")):
        raise UserError("the TFLite runner (the repository's tflite/ package) cannot be "
                        "imported; run from the repository root")
    stale = sys.modules.get("tflite")
    if stale is not None and getattr(stale, "__file__", None) is None:
        # A folder of exports named tflite/ in the working directory was taken
        # for a namespace package; forget it.
        del sys.modules["tflite"]
    sys.path.insert(0, root)
    from tflite import runtime

    return runtime


class TFLiteClient(Client):
    """A TFLite export directory (`tflite/NAME/`) or its `model.tflite` file.

    Args:
        path: the directory or the `.tflite` file (with `meta.json` and
            `tokenizer.model` beside it).
        num_threads: interpreter threads (default: LiteRT's choice).
    """

    backend = "tflite"

    def __init__(self, path, num_threads=None):
        from gpt_tf.task_card import read_task_card

        runtime = _runtime()
        model_dir = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else path
        if os.path.isfile(path) and os.path.basename(path) != runtime.MODEL_FILE:
            raise UserError(f"'{path}': the runner reads '{runtime.MODEL_FILE}' from an export "
                            f"directory; pass the directory written by `gpt-tf export tflite`")
        try:
            self.lm = runtime.TFLiteLM(model_dir, num_threads=num_threads)
        except (runtime.ModelDirError, ValueError) as error:
            raise UserError(str(error)) from None
        meta = self.lm.meta
        card = meta.get("task_card") if isinstance(meta.get("task_card"), dict) else None
        source = (meta.get("source") or {}).get("run_dir")
        card = card or read_task_card(model_dir) or (read_task_card(source) if source else None)
        L = self.lm.max_length
        super().__init__(model_dir, L, max(1, L // 2), card)
        self.backend = f"tflite-{self.lm.quantization}" if self.lm.quantization else "tflite"
        self.runtime = runtime
        self.vocab_size = self.lm.vocab_size

    def _tokenize(self, texts):
        return [self.lm.encode(t) for t in texts]

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                  seed, stream):
        sampler = self.runtime.Sampler(temperature, top_k, top_p, repetition_penalty)
        eot = self.lm.end_of_text_id
        completions = []
        for row, prompt in enumerate(prompts):
            on_token = None
            if stream is not None:
                decoder = StreamDecoder(self.lm.decode_text)

                def on_token(token, decoder=decoder, row=row):
                    piece = decoder.push(token)
                    if piece:
                        stream(row, piece)

            try:
                result = self.lm.generate([eot] + self.lm.encode(prompt), max_new_tokens,
                                          sampler, seed, on_token=on_token)
            except self.runtime.ModelInputError as error:
                raise UserError(str(error)) from None
            text = self.lm.decode_text(result.token_ids)
            rest = decoder.finish(text) if stream is not None else ""
            if rest:
                stream(row, rest)
            completions.append(Completion(text, len(result.token_ids), result.stop_reason,
                                          result.prompt_tokens_truncated))
        return completions

    def _log_likelihood(self, ids):
        return self.lm.log_likelihood(ids)[0] if len(ids) >= 2 else 0.0

    def _score(self, prompt, continuations):
        L = self.sequence_length
        prompt_ids = [self.lm.end_of_text_id] + self.lm.encode(prompt)
        cached = {}
        scores = []
        for cont in self._tokenize(continuations):
            cont = cont[:L - 1]
            head = prompt_ids[-(L - len(cont)):]
            if len(head) not in cached:
                cached[len(head)] = self._log_likelihood(head)
            scores.append(self._log_likelihood(head + cont) - cached[len(head)])
        return scores
