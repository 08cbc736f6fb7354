"""Loaders of user data (text, translation, sentiment, SQuAD): good files load, bad ones say where."""

import ast
import json
from pathlib import Path

import pytest

from gpt_tf.datasets import (
    SentimentExample,
    TranslationPair,
    load_sentiment,
    load_squad,
    load_text_files,
    load_translation_pairs,
)
from gpt_tf.datasets.squad import squad_json, write_squad
from gpt_tf.errors import UserError

FIXTURES = Path(__file__).parent / "data" / "datasets"
PACKAGE = Path(__file__).parent.parent / "gpt_tf" / "datasets"


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_no_module_imports_tensorflow_or_keras():
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"tensorflow", "keras", "keras_hub"}, (
                    f"{module.name} imports {name}"
                )


# Plain text ---------------------------------------------------------------------------------------


def test_load_text_files_reads_directories_recursively_and_skips_hidden(tmp_path):
    write(tmp_path / "b.txt", "second\n")
    write(tmp_path / "sub" / "a.txt", "\ufefffirst\r\nline\n")
    write(tmp_path / ".hidden" / "x.txt", "never")
    write(tmp_path / ".notes.txt", "never")
    assert load_text_files(tmp_path) == ["second\n", "first\nline\n"]
    assert load_text_files([tmp_path / "b.txt"]) == ["second\n"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "is empty"),
        (b"  \n\n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"caf\xe9 au lait\n", "not valid UTF-8 (line 1"),
        (b"ok\nfine\n\xff\xfe bad\n", "line 3"),
    ],
)
def test_load_text_files_rejects_bad_files_with_the_file_name(tmp_path, content, expected):
    path = write(tmp_path / "doc.txt", content)
    with pytest.raises(UserError, match="doc.txt") as error:
        load_text_files(path)
    assert expected in str(error.value)


def test_load_text_files_rejects_missing_and_empty_inputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_text_files(tmp_path / "nope.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no text files"):
        load_text_files(tmp_path / "empty")


# Translation pairs ---------------------------------------------------------------------------------


def test_translation_fixtures_load_in_both_formats():
    tsv = load_translation_pairs(FIXTURES / "pairs.tsv")
    assert len(tsv) == 3  # header and blank line skipped
    assert tsv[2] == TranslationPair("Jesus wept.", "Jésus pleura.")
    jsonl = load_translation_pairs(FIXTURES / "pairs.jsonl")
    assert jsonl[0] == tsv[0]
    assert jsonl[1] == TranslationPair("Jesus wept.", "Jésus pleura.")  # extra fields ignored


@pytest.mark.parametrize(
    "name, content, expected",
    [
        (
            "p.tsv",
            "a\tb\nonly one field\n",
            "line 2: expected 2 tab-separated fields (source, target), found 1",
        ),
        ("p.tsv", "a\tb\nx\t \n", "line 2: field 'target' is empty"),
        (
            "p.jsonl",
            '{"source": "a", "target": "b"}\n{"source": "a"}\n',
            "line 2: field 'target' is missing",
        ),
        (
            "p.jsonl",
            '{"source": "a", "target": "b"}\n\n{"source": 3, "target": "b"}\n',
            "line 3: field 'source' must be a string",
        ),
        ("p.jsonl", '{"source": "a", "target": "b"\n', "line 1: invalid JSON"),
        ("p.jsonl", '["a", "b"]\n', "line 1: expected a JSON object"),
        ("p.data", "a\tb\n", "cannot tell the format"),
    ],
)
def test_malformed_translation_rows_name_file_line_and_field(tmp_path, name, content, expected):
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as error:
        load_translation_pairs(path)
    assert name in str(error.value) and expected in str(error.value)


def test_translation_file_with_only_a_header_is_an_error(tmp_path):
    with pytest.raises(UserError, match="holds no translation pairs"):
        load_translation_pairs(write(tmp_path / "p.tsv", "source\ttarget\n"))


# Sentiment --------------------------------------------------------------------------------------------


