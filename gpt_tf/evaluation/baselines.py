"""Simple baselines the GPT must beat, one per task.

- `UnigramLM`: token frequencies with add-one (Laplace) smoothing over the
  same tokenizer's vocabulary (language modelling).
- `copy_source`: the "translation" is the source sentence (translation).
- `SlidingWindowQA`: the sliding-window lexical-overlap baseline of MCTest
  (Richardson et al., 2013) used by the SQuAD paper: candidate spans are
  scored by the inverse-count-weighted overlap between the question words and
  a window of the passage around them (question answering).
- `MajorityClass` and `BagOfWordsLogisticRegression` (numpy, softmax
  regression on binary word features with L2) (sentiment).
"""

import collections
import math
import re

import numpy as np

from gpt_tf.errors import UserError

# ---- language modelling --------------------------------------------------------------------


class UnigramLM:
    """Unigram model over token ids with add-one smoothing.

    Args:
        vocab_size: size of the tokenizer's vocabulary (every id gets one pseudo-count).
    """

    def __init__(self, vocab_size):
        self.vocab_size = int(vocab_size)
        self.counts = np.zeros(self.vocab_size, np.int64)

    def fit(self, sequences):
        """Counts the ids of `sequences` (lists of ids); returns self."""
        for ids in sequences:
            if len(ids):
                self.counts += np.bincount(np.asarray(ids, np.int64), minlength=self.vocab_size)
        return self

    @property
    def log_probs(self):
        return np.log((self.counts + 1.0) / (self.counts.sum() + self.vocab_size))

    def log_likelihood(self, ids):
        """Sum of log-probabilities (nats) of `ids`."""
        return float(self.log_probs[np.asarray(ids, np.int64)].sum()) if len(ids) else 0.0


# ---- translation ---------------------------------------------------------------------------


def copy_source(sources):
    """The copy baseline: each hypothesis is its source sentence."""
    return list(sources)


# ---- question answering --------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’]\w+)*")
STOPWORDS = frozenset("""
a an the and or but if of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very
can will just should now i me my we our you your he him his she her it its they them their what
which who whom this that these those am is are was were be been being have has had having do does
did doing would could shall may might must o thou thee thy thine ye hath doth art shalt wilt
placeholder
""".split())


class SlidingWindowQA:
    """Sliding-window lexical overlap baseline for extractive QA.

    Every word n-gram of the passage (n <= `max_answer_words`) that neither
    starts nor ends with a stopword and shares no word with the question is a
    candidate. A candidate occurrence scores the best sum, over the windows of
    passage words that contain it, of `log(1 + 1 / count(w))` for each window
    word w that is a question word (count: occurrences in the passage; the
    inverse-count weighting of MCTest). The candidate words themselves do not
    score, so longer spans gain nothing; ties go to the shorter, then the
    earlier span. With `candidates="entities"` (the default, as the CNN/Daily
    Mail and Children's Book Test baselines use entity candidates) only spans
    of name- or number-like words (digits, or capitalised in mid-sentence)
    are candidates when the passage has any.

    Args:
        max_answer_words: longest candidate span in words.
        window_words: window size in words (default: twice the number of
            distinct question content words).
        candidates: `entities` or `all` (every content word n-gram).
    """

    def __init__(self, max_answer_words=3, window_words=0, candidates="entities"):
        if candidates not in ("entities", "all"):
            raise UserError(f"candidates must be 'entities' or 'all', got {candidates!r}")
        self.max_answer_words = int(max_answer_words)
        self.window_words = int(window_words)
        self.candidates = candidates

    @staticmethod
    def _entity_like(context, spans):
        """Words that look like names or numbers: digits, or capitalised mid-sentence."""
        flags = []
        for k, (start, end) in enumerate(spans):
            word = context[start:end]
            before = context[spans[k - 1][1]:start] if k else "."
            sentence_start = k == 0 or re.search(r"[.!?:;]", before) is not None
            flags.append(word[0].isdigit() or (word[0].isupper() and not sentence_start))
        return flags

    def predict(self, context, question):
        """The predicted answer, a slice of `context` (`""` if the passage has no candidate)."""
        spans = [(m.start(), m.end()) for m in _WORD.finditer(context)]
        words = [context[s:e].lower() for s, e in spans]
        if not words:
            return ""
        question_words = {w.lower() for w in _WORD.findall(question)} - STOPWORDS
        counts = collections.Counter(words)
        weight = np.array([math.log(1.0 + 1.0 / counts[w]) for w in words])
        in_question = np.array([w in question_words for w in words])
        base = np.where(in_question, weight, 0.0)
        n = len(words)
        sums = np.concatenate([[0.0], np.cumsum(base)])
        allowed = [True] * n
        if self.candidates == "entities":
            entity = self._entity_like(context, spans)
            if any(e and not q and w not in STOPWORDS
                   for e, q, w in zip(entity, in_question, words)):
                allowed = entity
        best, best_span = None, None
        for i in range(n):
            if words[i] in STOPWORDS or in_question[i] or not allowed[i]:
                continue
            for j in range(i + 1, min(n, i + self.max_answer_words) + 1):
                if in_question[j - 1]:
                    break
                if not allowed[j - 1]:
                    break
                if words[j - 1] in STOPWORDS:
                    continue
                size = min(n, max(j - i, self.window_words or 2 * len(question_words)))
                window = sums[size:] - sums[:-size]  # question weight of the window starting at s
                lo, hi = max(0, j - size), min(i, n - size)
                score = float(window[lo:hi + 1].max()) if hi >= lo else 0.0
                # Higher overlap first, then shorter spans, then earlier ones.
                key = (score, -(j - i))
                if best is None or key > best:
                    best, best_span = key, (spans[i][0], spans[j - 1][1])
        return context[best_span[0]:best_span[1]] if best_span else ""


