"""GPT-2-family checkpoints in: byte-level BPE through the stack, import, bad input."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gpt_tf.errors import UserError
from tests.conftest import CORPUS_FILES
from tests.gpt2_folders import gpt2_tensors, hf_config, hf_folder, train_bpe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = [open(path, encoding="utf-8").read() for path in CORPUS_FILES]
# Strings where GPT-2's pre-tokenizer is easy to get wrong: whitespace runs (before words,
# before punctuation, at the end), tabs and newlines, Unicode spaces, contractions after
# spaces, Chinese, emoji with modifiers, control characters, NUL, noncharacters, and the
# special tokens written literally.
TRICKY = [
    "hello world", "a   b", "a  ", "  a", "a\n\nb", "a  's", "a \tb", "x\t\ty  z   ",
    "中文字符 and emoji 😀👍🏽 ok", "don't  we'll   they're", "<|endoftext|>hi <|sep|>  x",
    "", " ", "\n", "a\u00a0\u00a0b", "\x00\x01 \x7f ctrl", "a\x00\x00 b\x00",
    "\ufdd0\x00\ufdd0\ufdd2 x", "tab\tend\t", "12345 3.14  ab12", "a\u3000\u3000b", "\u2028x",
    "a\x0b\x0bb", "a\x1c\x1cb", "a\u0085\u0085b", "  multiple   spaces    here  ",
    "def f(x):\n    return x  # comment\n", "trailing newline\n\n", "\ufffd\ufeffbom",
]


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return hf_folder(str(tmp_path_factory.mktemp("hf") / "gpt2-tiny"), TEXTS)


@pytest.fixture(scope="module")
def imported(hf_dir, tmp_path_factory):
    from gpt_tf.cli import main

    run_dir = str(tmp_path_factory.mktemp("imported") / "run")
    assert main(["import", "hf", hf_dir, "--run-dir", run_dir]) == 0
    return run_dir


@pytest.fixture(scope="module")
def bpe(imported):
    from gpt_tf.tokenizer import load_tokenizer

    return load_tokenizer(imported)


def _corpus_lines():
    lines = [line for text in TEXTS for line in text.splitlines(keepends=True)]
    return TRICKY + lines[:200]


# ---- the tokenizer ---------------------------------------------------------------------


def test_graph_ids_equal_host_ids_equal_hugging_face(bpe, hf_dir):
    import tensorflow as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    # Hugging Face's GPT-2 tokenizer, as GPT2TokenizerFast assembles it from the two files.
    reference = Tokenizer(models.BPE.from_file(os.path.join(hf_dir, "vocab.json"),
                                               os.path.join(hf_dir, "merges.txt")))
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    reference.decoder = decoders.ByteLevel()
    reference.add_special_tokens(["<|endoftext|>"])
    corpus = _corpus_lines()
    host = [bpe.encode(text) for text in corpus]
    plain = [text.replace("<|sep|>", "") for text in corpus]
    assert [bpe.encode(t) for t in plain] == [reference.encode(t).ids for t in plain]
    eager = bpe.tokenize(tf.constant(corpus)).to_list()
    graph = tf.function(lambda x: bpe.tokenize(x))(tf.constant(corpus)).to_list()
    mismatches = [text for text, h, e in zip(corpus, host, eager) if h != e]
    assert not mismatches, mismatches[:5]
    assert graph == host
    assert bpe.encode(corpus) == host  # the batch path
    # The separators are single ids, matched where they are written literally.
    assert bpe.encode("<|sep|>") == [bpe.separator_ids["<|sep|>"]]
    assert bpe.tokenize(tf.constant("a  b")).numpy().tolist() == bpe.encode("a  b")


def test_detokenize_agrees_and_round_trips(bpe):
    import tensorflow as tf

    corpus = [t for t in _corpus_lines() if "<|endoftext|>" not in t]
    ids = [bpe.encode(text) for text in corpus]
    assert [bpe.decode(row) for row in ids] == corpus  # byte-level BPE is lossless
    graph = [s.decode("utf-8") for s in bpe.detokenize(tf.ragged.constant(ids)).numpy()]
    assert graph == corpus
    # Control ids decode to '' on both sides; a character cut in half to U+FFFD on both.
    row = [bpe.end_of_text_id] + bpe.encode("é") + [bpe.pad_id]
    assert bpe.decode(row) == "é"
    assert bpe.detokenize(tf.constant(row)).numpy().decode() == "é"
    half = bpe.encode("😀")[:1]
    if len(bpe.encode("😀")) > 1:
        assert bpe.decode(half).endswith("\ufffd")
        assert bpe.detokenize(tf.constant(half)).numpy().decode().endswith("\ufffd")


def test_bad_tokenizer_files_are_named(tmp_path):
    from gpt_tf.byte_bpe import read_vocab_and_merges

    train_bpe(TEXTS, str(tmp_path))
    (tmp_path / "merges.txt").write_text("#version: 0.2\nq z\n", encoding="utf-8")
    with pytest.raises(UserError, match="do not belong together"):
        read_vocab_and_merges(str(tmp_path))
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    made = next(t for t in vocab if len(t) == 2)  # a merged token: its halves are in the vocab
    (tmp_path / "merges.txt").write_text(f"{made[0]} {made[1]}\n{made[0]} {made[1]}\n",
                                         encoding="utf-8")
    with pytest.raises(UserError, match="listed twice"):  # the graph tokenizer's table needs one rank
        read_vocab_and_merges(str(tmp_path))
    # 'ĀāĂ' (bytes 0, 1, 2) is in the vocabulary but 'Āā' is not: the merge 'Āā Ă' cannot apply.
    assert "Āā" not in vocab
    vocab["ĀāĂ"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("Āā Ă\n", encoding="utf-8")
    with pytest.raises(UserError, match="needs 'Āā'"):
        read_vocab_and_merges(str(tmp_path))
    (tmp_path / "vocab.json").write_text('{"a": 0}', encoding="utf-8")
    with pytest.raises(UserError, match="256 byte symbols"):
        read_vocab_and_merges(str(tmp_path))
    (tmp_path / "vocab.json").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="vocab.json"):
        read_vocab_and_merges(str(tmp_path))
    os.remove(tmp_path / "merges.txt")
    with pytest.raises(UserError, match="merges.txt' not found"):
        read_vocab_and_merges(str(tmp_path))


# ---- import ----------------------------------------------------------------------------


def test_imported_logits_equal_keras_hub_reading_the_same_folder(imported, hf_dir, bpe):
    import keras_hub

    from gpt_tf.generation import Generator
    from gpt_tf.training import load_model

    model, _, config = load_model(imported)
    reference = keras_hub.models.GPT2Backbone.from_preset(hf_dir)
    ids = np.array([bpe.encode("To be, or not to be: that is the question.")[:24]], np.int32)
    hidden = reference({"token_ids": ids, "padding_mask": np.ones_like(ids)}).numpy()
    theirs = hidden @ reference.token_embedding.embeddings.numpy().T
    ours = np.asarray(model(ids))
    original = theirs.shape[-1]
    assert config.model.vocab_size == original + 9  # pad and 8 separators added
    assert np.abs(ours[..., :original] - theirs).max() < 1e-4
    # Greedy decoding with the KV cache follows the reference's argmax step by step.
    prompt = list(ids[0, :8])
    generated = Generator(model).generate([prompt], 6, stop_ids=[]).token_ids[0]
    sequence, compared = prompt, 0
    for token in generated:
        step = np.array([sequence], np.int32)
        logits = reference({"token_ids": step, "padding_mask": np.ones_like(step)}).numpy()[0, -1]
        expected = int(np.argmax(logits @ reference.token_embedding.embeddings.numpy().T))
        if token < original:  # an added id (unknown to the reference) may win a step
            assert token == expected
            compared += 1
        sequence = sequence + [int(token)]
    assert compared >= 4, generated


def test_import_records_what_it_added(imported, bpe):
    from gpt_tf.interop.gpt2 import IMPORT_FILE
    from gpt_tf.training import load_model

    record = json.load(open(os.path.join(imported, IMPORT_FILE)))
    assert record["format"] == "huggingface"
    assert record["added_tokens"]["<|pad|>"] == bpe.pad_id == record["original_vocab_size"]
    assert bpe.end_of_text_id == record["original_vocab_size"] - 1
    model, _, _ = load_model(imported)
    table = model.backbone.token_embedding.embeddings.numpy()
    old, new = table[:record["original_vocab_size"]], table[record["original_vocab_size"]:]
    assert np.allclose(new.mean(axis=0), old.mean(axis=0), atol=3 * old.std())
    assert len({row.tobytes() for row in new}) == len(new)  # the new ids differ


def test_imported_run_finetunes_exports_and_serves_the_same_ids(imported, bpe, tmp_path):
    import tensorflow as tf

    from gpt_tf.cli import main
    from gpt_tf.export.saved_model import load_saved_model

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"light {i}\tlumière {i}\n" for i in range(40)), encoding="utf-8")
    tuned = str(tmp_path / "tuned")
    assert main(["finetune", "--base", imported, "--run-dir", tuned, "--task",
                 f"translate={pairs}", "--train.steps=2", "--train.batch_size=2",
                 "--train.eval_every=2"]) == 0
    out = str(tmp_path / "saved")
    assert main(["export", "savedmodel", tuned, "--name", "tiny", "--output-dir", out,
                 "--no-xla", "--no-warmup"]) == 0
    loaded = load_saved_model(os.path.join(out, "tiny", "1"))
    corpus = [t for t in TRICKY if t]
    result = loaded.signatures["tokenize"](text=tf.constant(corpus))
    ids, lengths = result["token_ids"].numpy(), result["lengths"].numpy()
    assert [list(row[:n]) for row, n in zip(ids, lengths)] == [bpe.encode(t) for t in corpus]
    # Padded with the pad id (GPT-2's id 0 is a real token), which detokenizes to ''.
    assert set(ids[0, lengths[0]:]) <= {bpe.pad_id}
    text = loaded.signatures["detokenize"](token_ids=tf.constant(ids))["text"].numpy()
    assert [t.decode() for t in text] == [t.replace("<|endoftext|>", "") for t in corpus]
    assert os.path.isfile(os.path.join(out, "tiny", "1", "assets.extra", "bpe_tokenizer.json"))
    # Served over HTTP: the host-side stream (bpe_tokenizer.json) equals in-graph generation.
    from gpt_tf.serving.client import ServingClient
    from gpt_tf.serving.models import ModelManager, specs_from_config_file
    from gpt_tf.serving.server import ModelServer

    manager = ModelManager(specs_from_config_file(os.path.join(out, "models.config")))
    manager.poll_once()
    server = ModelServer(manager, port=0).start()
    try:
        client = ServingClient(server.url, "tiny")
        pieces = list(client.stream("light 3 中", max_new_tokens=6))
        summary = pieces.pop()
        generated = client.generate(["light 3 中"], max_new_tokens=6)[0]
        assert summary["completion"] == generated["completion"]
        assert "".join(pieces) == summary["completion"][:len("".join(pieces))]
    finally:
        server.shutdown()


def test_tflite_runner_tokenizes_bpe_without_tensorflow(imported, bpe, tmp_path):
    from gpt_tf.export.tflite import export_tflite_run
    from tests.test_tflite import NO_TF_PRELUDE

    export_tflite_run(imported, "tiny-bpe", str(tmp_path), "none")
    directory = str(tmp_path / "tiny-bpe")
    assert sorted(os.listdir(directory)) == ["bpe_tokenizer.json", "meta.json", "model.tflite"]
    script = NO_TF_PRELUDE + textwrap.dedent(f"""
        import json
        from tflite.runtime import TFLiteLM
        lm = TFLiteLM({directory!r})
        corpus = json.loads(sys.stdin.read())
        print(json.dumps([lm.encode(t) for t in corpus]))
        print(json.dumps(lm.decode_text(lm.encode("a  b\\tc 中文"))))
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "gpt_tf")
                    and sys.modules[m]]
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, input=json.dumps(TRICKY))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == [bpe.encode(t) for t in TRICKY]
    assert json.loads(lines[1]) == "a  b\tc 中文"


