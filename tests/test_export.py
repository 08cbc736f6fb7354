"""SavedModel export: layout, manifest, bundle, signatures and parity with Keras."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gpt_tf.errors import UserError
from gpt_tf.export.manifest import ManifestError, verify_manifest, write_manifest
from gpt_tf.export.tasks import ClassificationTask, GenerationTask, load_tasks, task_from_dict
from tests.helpers import assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["In the beginning", "Four score and", "The Lord is my", "Shall I compare thee"]
TASKS = {"tasks": [
    {"kind": "generate", "name": "translate", "inputs": ["source"],
     "template": "<|source|>{source}<|target|>", "output": "translation", "max_new_tokens": 6},
    {"kind": "classify", "name": "classify", "input": "text",
     "template": "<|text|>{text}<|label|>", "labels": ["negative", "positive"]},
]}
_CACHE = {}


def exported_bundle(trained_run, tmp_path_factory):
    """One export of the tiny trained run (with tasks), shared by the test modules.

    Returns:
        dict: `base` (saved_models dir), `path` (version 1 dir), `name`, `run_dir`.
    """
    if "bundle" not in _CACHE:
        from gpt_tf.export.saved_model import export_run

        base = tmp_path_factory.mktemp("saved_models")
        task_file = base.parent / "tasks.json"
        task_file.write_text(json.dumps(TASKS))
        result = export_run(trained_run["run_dir"], "tiny", str(base),
                            tasks=load_tasks(str(task_file)), max_new_tokens_limit=12,
                            defaults={"max_new_tokens": 8})
        _CACHE["bundle"] = {"base": str(base), "path": result.path, "name": "tiny",
                            "run_dir": trained_run["run_dir"], "result": result}
    return _CACHE["bundle"]


@pytest.fixture(scope="module")
def bundle(trained_run, tmp_path_factory):
    return exported_bundle(trained_run, tmp_path_factory)


@pytest.fixture(scope="module")
def keras_run(bundle):
    from gpt_tf.training import load_model

    model, tokenizer, _ = load_model(bundle["run_dir"])
    return model, tokenizer


@pytest.fixture(scope="module")
def loaded(bundle):
    from gpt_tf.export.saved_model import load_saved_model

    return load_saved_model(bundle["path"])


def _sampling(batch, max_new=8, temperature=0.0, top_k=0, top_p=1.0, penalty=1.0, seed=0):
    import tensorflow as tf

    return dict(max_new_tokens=tf.fill([batch], max_new),
                temperature=tf.fill([batch], float(temperature)), top_k=tf.fill([batch], top_k),
                top_p=tf.fill([batch], float(top_p)),
                repetition_penalty=tf.fill([batch], float(penalty)), seed=tf.fill([batch], seed))


def _padded(rows):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    return ids, np.array([len(r) for r in rows], np.int32)


# ---- layout, manifest, bundle -------------------------------------------------------------

def test_versioned_layout_and_bundle(bundle):
    from gpt_tf.export.bundle import read_model_config

    base, path = bundle["base"], bundle["path"]
    assert path == os.path.join(base, "tiny", "1")
    for name in ("saved_model.pb", "SHA256SUMS", "assets.extra/tf_serving_warmup_requests",
                 "assets.extra/gpt_tf.json", "assets.extra/tokenizer.model"):
        assert os.path.isfile(os.path.join(path, name)), name
    assert os.listdir(os.path.join(base, "tiny")) == ["1"]  # no temporary directory left
    verify_manifest(path)
    config = read_model_config(os.path.join(base, "models.config"))
    entry = config.model_config_list.config[0]
    assert (entry.name, entry.base_path) == ("tiny", "/models/tiny")
    assert dict(entry.version_labels) == {"stable": 1, "canary": 1}
    assert "max_batch_size" in open(os.path.join(base, "batching_parameters.txt")).read()
    assert "prometheus_config" in open(os.path.join(base, "monitoring.config")).read()
    readme = open(os.path.join(base, "README.md")).read()
    assert "docker run" in readme and "tensorflow_model_server" in readme
    assert "--xla_cpu_compilation_enabled=true" in readme
    meta = json.load(open(os.path.join(path, "assets.extra", "gpt_tf.json")))
    assert meta["limits"]["max_new_tokens"] == 12
    assert {"serving_default", "generate", "generate_ids", "score", "tokenize", "detokenize",
            "translate", "classify", "classify_text", "prefill", "decode"} <= set(
        meta["signatures"])


def test_second_export_by_cli_is_canary(bundle, tmp_path, capsys):
    from gpt_tf.cli import main
    from gpt_tf.export.bundle import read_model_config, write_serving_bundle

    base = tmp_path / "saved_models"
    shutil.copytree(os.path.join(bundle["base"], "tiny"), base / "tiny")
    write_serving_bundle(str(base))
    assert main(["export", "savedmodel", bundle["run_dir"], "--name", "tiny", "--output-dir",
                 str(base), "--no-warmup"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed["version"] == 2 and os.path.isdir(base / "tiny" / "2")
    labels = dict(read_model_config(str(base / "models.config")).model_config_list
                  .config[0].version_labels)
    assert labels == {"stable": 1, "canary": 2}
    write_serving_bundle(str(base), promote={"tiny": 2})
    labels = dict(read_model_config(str(base / "models.config")).model_config_list
                  .config[0].version_labels)
    assert labels == {"stable": 2, "canary": 2}
    assert main(["export", "verify", str(base / "tiny" / "2")]) == 0


def test_manifest_detects_tampering(tmp_path):
    (tmp_path / "variables").mkdir()
    (tmp_path / "saved_model.pb").write_bytes(b"graph")
    (tmp_path / "variables" / "v.data").write_bytes(b"\x00" * 100)
    write_manifest(str(tmp_path))
    assert set(verify_manifest(str(tmp_path))) == {"saved_model.pb", "variables/v.data"}
    (tmp_path / "variables" / "v.data").write_bytes(b"\x00" * 99 + b"\x01")
    with pytest.raises(ManifestError, match=r"sha256 mismatch for 'variables/v.data'"):
        verify_manifest(str(tmp_path))
    write_manifest(str(tmp_path))
    (tmp_path / "extra.txt").write_text("x")
    with pytest.raises(ManifestError, match="'extra.txt' is not in SHA256SUMS"):
        verify_manifest(str(tmp_path))
    os.remove(tmp_path / "extra.txt")
    os.remove(tmp_path / "saved_model.pb")
    with pytest.raises(ManifestError, match="'saved_model.pb' listed in SHA256SUMS is missing"):
        verify_manifest(str(tmp_path))
    os.remove(tmp_path / "SHA256SUMS")
    with pytest.raises(ManifestError, match="no SHA256SUMS manifest"):
        verify_manifest(str(tmp_path))


def test_tampered_export_fails_to_load_with_a_clear_error(bundle, tmp_path, capsys):
    from gpt_tf.cli import main
    from gpt_tf.export.saved_model import load_saved_model

    copy = tmp_path / "1"
    shutil.copytree(bundle["path"], copy)
    data = next((copy / "variables").glob("variables.data*"))
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(ManifestError, match="sha256 mismatch for 'variables/variables.data"):
        load_saved_model(str(copy))
    assert main(["export", "verify", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha256 mismatch" in err[0]


def test_export_errors_are_user_errors(bundle, tmp_path, capsys):
    from gpt_tf.cli import main

    assert main(["export", "savedmodel", str(tmp_path / "nope"), "--name", "x",
                 "--output-dir", str(tmp_path)]) == 2
    assert main(["export", "savedmodel", bundle["run_dir"], "--name", "bad/name",
                 "--output-dir", str(tmp_path)]) == 2
    assert main(["export", "savedmodel", bundle["run_dir"], "--name", "x", "--output-dir",
                 str(tmp_path), "--default-temperature", "-1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("gpt-tf: error:") for line in lines)
    assert not any(p.name.startswith(".tmp") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("values, message", [
    ({"kind": "generate", "name": "generate", "inputs": ["a"], "template": "{a}"}, "collides"),
    ({"kind": "generate", "name": "t", "inputs": ["a"], "template": "{b}"}, "exactly the inputs"),
    ({"kind": "generate", "name": "t", "inputs": ["a"], "template": "{a", "x": 1}, "unknown key"),
    ({"kind": "classify", "name": "c", "input": "a", "template": "{a}", "labels": ["x"]},
     "two distinct labels"),
    ({"kind": "regress", "name": "r"}, "unknown"),
])
def test_task_specs_are_validated(values, message):
    with pytest.raises(UserError, match=message):
        task_from_dict(values)


# ---- signatures ---------------------------------------------------------------------------

def test_fresh_process_parity_with_keras(bundle, keras_run, tmp_path):
    """Only tensorflow + tensorflow_text imported: identical greedy tokens, logits within 1e-5."""
    from gpt_tf.generation import Generator

    model, tokenizer = keras_run
    prompts = [[tokenizer.end_of_text_id] + tokenizer.encode(p) for p in PROMPTS]
    ids, lengths = _padded(prompts)
    np.savez(tmp_path / "inputs.npz", ids=ids, lengths=lengths)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        loaded = tf.saved_model.load({bundle['path']!r})
        data = np.load({str(tmp_path / 'inputs.npz')!r})
        n = len(data["ids"])
        full = lambda v, t: tf.fill([n], tf.constant(v, t))
        out = loaded.signatures["generate_ids"](
            token_ids=tf.constant(data["ids"]), lengths=tf.constant(data["lengths"]),
            max_new_tokens=full(10, tf.int32), temperature=full(0.0, tf.float32),
            top_k=full(0, tf.int32), top_p=full(1.0, tf.float32),
            repetition_penalty=full(1.0, tf.float32), seed=full(0, tf.int32))
        logits = loaded.signatures["logits"](token_ids=tf.constant(data["ids"]))["logits"]
        text = loaded.signatures["serving_default"](prompt=tf.constant({PROMPTS!r}))
        np.savez({str(tmp_path / 'out.npz')!r}, tokens=out["token_ids"].numpy(),
                 counts=out["num_tokens"].numpy(), logits=logits.numpy(),
                 text=text["completion"].numpy().astype(object))
        assert "gpt_tf" not in sys.modules, "gpt_tf was imported"
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=True)
    expected = Generator(model).generate(prompts, 10, stop_ids=[tokenizer.end_of_text_id])
    for row, tokens in enumerate(expected.token_ids):
        assert list(out["tokens"][row][:out["counts"][row]]) == tokens
    # `logits` answers the last position only (B, V); issue 15.
    assert_close(out["logits"], np.asarray(model(ids))[:, -1], atol=1e-5, what="logits")
    default = Generator(model).generate(prompts, 8, stop_ids=[tokenizer.end_of_text_id])
    assert [t.decode() for t in out["text"]] == [tokenizer.decode(t) for t in default.token_ids]


def test_seeded_sampling_matches_keras_generator(loaded, keras_run):
    import tensorflow as tf

    from gpt_tf.generation import Generator
    from gpt_tf.sampling import Sampler

    model, tokenizer = keras_run
    sampler = Sampler(temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.2)
    generator = Generator(model)
    for seed, prompt in enumerate(PROMPTS[:3]):
        ids = [tokenizer.end_of_text_id] + tokenizer.encode(prompt)
        expected = generator.generate([ids], 10, sampler, seed=seed,
                                      stop_ids=[tokenizer.end_of_text_id]).token_ids[0]
        out = loaded.signatures["generate_ids"](
            token_ids=tf.constant([ids]), lengths=tf.constant([len(ids)]),
            **_sampling(1, 10, 0.9, 20, 0.9, 1.2, seed))
        got = list(out["token_ids"][0][:int(out["num_tokens"][0])].numpy())
        assert got == expected, f"seed {seed}"


def test_short_prefill_gives_the_tokens_of_a_whole_buffer_prefill(keras_run):
    """Prefilling only a bucket that holds the shortest prompt (rows of 2 to 20
    tokens, so both the 8-position and the whole-buffer prefill run) generates
    what prefilling the whole buffer does, greedy and sampled."""
    import tensorflow as tf

    from gpt_tf.export.generation_graph import PREFILL_BUCKETS, GraphGenerator

    model, tokenizer = keras_run
    stop = [tokenizer.end_of_text_id]
    short, full = (GraphGenerator(model, stop, short_prefill=flag) for flag in (True, False))
    rng = np.random.default_rng(0)
    vocab = int(model.backbone.vocab_size)
    for lengths in ([2, 5], [3, 12, 20], [12, 20]):
        rows = [list(rng.integers(1, vocab, size=n)) for n in lengths]
        ids, lens = _padded(rows)
        width = -(-(max(lengths) + 8) // 32) * 32
        prefill = int(short._prefill_width(tf.constant(min(lengths)), tf.constant(width)))
        assert prefill == min([b for b in PREFILL_BUCKETS if b >= min(lengths)] + [width])
        for temperature, seed in ((0.0, 0), (0.9, 3)):
            settings = _sampling(len(rows), 8, temperature, 20, 0.9, 1.2, seed)
            settings["seeds"] = settings.pop("seed")
            a, b = (g.generate(tf.constant(ids), tf.constant(lens), **settings)
                    for g in (short, full))
            assert np.array_equal(a["num_tokens"].numpy(), b["num_tokens"].numpy())
            assert np.array_equal(a["token_ids"].numpy(), b["token_ids"].numpy()), (
                lengths, temperature)


def test_rows_do_not_depend_on_their_batch(loaded):
    import tensorflow as tf

    prompts = tf.constant(PROMPTS)
    settings = _sampling(len(PROMPTS), 8, 1.0, 0, 0.95, 1.0, 7)
    batch = loaded.signatures["generate"](prompt=prompts, **settings)["completion"].numpy()
    for i, prompt in enumerate(PROMPTS):
        alone = loaded.signatures["generate"](prompt=tf.constant([prompt]),
                                              **_sampling(1, 8, 1.0, 0, 0.95, 1.0, 7))
        assert alone["completion"].numpy()[0] == batch[i]


def test_score_tokenize_detokenize(loaded, keras_run):
    import tensorflow as tf

    model, tokenizer = keras_run
    text = "In the beginning God created the heaven and the earth. And the earth was without form"
    out = loaded.signatures["score"](text=tf.constant([text, ""]))
    ids = [tokenizer.end_of_text_id] + tokenizer.encode(text)
    context = model.backbone.sequence_length
    assert len(ids) > context  # scores the first window, and says so
    ids = ids[:context]
    assert bool(out["truncated"][0]) and not bool(out["truncated"][1])
    logits = np.asarray(model(np.array([ids], np.int32)))[0].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    expected = sum(log_probs[t - 1, ids[t]] for t in range(1, len(ids)))
    assert abs(float(out["log_likelihood"][0]) - expected) < 1e-3
    assert int(out["num_tokens"][0]) == len(ids) - 1 and int(out["num_tokens"][1]) == 0
    assert abs(float(out["perplexity"][0]) - np.exp(-expected / (len(ids) - 1))) < 1e-2
    assert float(out["perplexity"][1]) == 1.0
    tokens = loaded.signatures["tokenize"](text=tf.constant([text, "x"]))
    assert list(tokens["token_ids"][0].numpy()) == tokenizer.encode(text)
    assert list(tokens["lengths"].numpy()) == [len(tokenizer.encode(text)),
                                               len(tokenizer.encode("x"))]
    back = loaded.signatures["detokenize"](token_ids=tokens["token_ids"])["text"].numpy()
    assert back[0].decode() == text and back[1].decode() == "x"


def test_invalid_inputs_raise_invalid_argument(loaded):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="max_new_tokens must be <= 12"):
        loaded.signatures["generate"](prompt=tf.constant(["a"]), **_sampling(1, 50))
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_p must be in"):
        loaded.signatures["generate"](prompt=tf.constant(["a"]), **_sampling(1, 4, 1.0, 0, 0.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="token_ids must be < vocab"):
        loaded.signatures["detokenize"](token_ids=tf.constant([[100000]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        settings = _sampling(2, 4)
        loaded.signatures["generate"](prompt=tf.constant(["a"]), **settings)


def _label_probabilities(model, tokenizer, text, labels):
    """Softmax over labels of log p(label | prompt), from the Keras model's full logits."""
    prompt = [tokenizer.end_of_text_id] + tokenizer.encode(f"<|text|>{text}<|label|>")
    totals = []
    for label in labels:
        ids = prompt + tokenizer.encode(label)
        log_probs = np.log(_softmax_rows(np.asarray(model(np.array([ids]))[0], np.float64)))
        totals.append(sum(log_probs[i - 1, ids[i]] for i in range(len(prompt), len(ids))))
    return _softmax_rows(np.array(totals))