def test_sentiment_fixtures_load_and_labels_become_strings():
    jsonl = load_sentiment(FIXTURES / "sentiment.jsonl")
    assert [e.label for e in jsonl] == ["positive", "negative", "0"]
    csv_rows = load_sentiment(FIXTURES / "sentiment.csv")
    assert csv_rows[0] == SentimentExample("a gorgeous, witty, seductive movie.", "positive")
    assert csv_rows[2].text == "The film opens on Friday, in 300 theatres."


@pytest.mark.parametrize(
    "name, content, expected",
    [
        (
            "s.jsonl",
            '{"text": "good", "label": true}\n',
            "line 1: field 'label' must be a string or an integer",
        ),
        (
            "s.jsonl",
            '{"text": "good", "label": "p"}\n{"label": "n"}\n',
            "line 2: field 'text' is missing",
        ),
        ("s.csv", "text,score\nnice,1\n", "the header must name the columns 'text' and 'label'"),
        ("s.csv", "text,label\nnice,positive\nbad\n", "line 3: expected 2 columns, found 1"),
        ("s.csv", 'text,label\n"nice",positive\n"",negative\n', "line 3: field 'text' is empty"),
    ],
)
def test_malformed_sentiment_rows_name_file_line_and_field(tmp_path, name, content, expected):
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as error:
        load_sentiment(path)
    assert name in str(error.value) and expected in str(error.value)


# SQuAD ----------------------------------------------------------------------------------------------


def test_load_squad_reads_the_fixture_with_exact_spans():
    examples = load_squad(FIXTURES / "squad_small.json")
    assert [e.id for e in examples] == [
        "globe-1",
        "globe-2",
        "globe-3",
        "globe-4",
        "segond-1",
        "segond-2",
    ]
    two = examples[1]
    assert two.title == "Globe_Theatre" and len(two.answers) == 2
    for example in examples:
        for answer in example.answers:
            assert (
                example.context[answer.answer_start : answer.answer_start + len(answer.text)]
                == answer.text
            )


def test_write_squad_round_trips(tmp_path):
    examples = load_squad(FIXTURES / "squad_small.json")
    write_squad(examples, tmp_path / "out.json")
    assert load_squad(tmp_path / "out.json") == examples
    document = squad_json(examples)
    assert document["version"] == "1.1"
    assert [len(a["paragraphs"]) for a in document["data"]] == [2, 1]


def _squad_with(mutate):
    document = json.loads((FIXTURES / "squad_small.json").read_text(encoding="utf-8"))
    mutate(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.pop("data"), "at top level.data, the field is missing"),
        (
            lambda d: d["data"][0]["paragraphs"][1].pop("context"),
            "at data[0].paragraphs[1].context",
        ),
        (
            lambda d: d["data"][1]["paragraphs"][0]["qas"][1]["answers"][0].update(
                answer_start="167"
            ),
            "data[1].paragraphs[0].qas[1].answers[0].answer_start (question id 'segond-2'), "
            "expected int, got str",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=30),
            "(question id 'globe-1'), the context at 30 reads ' 159', not the answer '1599'",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(
                answer_start=9999
            ),
            "9999 lies outside the context",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(
                is_impossible=True, answers=[]
            ),
            "SQuAD v2.0",
        ),
        (lambda d: d.update(data=[]), "holds no questions"),
    ],
)
def test_invalid_squad_names_file_and_json_path(tmp_path, mutate, expected):
    path = write(tmp_path / "train-v1.1.json", _squad_with(mutate))
    with pytest.raises(UserError) as error:
        load_squad(path)
    assert "train-v1.1.json" in str(error.value) and expected in str(error.value)


def test_squad_that_is_not_json_reports_line_and_column(tmp_path):
    path = write(tmp_path / "bad.json", '{"data": [\n  {"title": "x",,}\n]}')
    with pytest.raises(UserError, match=r"bad.json' is not valid JSON \(line 2, column"):
        load_squad(path)


def test_squad_span_check_can_be_disabled(tmp_path):
    path = write(
        tmp_path / "s.json",
        _squad_with(
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=30)
        ),
    )
    assert load_squad(path, check_spans=False)[0].answers[0].answer_start == 30