# ---- sentiment -----------------------------------------------------------------------------


class MajorityClass:
    """Predicts the most frequent training label (ties: the first in sorted order)."""

    def fit(self, labels):
        counts = collections.Counter(labels)
        if not counts:
            raise UserError("no training labels for the majority-class baseline")
        top = max(counts.values())
        self.label = sorted(label for label, c in counts.items() if c == top)[0]
        return self

    def predict(self, texts):
        return [self.label for _ in texts]


def _words(text):
    return {w.lower() for w in _WORD.findall(text)}


class Adam:
    """Adam steps for one numpy parameter (full-batch softmax regressions here and in bench/)."""

    def __init__(self, shape, learning_rate):
        self.m, self.v = np.zeros(shape), np.zeros(shape)
        self.learning_rate, self.steps = learning_rate, 0

    def update(self, grad):
        """The amount to subtract from the parameter for gradient `grad`."""
        self.steps += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        m_hat, v_hat = self.m / (1 - 0.9 ** self.steps), self.v / (1 - 0.999 ** self.steps)
        return self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)


class BagOfWordsLogisticRegression:
    """Softmax regression on binary bag-of-words features (numpy, full-batch Adam, L2).

    Args:
        min_count: words seen in fewer training texts are dropped.
        max_features: keep this many most frequent words.
        l2: L2 penalty on the weights (not the bias).
        epochs: full-batch Adam steps.
        learning_rate: Adam step size.
    """

    def __init__(self, min_count=2, max_features=20000, l2=1e-4, epochs=300,
                 learning_rate=0.05):
        self.min_count = min_count
        self.max_features = max_features
        self.l2 = l2
        self.epochs = epochs
        self.learning_rate = learning_rate

    def _features(self, texts):
        # CSR-like binary matrix: feature 0 is the bias, present in every row.
        rows, cols = [], []
        for row, text in enumerate(texts):
            ids = [0] + sorted(self.vocabulary[w] for w in _words(text) if w in self.vocabulary)
            rows.extend([row] * len(ids))
            cols.extend(ids)
        return np.asarray(rows, np.int64), np.asarray(cols, np.int64)

    def _logits(self, rows, cols, n):
        out = np.zeros((n, self.weights.shape[1]))
        np.add.at(out, rows, self.weights[cols])
        return out

    def fit(self, texts, labels):
        """Trains on `texts` and their `labels`; returns self."""
        if len(texts) != len(labels) or not texts:
            raise UserError("the bag-of-words baseline needs texts with one label each")
        document_frequency = collections.Counter(w for t in texts for w in _words(t))
        kept = [w for w, c in document_frequency.most_common(self.max_features)
                if c >= self.min_count]
        self.vocabulary = {w: i + 1 for i, w in enumerate(sorted(kept))}
        self.labels = sorted(set(labels))
        index = {label: i for i, label in enumerate(self.labels)}
        y = np.array([index[label] for label in labels])
        n, k = len(texts), len(self.labels)
        rows, cols = self._features(texts)
        self.weights = np.zeros((len(self.vocabulary) + 1, k))
        adam = Adam(self.weights.shape, self.learning_rate)
        onehot = np.eye(k)[y]
        penalty = np.ones((len(self.vocabulary) + 1, 1))
        penalty[0] = 0.0
        for _ in range(self.epochs):
            logits = self._logits(rows, cols, n)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            delta = (probs - onehot) / n  # (n, k)
            grad = np.stack([np.bincount(cols, weights=delta[rows, c],
                                         minlength=self.weights.shape[0]) for c in range(k)],
                            axis=1)
            grad += self.l2 * penalty * self.weights
            self.weights -= adam.update(grad)
        return self

    def predict_proba(self, texts):
        rows, cols = self._features(texts)
        logits = self._logits(rows, cols, len(texts))
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, texts):
        if not texts:
            return []
        return [self.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]
