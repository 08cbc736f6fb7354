"""GPT-2's byte-level BPE in graph: TensorFlow and tensorflow-text ops, saveable.

Imported lazily by `gpt_tf.tokenizer.BytePairTokenizer.graph_tokenizer` (the host side needs no
TensorFlow). See `gpt_tf.byte_bpe` for why the pre-tokenizer is written the
way it is.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from gpt_tf.byte_bpe import (
    LITERAL_MARK,
    NO_RANK,
    NUL_ESCAPE,
    NUL_MARK,
    WORD_PATTERN,
    WS_RUN,
    bytes_to_unicode,
    re2_escape,
)


class GraphBytePairTokenizer(tf.Module):
    """In-graph GPT-2 byte-level BPE (tokenize and detokenize), saveable.

    Args:
        vocab: token -> id.
        merges: ordered `(left, right)` pairs; earlier merges apply first.
        special_tokens: tokens matched literally (split out before BPE).
        control_ids: ids that detokenize to '' (padding, end of text).
    """

    def __init__(self, vocab, merges, special_tokens, control_ids):
        super().__init__(name="byte_pair_tokenizer")
        tokens = sorted(vocab, key=vocab.get)
        self._vocab = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(tokens), tf.constant(list(range(len(tokens))), tf.int32)), -1)
        self._ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([f"{a} {b}" for a, b in merges] or [" "]),
                tf.constant(list(range(len(merges))) or [NO_RANK], tf.int32)), NO_RANK)
        byte_map = bytes_to_unicode()
        self._byte_to_char = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([bytes([b]) for b in range(256)]),
                tf.constant([byte_map[b] for b in range(256)])), "")
        self._special = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(special_tokens) or [""]),
                tf.constant([vocab[t] for t in special_tokens] or [-1], tf.int32)), -1)
        self._special_pattern = "|".join(re2_escape(t) for t in
                                         sorted(special_tokens, key=len, reverse=True))
        control = set(int(i) for i in control_ids)
        self._id_to_text = tf.constant(["" if i in control else t
                                        for i, t in enumerate(tokens)])
        char_to_byte = {ord(c): b for b, c in byte_map.items()}
        # Characters outside the byte map (none in a valid vocabulary) become '?'.
        size = max(max(char_to_byte) + 1, max(ord(c) for t in tokens for c in t) + 1)
        self._char_to_byte = tf.constant(
            [char_to_byte.get(i, ord("?")) for i in range(size)], tf.int32)
        self._byte_strings = tf.constant([bytes([b]) for b in range(256)])

    # ---- tokenize ------------------------------------------------------------------

    def tokenize(self, strings):
        """String tensor, scalar or (N,) -> int32 ids, 1-D or ragged (N, None)."""
        strings = tf.convert_to_tensor(strings, tf.string)
        if strings.shape.rank == 0:
            return self.tokenize(strings[tf.newaxis])[0]
        if strings.shape.rank != 1:
            raise ValueError("tokenize takes a scalar or a 1-D string tensor")
        # tensorflow-text's regex_split stops at a NUL character: hide NULs behind
        # two noncharacters (of NUL's regex class) until the pre-tokens are cut.
        strings = tf.strings.regex_replace(strings, NUL_ESCAPE, NUL_ESCAPE + LITERAL_MARK)
        strings = tf.strings.regex_replace(strings, r"\x00", NUL_ESCAPE + NUL_MARK)
        if self._special_pattern:
            segments = tf_text.regex_split(strings, self._special_pattern,
                                           self._special_pattern)
        else:
            segments = tf.RaggedTensor.from_tensor(strings[:, tf.newaxis])
        texts = segments.flat_values
        special_ids = self._special.lookup(texts)
        is_special = special_ids >= 0
        words = self._words(tf.boolean_mask(texts, ~is_special))  # (n_plain, W)
        word_ids = words.with_flat_values(self._bpe(words.flat_values))
        plain_ids = word_ids.merge_dims(1, 2)  # (n_plain, T)
        special_rows = tf.RaggedTensor.from_tensor(
            tf.boolean_mask(special_ids, is_special)[:, tf.newaxis])
        ids = _interleave_rows(is_special, special_rows, plain_ids)  # (n_segments, T)
        return segments.with_flat_values(ids).merge_dims(1, 2)

    def _words(self, texts):
        """(n,) text without special tokens -> (n, W) pre-tokens, as GPT-2 splits them."""
        runs = tf_text.regex_split(texts, WS_RUN, WS_RUN)
        values = runs.flat_values
        rows = runs.value_rowids()
        is_ws = tf.strings.regex_full_match(values, WS_RUN)
        same_row_next = tf.concat([tf.equal(rows[1:], rows[:-1]), [False]], 0)
        next_is_word = same_row_next & tf.concat([~is_ws[1:], [False]], 0)
        # A whitespace run followed by a word gives its last character to the word.
        gives = is_ws & next_is_word
        receives = tf.concat([[False], gives[:-1]], 0)
        length = tf.strings.length(values, unit="UTF8_CHAR")
        head = tf.strings.substr(values, tf.zeros_like(length), length - 1, unit="UTF8_CHAR")
        last = tf.strings.substr(values, length - 1, tf.ones_like(length), unit="UTF8_CHAR")
        previous_last = tf.concat([[""], last[:-1]], 0)
        pieces = tf.where(gives, head, tf.where(receives, previous_last + values, values))
        keep = tf.not_equal(pieces, "")
        pieces = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(pieces, keep), tf.boolean_mask(rows, keep),
            nrows=tf.shape(texts, out_type=tf.int64)[0])
        words = tf_text.regex_split(pieces.flat_values, WORD_PATTERN, WORD_PATTERN)
        return pieces.with_flat_values(words).merge_dims(1, 2)

    def _bpe(self, words):
        """(n,) pre-tokens -> (n, T) int32 ids: bytes to symbols, then merges by rank."""
        words = tf.strings.regex_replace(words, NUL_ESCAPE + NUL_MARK, "\x00")
        words = tf.strings.regex_replace(words, NUL_ESCAPE + LITERAL_MARK, NUL_ESCAPE)
        symbols = tf.ragged.map_flat_values(self._byte_to_char.lookup,
                                            tf.strings.bytes_split(words))
        values, splits = symbols.flat_values, symbols.row_splits

        def merge(values, splits, _):
            rows = tf.ragged.row_splits_to_segment_ids(splits)
            n_rows = tf.shape(splits)[0] - 1
            pair_rows = rows[:-1]
            ranks = self._ranks.lookup(tf.strings.join([values[:-1], values[1:]], " "))
            ranks = tf.where(tf.equal(rows[1:], pair_rows), ranks, NO_RANK)
            best = tf.math.unsorted_segment_min(ranks, pair_rows, tf.cast(n_rows, rows.dtype))
            # Ranks are unique per pair, so equal rank means the same pair.
            hit = (ranks < NO_RANK) & tf.equal(ranks, tf.gather(best, pair_rows))
            # Overlapping hits (a pair of equal symbols repeated): left to right, every
            # other one, as GPT-2's loop merges them.
            starts = hit & ~tf.concat([[False], hit[:-1]], 0)
            run = tf.cumsum(tf.cast(starts, tf.int32)) - 1
            position = tf.range(tf.size(hit))
            # (A trailing 0 keeps the gather valid when nothing merges.)
            start_position = tf.gather(
                tf.concat([tf.boolean_mask(position, starts), [0]], 0), tf.maximum(run, 0))
            merge_here = hit & tf.equal((position - start_position) % 2, 0)
            merge_at = tf.concat([merge_here, [False]], 0)
            drop = tf.concat([[False], merge_here], 0)
            following = tf.concat([values[1:], [""]], 0)
            merged = tf.where(merge_at, values + following, values)
            keep = ~drop
            new_rows = tf.boolean_mask(rows, keep)
            new_splits = tf.concat(
                [tf.zeros([1], splits.dtype), tf.cumsum(tf.math.bincount(tf.cast(new_rows, tf.int32),
                                                 minlength=n_rows, maxlength=n_rows,
                                                 dtype=splits.dtype))], 0)
            return tf.boolean_mask(merged, keep), new_splits, tf.reduce_any(merge_here)

        values, splits, _ = tf.while_loop(
            lambda v, s, go: go, merge, (values, splits, tf.constant(True)),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([])))
        return tf.RaggedTensor.from_row_splits(self._vocab.lookup(values), splits)

    # ---- detokenize ----------------------------------------------------------------

    def detokenize(self, ids):
        """Int ids, ragged or dense, (N, T) or (T,) -> strings (N,) or a scalar.

        Padding and end-of-text decode to ''. A byte sequence cut inside a
        character decodes to U+FFFD, as on the host.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
            if ids.shape.rank == 1:
                return self.detokenize(ids[tf.newaxis])[0]
            ids = tf.RaggedTensor.from_tensor(ids)
        pieces = tf.gather(self._id_to_text, tf.cast(ids, tf.int32))
        text = tf.strings.reduce_join(pieces, axis=-1)
        chars = tf.strings.unicode_decode(text, "UTF-8")
        byte_values = tf.gather(self._char_to_byte, chars)
        raw = tf.strings.reduce_join(tf.gather(self._byte_strings, byte_values), axis=-1)
        return tf.strings.unicode_transcode(raw, "UTF-8", "UTF-8", errors="replace",
                                            replacement_char=0xFFFD)


def _interleave_rows(mask, true_rows, false_rows):
    """Rows in `mask` order: row i from `true_rows` where mask[i], else from `false_rows`."""
    as_int = tf.cast(mask, tf.int32)
    n_true = tf.reduce_sum(as_int)
    index = tf.where(mask, tf.cumsum(as_int) - 1, n_true + tf.cumsum(1 - as_int) - 1)
    both = tf.concat([true_rows, tf.cast(false_rows, true_rows.dtype)], axis=0)
    return tf.gather(both, index)
