"""Task formats, windows, packing and the masked fine-tuning dataset."""

import json

import numpy as np
import pytest

from gpt_tf.errors import UserError
from gpt_tf.task_data import examples as task_data
from gpt_tf.task_data import formats
from gpt_tf.task_data.windows import sliding_windows, text_windows, word_spans

SENTENCE = ("And God said, Let there be light: and there was light. And God saw the light, "
            "that it was good: and God divided the light from the darkness. ")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _count(tokenizer):
    return lambda texts: [len(ids) for ids in tokenizer.encode(list(texts))]


def test_prompt_formats_spell_the_documented_templates():
    assert formats.translate_prompt("Hi.") == "<|source|>Hi.<|target|>"
    assert formats.qa_prompt("C", "Q?") == "<|context|>C<|question|>Q?<|answer|>"
    assert formats.sentiment_prompt("fine") == "<|text|>fine<|label|>"
    # Users cannot smuggle a separator in: it becomes spaces of the same length.
    text = "a <|label|> b"
    cleaned = formats.strip_separators(text)
    assert "<|" not in cleaned and len(cleaned) == len(text)
    with pytest.raises(UserError, match="unknown task"):
        formats.check_task("summarize")


@pytest.mark.parametrize("prompt,answer", [
    (formats.translate_prompt("Let there be light."), "Que la lumière soit."),
    (formats.qa_prompt("God saw the light.", "What did God see?"), "the light"),
    (formats.sentiment_prompt("a fine film"), "positive"),
])
def test_tokens_split_cleanly_at_the_separator(tokenizer, prompt, answer):
    # Training tokenizes prompt and answer apart; inference tokenizes the prompt.
    assert tokenizer.encode(prompt + answer) == tokenizer.encode(prompt) + tokenizer.encode(answer)


def test_word_spans_exclude_whitespace():
    text = "  two words\n and\tmore "
    assert [text[s:e] for s, e in word_spans(text)] == ["two", "words", "and", "more"]
    assert word_spans("   ") == []


def test_sliding_windows_overlap_by_the_stride_and_end_at_the_last_item():
    counts = [3] * 5
    windows = sliding_windows(counts, budget=7, stride=3)
    assert windows == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert all(sum(counts[i:j]) <= 7 for i, j in windows)
    # stride >= budget: consecutive chunks that partition the items.
    chunks = sliding_windows([2, 5, 1, 4, 4], budget=6, stride=6)
    assert chunks == [(0, 1), (1, 3), (3, 4), (4, 5)]


def test_text_windows_fit_the_budget_and_cover_the_text(tokenizer):
    text = SENTENCE * 6
    count = _count(tokenizer)
    chunks = text_windows(text, count, budget=20)
    assert len(chunks) > 3
    assert all(n <= 20 for n in count([text[s:e] for s, e in chunks]))
    covered = [w for s, e in chunks for w in text[s:e].split()]
    assert covered == text.split()
    overlapping = text_windows(text, count, budget=20, stride=8)
    assert len(overlapping) > len(chunks)
    assert all(b[0] < a[1] for a, b in zip(overlapping, overlapping[1:]))  # they overlap
    assert overlapping[-1][1] == chunks[-1][1]
    assert text_windows("short text", count, budget=20) == [(0, 10)]


def test_a_word_longer_than_the_budget_is_cut(tokenizer):
    text = "é" * 300 + " end"
    count = _count(tokenizer)
    pieces = text_windows(text, count, budget=16)
    assert all(n <= 16 for n in count([text[s:e] for s, e in pieces]))
    assert "".join(text[s:e] for s, e in pieces).replace(" end", "") == "é" * 300


def _translate_spec(tmp_path, n=12, long_pair=False):
    rows = [{"source": f"light {i}", "target": f"lumière {i}"} for i in range(n)]
    if long_pair:
        rows.append({"source": SENTENCE * 4, "target": SENTENCE})
    return [{"task": "translate", "path": _write_jsonl(tmp_path / "pairs.jsonl", rows)}]


