"""Tokenizers: one interface over SentencePiece and GPT-2's byte-level BPE.

`load_tokenizer(directory)` returns either kind; both offer `encode`/`decode`
on the host, `tokenize`/`detokenize` in graph, the special ids, `save(dir)`
and `save_host(dir)` (what the TFLite runner and the servers read without
gpt_tf). Imported GPT-2-family checkpoints bring their BPE
(`gpt_tf.byte_bpe`); everything gpt-tf trains itself uses SentencePiece.

SentencePiece: one `.model` file drives both sides: the `sentencepiece` package on the host
(the TFLite runner needs nothing else) and `tensorflow_text` in-graph (inside
`tf.data` and exported SavedModels). Normalisation is `identity` and no dummy
prefix is added, so any UTF-8 text (whitespace runs, Chinese, emoji) round-trips
exactly; byte fallback covers characters outside the vocabulary.
"""

import json
import os
import shutil
import tempfile

import sentencepiece as spm

from gpt_tf.errors import UserError
from gpt_tf.textfiles import check_text_file

PAD = "<|pad|>"
UNK = "<|unk|>"
END_OF_TEXT = "<|endoftext|>"
# Task separators: user-defined symbols, so they are matched when they appear
# literally in a prompt string (the in-graph string->string signatures rely on it).
SEPARATORS = (
    "<|sep|>",
    "<|source|>",
    "<|target|>",
    "<|context|>",
    "<|question|>",
    "<|answer|>",
    "<|text|>",
    "<|label|>",
)
CONTROL_TOKENS = (PAD, END_OF_TEXT)
MODEL_FILE = "tokenizer.model"
META_FILE = "tokenizer.json"
# A standalone host tokenizer for byte-level BPE exports: the `tokenizers` library's
# own JSON, which carries the pre-tokenizer, the merges and the special tokens.
HOST_BPE_FILE = "bpe_tokenizer.json"
SENTENCEPIECE = "sentencepiece"
BYTE_BPE = "byte_bpe"


def load_tokenizer(directory):
    """The tokenizer saved in a run (or export) directory, of either kind.

    Raises:
        UserError: the directory holds no tokenizer, or a damaged one.
    """
    meta_path = os.path.join(directory, META_FILE)
    kind = SENTENCEPIECE
    if os.path.isfile(meta_path):
        try:
            with open(meta_path, encoding="utf-8") as handle:
                kind = json.load(handle).get("kind", SENTENCEPIECE)
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise UserError(f"'{meta_path}' is not valid JSON; restore the run's tokenizer "
                            "files") from None
    if kind == BYTE_BPE:
        return BytePairTokenizer(directory)
    if kind != SENTENCEPIECE:
        raise UserError(f"'{meta_path}' names tokenizer kind {kind!r}; this gpt-tf reads "
                        f"'{SENTENCEPIECE}' and '{BYTE_BPE}'")
    return Tokenizer.from_dir(directory)