def _logits(run_dir, ids):
    from gpt_tf.training import load_model

    model, _, _ = load_model(run_dir)
    return np.asarray(model(np.array([ids], np.int32)))


def test_openai_release_imports_to_the_same_model(imported, bpe, tmp_path):
    from gpt_tf.cli import main
    from tests.gpt2_folders import openai_folder

    folder = openai_folder(str(tmp_path / "124M"), TEXTS)
    run_dir = str(tmp_path / "openai-run")
    assert main(["import", "openai", folder, "--run-dir", run_dir]) == 0
    ids = bpe.encode("Now is the winter of our discontent")
    np.testing.assert_allclose(_logits(run_dir, ids), _logits(imported, ids), atol=1e-6)
    os.remove(os.path.join(folder, "model.ckpt.index"))
    assert main(["import", "openai", folder, "--run-dir", str(tmp_path / "x")]) == 2
    assert not os.path.exists(tmp_path / "x")


def test_export_hf_and_keras_hub_load_back(imported, bpe, tmp_path):
    import keras_hub
    from tokenizers import Tokenizer

    from gpt_tf.cli import main

    hf_out, hub_out = str(tmp_path / "hf"), str(tmp_path / "hub")
    assert main(["export", "hf", imported, "--out", hf_out]) == 0
    assert main(["export", "keras-hub", imported, "--out", hub_out]) == 0
    text = "Friends, Romans <|sep|> lend me your ears"
    ids = bpe.encode(text)[:30]  # the tiny model's context is 32
    ours = _logits(imported, ids)
    # Hugging Face's fast tokenizer file gives gpt-tf's ids, special tokens included.
    assert Tokenizer.from_file(os.path.join(hf_out, "tokenizer.json")).encode(text).ids \
        == bpe.encode(text)
    # keras-hub reads the Hugging Face folder (a torch-free reference) ...
    reference = keras_hub.models.GPT2Backbone.from_preset(hf_out)
    hidden = reference({"token_ids": np.array([ids]), "padding_mask": np.ones((1, len(ids)))})
    theirs = np.asarray(hidden) @ reference.token_embedding.embeddings.numpy().T
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    # ... and the folder imports back to the same model.
    again = str(tmp_path / "again")
    assert main(["import", "hf", hf_out, "--run-dir", again]) == 0
    np.testing.assert_allclose(_logits(again, ids), ours, atol=1e-6)
    # The keras-hub preset is a GPT2CausalLM that scores and generates as gpt-tf does.
    from gpt_tf.generation import Generator
    from gpt_tf.training import load_model

    causal_lm = keras_hub.models.GPT2CausalLM.from_preset(hub_out)
    hub_logits = causal_lm.score(np.array([ids]), np.ones((1, len(ids)), bool))
    np.testing.assert_allclose(np.asarray(hub_logits), ours, atol=1e-4)
    prompt = ids[:6]
    expected = Generator(load_model(imported)[0]).generate([prompt], 6, stop_ids=[]).token_ids[0]
    causal_lm.compile(sampler="greedy")
    causal_lm.preprocessor = None
    padded = np.zeros((1, 12), np.int32)
    padded[0, :6] = prompt
    mask = np.arange(12)[None, :] < 6  # keras-hub fills the masked-out positions
    out = causal_lm.generate({"token_ids": padded, "padding_mask": mask}, stop_token_ids=None)
    assert [int(t) for t in out["token_ids"][0, 6:12]] == [int(t) for t in expected]
    assert isinstance(keras_hub.models.GPT2CausalLM.from_preset(hub_out).generate(
        "Friends, Romans", max_length=12), str)
    # And the preset imports back too.
    from_hub = str(tmp_path / "from-hub")
    assert main(["import", "keras-hub", hub_out, "--run-dir", from_hub]) == 0
    np.testing.assert_allclose(_logits(from_hub, ids), ours, atol=1e-6)
    assert json.load(open(os.path.join(from_hub, "imported_from.json")))["added_tokens"] == {}