def test_weights_are_one_exactly_on_answer_tokens_and_their_end_of_text(tokenizer, tmp_path):
    spec = _translate_spec(tmp_path)
    rows = [json.loads(line) for line in open(spec[0]["path"])]
    tokens, mask = task_data.task_windows(spec, tokenizer, 64, shuffle=False)
    eot = tokenizer.end_of_text_id
    learned, prompts = [], []
    for window, weights in zip(tokens, mask):
        assert window[0] == eot and weights[0] == 0.0
        run, prompt = [], []
        for token, weight in zip(window[1:], weights[1:]):
            if weight:
                run.append(int(token))
                if token == eot:  # an answer ends with its end-of-text
                    learned.append(run)
                    prompts.append(prompt)
                    run, prompt = [], []
            elif token != tokenizer.pad_id:
                prompt.append(int(token))
        assert not run
    assert learned == [tokenizer.encode(r["target"]) + [eot] for r in rows]
    assert prompts == [tokenizer.encode(formats.translate_prompt(r["source"])) for r in rows]


def test_task_dataset_batches_shift_tokens_and_carry_the_mask(tokenizer, tmp_path):
    import tensorflow as tf

    spec = _translate_spec(tmp_path)
    tokens, mask = task_data.task_windows(spec, tokenizer, 32, shuffle=False)
    dataset = task_data.task_dataset(spec, tokenizer, 32, batch_size=4, shuffle=False,
                                     repeat=False)
    batches = list(dataset)
    inputs = np.concatenate([b[0].numpy() for b in batches])
    targets = np.concatenate([b[1].numpy() for b in batches])
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert [b[0].dtype for b in batches[:1]] == [tf.int32]
    assert batches[0][1].dtype == tf.int32 and batches[0][2].dtype == tf.float32
    assert inputs.shape[1] == 32
    np.testing.assert_array_equal(inputs, tokens[:, :-1])
    np.testing.assert_array_equal(targets, tokens[:, 1:])
    np.testing.assert_array_equal(weights, mask[:, 1:])
    training = next(iter(task_data.task_dataset(spec, tokenizer, 32, batch_size=4)))
    assert tuple(training[0].shape) == (4, 32)


def test_packing_never_splits_an_example():
    rng = np.random.default_rng(3)
    eot = 2
    examples, next_id = [], 10
    for _ in range(60):
        prompt = list(range(next_id, next_id + int(rng.integers(1, 8))))
        next_id += len(prompt)
        answer = list(range(next_id, next_id + int(rng.integers(1, 6))))
        next_id += len(answer)
        examples.append(task_data.TokenExample(prompt, answer))
    tokens, mask = task_data.pack_examples(examples, 16, eot, pad_id=0)
    found = []
    for window in tokens:
        assert window[0] == eot
        body = [int(t) for t in window[1:] if t != 0]
        segments, current = [], []
        for token in body:
            if token == eot:
                segments.append(current)
                current = []
            else:
                current.append(token)
        assert not current  # the window ends with a complete example
        found.extend(segments)
    assert found == [e.prompt + e.answer for e in examples]
    assert tokens.shape[1] == 17
    with pytest.raises(ValueError, match="cannot fit"):
        task_data.pack_examples([task_data.TokenExample([5] * 10, [6] * 10)], 16, eot)


def test_pairs_too_long_for_the_window_are_dropped(tokenizer, tmp_path):
    stats = {}
    entry = task_data.check_spec(_translate_spec(tmp_path, n=3, long_pair=True))[0]
    examples = task_data.build_examples(entry, tokenizer, 32, stats)
    assert stats["records"] == 4 and stats["dropped_too_long"] == 1 and len(examples) == 3


def _squad(path, context, question, answer):
    start = context.rindex(answer)
    document = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": context, "qas": [{"id": "q1", "question": question,
                                     "answers": [{"text": answer, "answer_start": start}]}]}]}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def test_long_qa_contexts_become_overlapping_windows_and_keep_those_with_the_answer(tokenizer,
                                                                                   tmp_path):
    context = SENTENCE * 5 + "The man was Elimelech."
    path = _squad(tmp_path / "qa.json", context, "Who?", "Elimelech")
    entry = task_data.check_spec([{"task": "qa", "path": path, "doc_stride": 24,
                                   "max_answer_tokens": 12}])[0]
    count = _count(tokenizer)
    windows = task_data.qa_windows(context, "Who?", count, 96, 12, 24)
    assert len(windows) > 2
    assert all(b[0] < a[1] for a, b in zip(windows, windows[1:]))
    stats = {}
    examples = task_data.build_examples(entry, tokenizer, 96, stats)
    assert len(examples) >= 1
    assert stats["windows_without_answer"] == len(windows) - len(examples)
    for example in examples:
        assert tokenizer.decode(example.answer) == "Elimelech"
        assert "Elimelech" in tokenizer.decode(example.prompt)
        # [EOT] + prompt + answer room fits the window.
        assert 1 + len(example.prompt) + 12 <= 96