def train_tokenizer(files, output_dir, vocab_size=8192, model_type="bpe",
                    max_sentences=2_000_000):
    """Trains a SentencePiece model on text files.

    Args:
        files: list of UTF-8 text file paths.
        output_dir: directory that receives `tokenizer.model` and `tokenizer.json`.
        vocab_size: total vocabulary, special tokens and 256 byte pieces included.
        model_type: `bpe` or `unigram`.
        max_sentences: lines sampled for training (bounds memory on big corpora).

    Returns:
        The trained `Tokenizer`.
    """
    if not files:
        raise UserError("no input files given to train the tokenizer; pass text files or a directory")
    for path in files:
        check_text_file(path)
    if model_type not in ("bpe", "unigram"):
        raise UserError(f"tokenizer model type must be 'bpe' or 'unigram', got '{model_type}'")
    minimum = 3 + len(SEPARATORS) + 256 + 1
    if vocab_size < minimum:
        raise UserError(f"vocab size {vocab_size} is too small; use at least {minimum}")
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir) as tmp:
        prefix = os.path.join(tmp, "sp")
        try:
            spm.SentencePieceTrainer.train(
                input=list(files),
                model_prefix=prefix,
                vocab_size=vocab_size,
                model_type=model_type,
                byte_fallback=True,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                split_digits=True,
                allow_whitespace_only_pieces=True,
                character_coverage=0.9995,
                input_sentence_size=max_sentences,
                shuffle_input_sentence=True,
                max_sentence_length=1 << 14,
                pad_id=0, pad_piece=PAD,
                unk_id=1, unk_piece=UNK,
                eos_id=2, eos_piece=END_OF_TEXT,
                bos_id=-1,
                user_defined_symbols=list(SEPARATORS),
                hard_vocab_limit=True,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as error:
            message = str(error)
            if "Vocabulary size too high" in message or "vocab_size" in message:
                raise UserError(
                    f"the corpus is too small for a vocabulary of {vocab_size}: {message.strip()}; "
                    "lower --vocab-size or add text"
                ) from None
            raise UserError(f"tokenizer training failed: {message.strip()}") from None
        model_path = os.path.join(output_dir, MODEL_FILE)
        os.replace(prefix + ".model", model_path)
    tokenizer = Tokenizer(model_path)
    tokenizer.save_metadata(output_dir)
    return tokenizer


class Tokenizer:
    """Host-side SentencePiece tokenizer with in-graph twins.

    Args:
        model_path: path of a `tokenizer.model` trained by `train_tokenizer`.
    """

    kind = SENTENCEPIECE

    def __init__(self, model_path):
        if not os.path.isfile(model_path):
            raise UserError(f"tokenizer model '{model_path}' not found; train one with `gpt-tf tokenizer train`")
        with open(model_path, "rb") as handle:
            self.proto = handle.read()
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(self.proto)
        except RuntimeError:
            raise UserError(f"tokenizer model '{model_path}' is corrupt; retrain it") from None
        self.model_path = model_path
        self.vocab_size = self.processor.GetPieceSize()
        self.pad_id = self.processor.pad_id()
        self.end_of_text_id = self.processor.eos_id()
        self.separator_ids = {s: self.processor.PieceToId(s) for s in SEPARATORS}

    @classmethod
    def from_dir(cls, directory):
        return cls(os.path.join(directory, MODEL_FILE))

    def fingerprint(self):
        """Bytes that are equal exactly when two tokenizers are the same."""
        return self.proto

    def save(self, directory):
        """Writes this tokenizer's files into `directory` (a run or an export)."""
        target = os.path.join(directory, MODEL_FILE)
        if os.path.abspath(target) != os.path.abspath(self.model_path):
            shutil.copyfile(self.model_path, target)
        self.save_metadata(directory)

    def save_host(self, directory):
        """Writes the file a host without gpt_tf tokenizes with; returns its name."""
        shutil.copyfile(self.model_path, os.path.join(directory, MODEL_FILE))
        return MODEL_FILE

    def save_metadata(self, directory):
        _write_metadata(directory, self)

    def encode(self, text):
        """Text (str or list of str) -> list of ids (or list of lists)."""
        return self.processor.EncodeAsIds(text)

    def decode(self, ids):
        """Ids -> text. Special control ids (pad, end-of-text) decode to ''."""
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.processor.DecodeIds([int(i) for i in row]) for row in ids]
        return self.processor.DecodeIds([int(i) for i in ids])

    def id_to_piece(self, token_id):
        return self.processor.IdToPiece(int(token_id))

    @property
    def graph_tokenizer(self):
        """A new `tensorflow_text.SentencepieceTokenizer` over the same model.

        Not cached: its model resource belongs to the graph (or eager context)
        it is first used in, so one created inside a `tf.data` function cannot
        be reused eagerly afterwards ("Resource ... SentencepieceOp does not
        exist"). Building one takes about a millisecond.
        """
        import tensorflow_text as tf_text

        return tf_text.SentencepieceTokenizer(
            model=self.proto, out_type="int32", add_bos=False, add_eos=False)

    def tokenize(self, strings):
        """In-graph: string tensor (any shape) -> int32 ragged ids."""
        return self.graph_tokenizer.tokenize(strings)

    def detokenize(self, ids):
        """In-graph: int ids (ragged or dense) -> strings."""
        return self.graph_tokenizer.detokenize(ids)


