"""Pretraining mixtures: plain-text documents from several prepared data sets.

A multi-task model must see during pretraining the text its tasks use (e.g.
French for an English->French translator). `build_mixture` turns the train
and validation splits of prepared sets into one-file-per-document text, the
format `gpt-tf train --data` reads. Test splits are never used.

Documents per task:
- language modelling: each text file as is;
- translation: per book, one document of source verses and one of target
  verses (monolingual: the pairs themselves are left for fine-tuning);
- sentiment: the texts (labels dropped), 500 per document;
- question answering: the distinct contexts, 50 per document.
"""

import json
import os
import shutil

from gpt_tf.datasets import api, registry
from gpt_tf.datasets.loaders import load_sentiment, load_translation_pairs
from gpt_tf.datasets.squad import load_squad
from gpt_tf.errors import UserError
from gpt_tf.textfiles import atomic_directory

_SPLITS = ("train", "validation")


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield start // size, items[start:start + size]


def _write(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def build_mixture(names, out_dir, cache_dir=None, progress=None):
    """Writes `out_dir/{train,validation}/*.txt` from the named prepared sets.

    Args:
        names: prepared data set names (e.g. `["lm-en", "mt-en-fr"]`).
        out_dir: directory to create (must not exist).
        cache_dir: data cache (default `~/.cache/gpt_tf`).
        progress: optional `fn(line)`.

    Returns:
        Counts `{split: {"documents": n, "characters": c}}`, also written to
        `out_dir/mixture.json` with the source cards.
    """
    progress = progress or (lambda line: None)
    if not names:
        raise UserError("name at least one prepared data set to mix, e.g. lm-en mt-en-fr")
    with atomic_directory(out_dir) as tmp:
        for split in _SPLITS:
            os.makedirs(os.path.join(tmp, split))
        sources = {}
        for name in names:
            registry.check_trainable(name, "gpt-tf data mix")
            spec = registry.get_spec(name)
            paths = api.split_paths(name, cache_dir)
            sources[name] = api.load_card(name, cache_dir)
            for split in _SPLITS:
                target = os.path.join(tmp, split)
                prefix = name.replace("/", "_")
                if spec.task == registry.LANGUAGE_MODELING:
                    for file in api.lm_split_files(name, cache_dir)[split]:
                        shutil.copy(file, os.path.join(target, f"{prefix}__{os.path.basename(file)}"))
                elif spec.task == registry.TRANSLATION:
                    load_translation_pairs(paths[split], owner=name)  # validates the file
                    books = {}
                    with open(paths[split], encoding="utf-8") as handle:
                        for line in handle:
                            row = json.loads(line)
                            books.setdefault(row.get("book") or "all", []).append(row)
                    for book, pairs in books.items():
                        slug = "".join(c if c.isalnum() else "_" for c in book)
                        _write(os.path.join(target, f"{prefix}__{slug}__source.txt"),
                               [p["source"] for p in pairs])
                        _write(os.path.join(target, f"{prefix}__{slug}__target.txt"),
                               [p["target"] for p in pairs])
                elif spec.task == registry.SENTIMENT:
                    texts = [e.text for e in load_sentiment(paths[split], owner=name)]
                    for number, chunk in _chunks(texts, 500):
                        _write(os.path.join(target, f"{prefix}__{number:04d}.txt"), chunk)
                elif spec.task == registry.QUESTION_ANSWERING:
                    examples = load_squad(paths[split], owner=name)
                    contexts = list(dict.fromkeys(e.context for e in examples))
                    for number, chunk in _chunks(contexts, 50):
                        _write(os.path.join(target, f"{prefix}__{number:04d}.txt"), chunk)
            progress(f"mixed {name}")
        counts = {}
        for split in _SPLITS:
            files = os.listdir(os.path.join(tmp, split))
            characters = 0
            for file in files:
                with open(os.path.join(tmp, split, file), encoding="utf-8") as handle:
                    characters += len(handle.read())
            counts[split] = {"documents": len(files), "characters": characters}
        with open(os.path.join(tmp, "mixture.json"), "w") as handle:
            json.dump({"sets": list(names), "counts": counts,
                       "sources": {n: {k: c.get(k) for k in ("license", "source", "split_rule")}
                                   for n, c in sources.items()}}, handle, indent=2)
    return counts