def test_long_sentiment_texts_are_chunked_with_their_label(tokenizer, tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", [{"text": SENTENCE * 4, "label": "positive"},
                                              {"text": "dark", "label": "negative"}])
    entry = task_data.check_spec([{"task": "sentiment", "path": path}])[0]
    examples = task_data.build_examples(entry, tokenizer, 32)
    assert len(examples) > 2
    assert all(len(e.prompt) + len(e.answer) + 2 <= 33 for e in examples)
    assert {tokenizer.decode(e.answer) for e in examples} == {"positive", "negative"}


def test_holdout_splits_a_user_file_disjointly_and_stably(tmp_path):
    rows = [{"text": f"text number {i}", "label": "a" if i % 2 else "b"} for i in range(200)]
    path = _write_jsonl(tmp_path / "s.jsonl", rows)
    base = {"task": "sentiment", "path": path, "holdout_fraction": 0.2}
    train = task_data.load_records(task_data.check_spec([{**base, "select": "train"}])[0])
    held = task_data.load_records(task_data.check_spec([{**base, "select": "validation"}])[0])
    assert not {r.text for r in train} & {r.text for r in held}
    assert len(train) + len(held) == 200 and 20 <= len(held) <= 60
    again = task_data.load_records(task_data.check_spec([{**base, "select": "validation"}])[0])
    assert again == held


def test_weight_repeats_examples(tokenizer, tmp_path):
    spec = _translate_spec(tmp_path, n=10)
    one = task_data.task_windows(spec, tokenizer, 64, shuffle=False)[1].sum()
    spec[0]["weight"] = 3.0
    three = task_data.task_windows(spec, tokenizer, 64, shuffle=False)[1].sum()
    assert three == 3 * one


def test_input_pipelines_shard_whole_batches_of_one_stream(tokenizer, tmp_path):
    import tensorflow as tf

    spec = _translate_spec(tmp_path, n=40)
    whole = task_data.task_dataset(spec, tokenizer, 32, batch_size=2, seed=5)
    expected = [b[0].numpy() for b in whole.take(6)]
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=2)
        shard = task_data.task_dataset(spec, tokenizer, 32, batch_size=2, seed=5,
                                       input_context=context)
        got = [b[0].numpy() for b in shard.take(3)]
        for mine, reference in zip(got, expected[worker::2]):
            np.testing.assert_array_equal(mine, reference)


@pytest.mark.parametrize("spec,message", [
    ([{"task": "translate"}], "needs 'task' and 'path'"),
    ([{"task": "poetry", "path": "x"}], "unknown task"),
    ([{"task": "qa", "path": "x", "colour": 1}], "unknown key"),
    ([{"task": "qa", "path": "x", "select": "dev"}], "select"),
    ([], "non-empty"),
])
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(UserError, match=message):
        task_data.check_spec(spec)


def test_no_example_fitting_is_a_clear_error(tokenizer, tmp_path):
    spec = [{"task": "translate", "path": _write_jsonl(
        tmp_path / "p.jsonl", [{"source": SENTENCE * 3, "target": SENTENCE * 3}])}]
    with pytest.raises(UserError, match="fits the context window"):
        task_data.task_windows(spec, tokenizer, 32)


def test_plain_text_is_learned_whole_in_chunks(tokenizer, tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text((SENTENCE * 3 + "\n\n") * 4, encoding="utf-8")
    entry = task_data.check_spec([{"task": "generate", "path": str(path)}])[0]
    examples = task_data.build_examples(entry, tokenizer, 32)
    assert all(not e.prompt and len(e.answer) <= 31 for e in examples)
    assert [e.close for e in examples].count(True) == 1 and examples[-1].close
    tokens, mask = task_data.pack_examples(examples, 32, tokenizer.end_of_text_id)
    assert mask[:, 1:].sum() == sum(len(e.answer) for e in examples) + 1
    # A single file still feeds both splits: paragraphs are held out.
    held = {**entry, "select": "validation", "holdout_fraction": 0.5}
    kept = {**entry, "select": "train", "holdout_fraction": 0.5}
    assert len(task_data.load_records(held)) + len(task_data.load_records(kept)) == 4