class BytePairTokenizer:
    """GPT-2 byte-level BPE (imported checkpoints), the same interface as `Tokenizer`.

    A directory holds GPT-2's `vocab.json` and `merges.txt` (gpt-tf's special
    tokens appended to the vocabulary when they were missing) and `tokenizer.json`,
    gpt-tf's metadata naming the special tokens.

    Args:
        directory: a run or export directory written by `save`.
    """

    kind = BYTE_BPE

    def __init__(self, directory):
        from gpt_tf import byte_bpe

        meta_path = os.path.join(directory, META_FILE)
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
            specials = meta["special_tokens"]
            self.pad_token, self.end_of_text_token = specials["pad"], specials["end_of_text"]
            separators = specials["separators"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"'{meta_path}' does not describe a byte-level BPE tokenizer "
                            f"({error}); re-import the checkpoint") from None
        self.directory = directory
        self.vocab, self.merges = byte_bpe.read_vocab_and_merges(directory)
        self.special_tokens = [self.pad_token, self.end_of_text_token] + list(separators)
        for token in self.special_tokens:
            if token not in self.vocab:
                raise UserError(f"special token {token!r} is not in "
                                f"'{os.path.join(directory, byte_bpe.VOCAB_FILE)}'")
        self.host = byte_bpe.host_tokenizer(self.vocab, self.merges, self.special_tokens)
        self.vocab_size = len(self.vocab)
        self.pad_id = self.vocab[self.pad_token]
        self.end_of_text_id = self.vocab[self.end_of_text_token]
        if len(separators) != len(SEPARATORS):
            raise UserError(f"'{meta_path}' lists {len(separators)} task separators; gpt-tf "
                            f"needs {len(SEPARATORS)}; re-import the checkpoint")
        self.separator_ids = {s: self.vocab[t] for s, t in zip(SEPARATORS, separators)}
        self._control_ids = {self.pad_id, self.end_of_text_id}
        self._pieces = sorted(self.vocab, key=self.vocab.get)

    @classmethod
    def from_dir(cls, directory):
        return cls(directory)

    def fingerprint(self):
        return json.dumps([self.vocab, self.merges, self.special_tokens],
                          sort_keys=True).encode("utf-8")

    def save(self, directory):
        from gpt_tf import byte_bpe

        for name in (byte_bpe.VOCAB_FILE, byte_bpe.MERGES_FILE):
            target = os.path.join(directory, name)
            if os.path.abspath(target) != os.path.abspath(os.path.join(self.directory, name)):
                shutil.copyfile(os.path.join(self.directory, name), target)
        self.save_metadata(directory)

    def save_host(self, directory):
        """Writes the `tokenizers` library's own JSON (`HOST_BPE_FILE`); returns its name."""
        self.host.save(os.path.join(directory, HOST_BPE_FILE))
        return HOST_BPE_FILE

    def save_metadata(self, directory):
        _write_metadata(directory, self, special_tokens={
            "pad": self.pad_token, "end_of_text": self.end_of_text_token,
            "separators": [self._pieces[self.separator_ids[s]] for s in SEPARATORS]})

    def encode(self, text):
        """Text (str or list of str) -> list of ids (or list of lists)."""
        if isinstance(text, str):
            return self.host.encode(text).ids
        return [encoding.ids for encoding in self.host.encode_batch(list(text))]

    def decode(self, ids):
        """Ids -> text. Padding and end-of-text decode to ''."""
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.decode(row) for row in ids]
        kept = [int(i) for i in ids if int(i) not in self._control_ids]
        return self.host.decode(kept, skip_special_tokens=False)

    def id_to_piece(self, token_id):
        return self._pieces[int(token_id)]

    @property
    def graph_tokenizer(self):
        """A new in-graph tokenizer module (`gpt_tf.byte_bpe_graph`), saveable in a SavedModel."""
        from gpt_tf.byte_bpe_graph import GraphBytePairTokenizer

        return GraphBytePairTokenizer(self.vocab, self.merges, self.special_tokens,
                                      sorted(self._control_ids))

    def tokenize(self, strings):
        return self.graph_tokenizer.tokenize(strings)

    def detokenize(self, ids):
        return self.graph_tokenizer.detokenize(ids)


def _write_metadata(directory, tokenizer, **extra):
    """`tokenizer.json`: the kind, the vocabulary size and the special ids (+ `extra`)."""
    meta = {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "pad_id": tokenizer.pad_id, "end_of_text_id": tokenizer.end_of_text_id,
            "separators": tokenizer.separator_ids, **extra}
    with open(os.path.join(directory, META_FILE), "w") as handle:
        json.dump(meta, handle, indent=2)
