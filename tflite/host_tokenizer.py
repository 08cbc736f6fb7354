"""Host-side tokenization for exports, without TensorFlow or gpt_tf.

An export directory holds either `tokenizer.model` (SentencePiece, what gpt-tf
trains) or `bpe_tokenizer.json` (GPT-2's byte-level BPE of an imported
checkpoint, in the `tokenizers` library's own format). Both read the same way.
"""

import os

SENTENCEPIECE_FILE = "tokenizer.model"
BPE_FILE = "bpe_tokenizer.json"
TOKENIZER_FILES = (SENTENCEPIECE_FILE, BPE_FILE)


class HostTokenizer:
    """`encode`/`decode`/`vocab_size` over either tokenizer file.

    Args:
        path: a `tokenizer.model` or a `bpe_tokenizer.json`.
        control_ids: ids that decode to '' (padding, end of text); SentencePiece
            knows its own.
    """

    def __init__(self, path, control_ids=()):
        self.path = path
        self.control_ids = frozenset(int(i) for i in control_ids)
        if os.path.basename(path) == BPE_FILE:
            from tokenizers import Tokenizer

            self._bpe = Tokenizer.from_file(path)
            self._sp = None
            self.vocab_size = self._bpe.get_vocab_size(with_added_tokens=True)
        else:
            import sentencepiece as spm

            self._bpe = None
            self._sp = spm.SentencePieceProcessor()
            self._sp.LoadFromFile(path)
            self.vocab_size = self._sp.GetPieceSize()

    def encode(self, text):
        """Text -> list of ids (no end-of-text added)."""
        if self._bpe is not None:
            return self._bpe.encode(text).ids
        return self._sp.EncodeAsIds(text)

    def decode(self, ids):
        """Ids -> text; control ids decode to ''."""
        ids = [int(i) for i in ids]
        if self._bpe is not None:
            return self._bpe.decode([i for i in ids if i not in self.control_ids],
                                    skip_special_tokens=False)
        return self._sp.DecodeIds(ids)


def find_tokenizer_file(directory):
    """The tokenizer file in an export directory, or None."""
    for name in TOKENIZER_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None
