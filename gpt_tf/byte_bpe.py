"""GPT-2 byte-level BPE: the tokenizer of imported GPT-2-family checkpoints.

Host side, the `tokenizers` library (Hugging Face's own implementation, so host
ids are Hugging Face ids). In graph (`tf.data`, SavedModel signatures), the same
algorithm written with TensorFlow and tensorflow-text ops (`gpt_tf/byte_bpe_graph.py`), tested id for id
against the host on text with whitespace runs, tabs, newlines, Chinese, emoji
and control characters (`tests/test_interop.py`).

GPT-2 pre-splits text with a regex whose `\\s+(?!\\S)` needs a lookahead, which
RE2 (TensorFlow's regex engine) lacks. Its effect is that a whitespace run
followed by a non-space gives up its last character to what follows. The graph
path makes that split explicitly (`GraphBytePairTokenizer._words`) and then applies the pattern
without the lookahead, which is exact. keras-hub's BytePairTokenizer
approximates it differently and disagrees with Hugging Face on whitespace runs.
"""

import os

from gpt_tf.errors import UserError
from gpt_tf.files import read_json

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"

# Unicode White_Space: what `\s` means to the `tokenizers` library's regex.
_WS = (r"\t\n\x0b\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
       r"\x{202f}\x{205f}\x{3000}")
WS_RUN = f"[{_WS}]+"
# GPT-2's pre-tokenizer pattern, less the lookahead (see the module docstring).
WORD_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^" + _WS + r"\p{L}\p{N}]+|[" + _WS
         + r"]+")
NO_RANK = 2 ** 31 - 1
# Noncharacters (class Cn, like NUL's Cc for the pattern): U+FDD0 U+FDD2 stands for
# NUL inside the graph, U+FDD0 U+FDD1 for a literal U+FDD0.
NUL_ESCAPE, NUL_MARK, LITERAL_MARK = "\ufdd0", "\ufdd2", "\ufdd1"


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def read_vocab_and_merges(directory, vocab_file=VOCAB_FILE, merges_file=MERGES_FILE):
    """`vocab.json` (token -> id) and `merges.txt` (ordered pairs) of a GPT-2 tokenizer.

    OpenAI's release names the same two files `encoder.json` and `vocab.bpe`.

    Raises:
        UserError: a file is missing, unreadable, or not in GPT-2's format.
    """
    vocab_path = os.path.join(directory, vocab_file)
    merges_path = os.path.join(directory, merges_file)
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            raise UserError(f"'{path}' not found; a GPT-2 tokenizer needs {vocab_file} and "
                            f"{merges_file} side by side")
    vocab = read_json(vocab_path, "restore it from the checkpoint's source")
    if (not isinstance(vocab, dict) or not vocab
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in vocab.values())):
        raise UserError(f"'{vocab_path}' must map tokens to integer ids")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise UserError(f"'{vocab_path}': ids must be 0..{len(vocab) - 1}, each once")
    merges = []
    try:
        with open(merges_path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\n")
                if not line or (number == 1 and line.startswith("#version")):
                    continue
                parts = line.split(" ")
                if len(parts) != 2:
                    raise UserError(f"'{merges_path}' line {number}: expected two tokens "
                                    f"separated by one space, got {line[:60]!r}")
                merges.append((parts[0], parts[1]))
    except UnicodeDecodeError:
        raise UserError(f"'{merges_path}' is not UTF-8 text; restore it from the "
                        "checkpoint's source") from None
    alphabet = set(bytes_to_unicode().values())
    missing = alphabet - set(vocab)
    if missing:
        raise UserError(f"'{vocab_path}' lacks {len(missing)} of the 256 byte symbols "
                        "(e.g. {!r}); not a byte-level BPE vocabulary".format(sorted(missing)[0]))
    seen = set()
    for a, b in merges:
        for token in (a, b, a + b):
            if token not in vocab:
                raise UserError(f"'{merges_path}': merge '{a} {b}' needs '{token}', which is not "
                                f"in {vocab_file}; the two files do not belong together")
        if (a, b) in seen:
            raise UserError(f"'{merges_path}': merge '{a} {b}' is listed twice; each pair "
                            "must have one rank")
        seen.add((a, b))
    return vocab, merges


def host_tokenizer(vocab, merges, special_tokens):
    """A `tokenizers.Tokenizer` with GPT-2's pre-tokenizer and decoder.

    Args:
        vocab: token -> id, special tokens included.
        merges: ordered list of `(left, right)` pairs.
        special_tokens: tokens matched literally before BPE (all in `vocab`).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                  for token in special_tokens])
    for token in special_tokens:
        if tokenizer.token_to_id(token) != vocab[token]:
            raise UserError(f"special token {token!r} does not keep its id {vocab[token]}")
    return tokenizer


def re2_escape(text):
    return "".join("\\" + c if not c.isalnum() and ord(c) < 128 else c for c in text)