def _softmax_rows(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_task_signatures(loaded, bundle, keras_run):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    out = loaded.signatures["translate"](source=tf.constant(["hello", "good day"]))
    assert out["translation"].shape == (2,)
    texts = ["good", "bad 9"]
    scores = loaded.signatures["classify_text"](text=tf.constant(texts))
    np.testing.assert_allclose(scores["scores"].numpy().sum(-1), 1.0, rtol=1e-5)
    model, tokenizer = keras_run
    for row, text in zip(scores["scores"].numpy(), texts):  # projection at label positions only
        np.testing.assert_allclose(
            row, _label_probabilities(model, tokenizer, text, ["negative", "positive"]),
            atol=1e-4)
    assert [c.decode() for c in scores["classes"].numpy()[0]] == ["negative", "positive"]
    example = tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[b"good"]))})).SerializeToString()
    classified = loaded.signatures["classify"](inputs=tf.constant([example]))
    assert_close(classified["scores"][0], scores["scores"][0], atol=1e-6, what="classify")
    proto = saved_model_pb2.SavedModel.FromString(
        open(os.path.join(bundle["path"], "saved_model.pb"), "rb").read())
    methods = {k: v.method_name for k, v in proto.meta_graphs[0].signature_def.items()}
    assert methods["classify"] == "tensorflow/serving/classify"
    assert methods["serving_default"] == "tensorflow/serving/predict"


def test_warmup_requests_cover_the_text_signatures(bundle):
    from gpt_tf.export.warmup import read_warmup_requests

    path = os.path.join(bundle["path"], "assets.extra", "tf_serving_warmup_requests")
    names = [name for name, _ in read_warmup_requests(path)]
    assert {"serving_default", "generate", "score", "tokenize", "detokenize", "translate",
            "classify_text", "classify"} <= set(names)


def test_task_objects_validate_directly():
    GenerationTask("answer", ("context", "question"),
                   "<|context|>{context}<|question|>{question}<|answer|>", "answer")
    with pytest.raises(UserError, match="placeholder"):
        ClassificationTask("c", "text", "{text!r}", ("a", "b"))