def test_export_of_a_sentencepiece_run_says_what_loads(trained_run, tmp_path):
    from gpt_tf.interop.hf import export_hf
    from gpt_tf.interop.keras_hub import export_keras_hub

    result = export_hf(trained_run["run_dir"], str(tmp_path / "hf"))
    assert "tokenizer.model" in result["files"] and "vocab.json" not in result["files"]
    assert "cannot load" in result["tokenizer"]
    hub = export_keras_hub(trained_run["run_dir"], str(tmp_path / "hub"))
    assert hub["loads_with"] == "keras_hub.models.GPT2Backbone.from_preset"
    import keras_hub

    keras_hub.models.GPT2Backbone.from_preset(str(tmp_path / "hub"))


# ---- bad input: one line naming the file, exit 2, no run directory ---------------------


def _write_folder(directory, config=None, tensors=None, prefix="transformer."):
    vocab = train_bpe(TEXTS, str(directory))
    from gpt_tf.interop.safetensors_io import write_safetensors
    from tests.gpt2_folders import SHAPE

    if tensors is None:
        tensors = gpt2_tensors(len(vocab), prefix=prefix, **SHAPE)
    write_safetensors(str(directory / "model.safetensors"), tensors)
    (directory / "config.json").write_text(json.dumps(hf_config(len(vocab), **(config or {}))))
    return len(vocab)


def _refused(capsys, folder, run_dir, *expected):
    from gpt_tf.cli import main

    assert main(["import", "hf", str(folder), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt-tf: error:") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err
    assert not os.path.exists(run_dir)
    parent = os.path.dirname(run_dir)
    assert not os.path.isdir(parent) or not os.listdir(parent)  # no half-written run


@pytest.mark.parametrize("config, expected", [
    ({"model_type": "llama"}, "model_type is 'llama'"),
    ({"tie_word_embeddings": False}, "untied head"),
    ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
    ({"activation_function": "relu"}, "activation_function 'relu'"),
    ({"n_embd": 32}, "has shape"),  # the config no longer matches the weights' shapes
    ({"n_layer": 3}, "lacks"),  # nor their number of blocks
])
def test_unsupported_configs_are_refused(tmp_path, capsys, config, expected):
    folder = tmp_path / "hf"
    _write_folder(folder, config=config)
    _refused(capsys, folder, tmp_path / "out" / "run", expected)


def test_damaged_or_missing_files_are_refused(tmp_path, capsys):
    folder = tmp_path / "hf"
    vocab_size = _write_folder(folder)
    weights = folder / "model.safetensors"
    blob = weights.read_bytes()
    out = tmp_path / "out" / "run"
    weights.write_bytes(blob[:len(blob) // 2])
    _refused(capsys, folder, out, "model.safetensors", "does not fit")
    weights.write_bytes(len(b"{not json").to_bytes(8, "little") + b"{not json" + blob[100:])
    _refused(capsys, folder, out, "header is not JSON")
    weights.write_bytes((10 ** 12).to_bytes(8, "little") + blob[8:])
    _refused(capsys, folder, out, "header length")
    untied = gpt2_tensors(vocab_size, prefix="transformer.", n_layer=2, n_embd=16, n_head=2,
                          n_positions=32)
    untied["lm_head.weight"] = untied["transformer.wte.weight"] + 1
    from gpt_tf.interop.safetensors_io import write_safetensors

    write_safetensors(str(weights), untied)
    _refused(capsys, folder, out, "untied head")
    os.remove(weights)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02")
    _refused(capsys, folder, out, "pytorch_model.bin", "safe_serialization=True")
    write_safetensors(str(weights), gpt2_tensors(vocab_size, n_layer=2, n_embd=16, n_head=2,
                                                 n_positions=32))  # no prefix: also GPT-2's
    os.remove(folder / "merges.txt")
    _refused(capsys, folder, out, "merges.txt")
    _refused(capsys, tmp_path / "nowhere", out, "not a folder")


def test_keras_hub_preset_made_from_a_hf_folder_imports(imported, hf_dir, bpe, tmp_path):
    # keras-hub keeps merges.txt's '#version: 0.2' line among its merges; it is no merge.
    import keras_hub

    from gpt_tf.cli import main

    preset = str(tmp_path / "preset")
    keras_hub.models.GPT2CausalLM.from_preset(hf_dir).save_to_preset(preset)
    assert keras_hub.models.Tokenizer.from_preset(preset).merges[0].startswith("#version:")
    run_dir = str(tmp_path / "run")
    assert main(["import", "keras-hub", preset, "--run-dir", run_dir]) == 0
    ids = bpe.encode("Now is the winter of our discontent")
    np.testing.assert_allclose(_logits(run_dir, ids), _logits(imported, ids), atol=1e-6)


def test_malformed_hparams_and_safetensors_entries_are_refused(tmp_path):
    from gpt_tf.interop.gpt2 import model_config_from_hparams
    from gpt_tf.interop.safetensors_io import read_safetensors

    hparams = {"n_embd": 16, "n_head": 2, "n_layer": 2, "n_positions": 32, "vocab_size": 300}
    for key, value in (("resid_pdrop", "0.1"), ("layer_norm_epsilon", None), ("n_inner", 2.5)):
        with pytest.raises(UserError, match=key):
            model_config_from_hparams(dict(hparams, **{key: value}), "config.json")
    path = tmp_path / "bad.safetensors"
    for entry in ({"dtype": "F32", "shape": [2 ** 32, 2 ** 32], "data_offsets": [0, 0]},  # wraps
                  {"dtype": "F32", "shape": [0, 2 ** 70], "data_offsets": [0, 0]},
                  {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}):
        header = json.dumps({"a": entry}).encode()
        path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
        with pytest.raises(UserError, match="not a valid safetensors file"):
            read_safetensors(str(path))
    from gpt_tf.interop.hf import read_hf_weights

    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"wte.weight": 1}}')
    with pytest.raises(UserError, match="not a safetensors index"):
        read_hf_weights(str(tmp_path))


def test_keras_hub_sources_that_cannot_load_are_named(tmp_path, capsys):
    from gpt_tf.cli import main

    assert main(["import", "keras-hub", "not_a_preset", "--run-dir", str(tmp_path / "r")]) == 2
    assert "neither a preset directory nor a keras-hub GPT-2 preset name" in \
        capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["import", "keras-hub", str(tmp_path / "empty"), "--run-dir",
                 str(tmp_path / "r")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")


def test_safetensors_files_agree_with_the_reference_library(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from gpt_tf.interop.safetensors_io import read_safetensors, write_safetensors

    tensors = {"a": np.arange(12, dtype=np.float32).reshape(3, 4),
               "b": np.array([1, -2], np.int64), "c": np.ones((2, 0, 3), np.float16)}
    write_safetensors(str(tmp_path / "ours.safetensors"), tensors, {"format": "pt"})
    theirs = safetensors_numpy.load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(tensors)
    for name in tensors:
        np.testing.assert_array_equal(theirs[name], tensors[name])
    safetensors_numpy.save_file(tensors, str(tmp_path / "theirs.safetensors"))
    ours = read_safetensors(str(tmp_path / "theirs.safetensors"))
    for name in tensors:
        np.testing.assert_array_equal(ours[name], tensors[name])
