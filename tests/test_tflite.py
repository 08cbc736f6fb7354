"""TFLite export and the on-device runner: parity, quality gates, no-TensorFlow runs."""

import glob
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import assert_close, blocking_prelude

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["In the beginning", "Four score and", "The Lord is my", "Shall I compare thee"]
# Every op the exported graphs may use: all TFLite builtins, no Flex/custom op.
ALLOWED_OPS = {
    "ADD", "BATCH_MATMUL", "DEQUANTIZE", "DYNAMIC_UPDATE_SLICE", "FULLY_CONNECTED", "GATHER",
    "GELU", "LESS", "LESS_EQUAL", "MEAN", "MUL", "NEG", "PACK", "PAD", "RANGE", "RESHAPE",
    "RSQRT", "SELECT", "SELECT_V2", "SHAPE", "SOFTMAX", "SQUARED_DIFFERENCE", "STRIDED_SLICE",
    "SUB", "TRANSPOSE", "UNPACK", "CAST", "CONCATENATION", "SQUEEZE", "EXPAND_DIMS",
}
# Blocks TensorFlow (and gpt_tf, keras) in a child process: the runner must not need them.
NO_TF_PRELUDE = blocking_prelude(("tensorflow", "keras", "gpt_tf", "tensorflow_text"))
# Blocks only TensorFlow: gpt_tf's TFLite client and the apps over it must not need it.
TF_BLOCKED_PRELUDE = blocking_prelude(("tensorflow", "keras", "tensorflow_text"))


@pytest.fixture(scope="module")
def run(trained_run):
    from gpt_tf.training import load_model

    model, tokenizer, config = load_model(trained_run["run_dir"])
    return {"run_dir": trained_run["run_dir"], "model": model, "tokenizer": tokenizer,
            "config": config}


@pytest.fixture(scope="module")
def exports(run, tmp_path_factory):
    """fp32 (through the CLI), fp16 and int8 exports of the tiny trained run."""
    from gpt_tf.cli import main
    from gpt_tf.export.tflite import export_tflite_run

    out = tmp_path_factory.mktemp("tflite")
    assert main(["export", "tflite", run["run_dir"], "--name", "tiny", "--output-dir",
                 str(out)]) == 0
    dirs = {"none": str(out / "tiny")}
    for quantize in ("fp16", "int8"):
        export_tflite_run(run["run_dir"], f"tiny-{quantize}", str(out), quantize)
        dirs[quantize] = str(out / f"tiny-{quantize}")
    return dirs


def _prompt_ids(tokenizer, text):
    return [tokenizer.end_of_text_id] + tokenizer.encode(text)


def test_stepwise_graph_equals_keras(tiny_model):
    """The head-major prefill/decode path gives the Keras model's logits."""
    import tensorflow as tf

    from gpt_tf.export.stepwise import StepwiseGraph

    graph = StepwiseGraph(tiny_model)
    ids = np.array([[2, 40, 41, 42, 43, 44]], np.int32)
    full = np.asarray(tiny_model(np.concatenate([ids, [[77, 78]]], axis=1)))
    out = graph.prefill(tf.constant(ids))
    assert_close(out["logits"], full[:, 5], atol=1e-5, what="prefill logits")
    cache = out["cache"]
    assert tuple(cache.shape) == graph.cache_shape
    for step, token in enumerate([77, 78]):
        out = graph.decode(tf.constant([[token]]), tf.constant([6 + step]), cache)
        assert_close(out["logits"], full[:, 6 + step], atol=1e-5, what=f"decode {step}")
        cache = out["cache"]


def test_exports_are_builtin_only_and_described(exports, run):
    from gpt_tf.export.tflite import tflite_operators

    for quantize, directory in exports.items():
        meta = json.load(open(os.path.join(directory, "meta.json")))
        assert meta["quantization"] == quantize
        assert sorted(os.listdir(directory)) == ["meta.json", "model.tflite", "tokenizer.model"]
        ops = tflite_operators(open(os.path.join(directory, "model.tflite"), "rb").read())
        assert ops == meta["operators"]
        assert not [op for op in ops if op.startswith("CUSTOM") or op.startswith("Flex")], ops
        assert set(ops) <= ALLOWED_OPS, set(ops) - ALLOWED_OPS
        assert meta["vocab_size"] == run["tokenizer"].vocab_size
        assert meta["special_ids"]["end_of_text"] == run["tokenizer"].end_of_text_id
        assert meta["max_length"] == run["config"].model.sequence_length
        assert set(meta["sha256"]) == {"model.tflite", "tokenizer.model"}


def test_fp32_greedy_tokens_equal_keras(exports, run):
    from gpt_tf.generation import Generator
    from tflite.runtime import TFLiteLM

    lm = TFLiteLM(exports["none"])
    tokenizer = run["tokenizer"]
    prompts = [_prompt_ids(tokenizer, p) for p in PROMPTS]
    expected = Generator(run["model"]).generate(prompts, 12, stop_ids=[2]).token_ids
    for prompt, tokens in zip(prompts, expected):
        assert lm.generate(prompt, 12).token_ids == tokens
    logits, _ = lm.prefill(np.array([prompts[0]], np.int32))
    assert_close(logits, np.asarray(run["model"](np.array([prompts[0]])))[0, -1], atol=1e-4,
                 what="prefill logits")  # also catches zero-weight exports


def _validation_windows(run, count=6):
    from gpt_tf.training import load_split

    tokenizer = run["tokenizer"]
    length = run["config"].model.sequence_length
    split = load_split(run["run_dir"]) if os.path.isfile(
        os.path.join(run["run_dir"], "data_split.json")) else {"kind": "none"}
    if split["kind"] == "lm":
        paths = [s.path for s in split["validation"]]
    else:  # a shipped or fine-tuned run: natural English text from the test data
        paths = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "tiny_corpus", "*.txt")))
    text = "".join(open(path, encoding="utf-8").read() for path in paths)
    ids = tokenizer.encode(text)
    step = length - 1
    windows = [[tokenizer.end_of_text_id] + ids[i:i + step]
               for i in range(0, len(ids) - step, step)]
    return windows[:count]


def _perplexity(lm, windows):
    total, count = 0.0, 0
    for window in windows:
        log_likelihood, n = lm.log_likelihood(window)
        total += log_likelihood
        count += n
    return math.exp(-total / count)


def test_quantized_agreement_and_perplexity(exports, run):
    """fp16/int8 vs fp32: greedy-token agreement and validation perplexity (gate: int8 +5%)."""
    from tflite.runtime import TFLiteLM

    models = {q: TFLiteLM(d) for q, d in exports.items()}
    windows = _validation_windows(run)
    assert windows
    perplexity = {q: _perplexity(lm, windows) for q, lm in models.items()}
    prompts = [_prompt_ids(run["tokenizer"], p) for p in PROMPTS]
    reference = [models["none"].generate(p, 12, stop_ids=[]).token_ids for p in prompts]
    agreement = {}
    for quantize in ("fp16", "int8"):
        tokens = [models[quantize].generate(p, 12, stop_ids=[]).token_ids for p in prompts]
        same = sum(a == b for row, ref in zip(tokens, reference) for a, b in zip(row, ref))
        agreement[quantize] = same / sum(len(r) for r in reference)
    print(f"\nperplexity {perplexity}, greedy agreement with fp32 {agreement}")
    assert perplexity["fp16"] <= perplexity["none"] * 1.001
    assert perplexity["int8"] <= perplexity["none"] * 1.05
    assert agreement["fp16"] >= 0.95 and agreement["int8"] >= 0.5


def test_int8_size_gate_on_a_weight_dominated_model(tmp_path, tokenizer):
    """int8 <= 30% of fp32 where weights dominate the file (vocab 320 x width 128)."""
    import keras

    from gpt_tf.config import ModelConfig
    from gpt_tf.export.tflite import export_tflite
    from gpt_tf.models import GPTCausalLM

    config = ModelConfig(vocab_size=tokenizer.vocab_size, sequence_length=64, num_layers=2,
                         hidden_dim=128, num_heads=4, intermediate_dim=512)
    model = GPTCausalLM.from_model_config(config)
    # Distinct random weights: identical tensors would be deduplicated by the converter.
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.05, weight.shape).astype("float32"))
    sizes = {}
    for quantize in ("none", "int8"):
        meta = export_tflite(model, tokenizer, str(tmp_path / quantize), quantize)
        sizes[quantize] = os.path.getsize(tmp_path / quantize / "model.tflite")
        assert sizes[quantize] == meta["size_bytes"]
    assert sizes["none"] >= 0.95 * 4 * model.num_parameters()  # weights really are in the file
    assert sizes["int8"] <= 0.30 * sizes["none"], sizes
    from tflite.runtime import TFLiteLM

    ids = np.array([[2, 40, 41, 42]], np.int32)
    expected = np.asarray(model(ids))[0, -1]
    logits, _ = TFLiteLM(str(tmp_path / "none")).prefill(ids)
    assert_close(logits, expected, atol=1e-4, what="fp32 logits")
    int8_logits, _ = TFLiteLM(str(tmp_path / "int8")).prefill(ids)
    assert np.corrcoef(int8_logits, expected)[0, 1] > 0.99
    keras.backend.clear_session()


def test_runner_works_without_tensorflow(exports, run, tmp_path):
    from gpt_tf.generation import Generator

    tokenizer = run["tokenizer"]
    prompt = PROMPTS[0]
    ids = _prompt_ids(tokenizer, prompt)
    expected = Generator(run["model"]).generate([ids], 10, stop_ids=[2]).token_ids[0]
    script = NO_TF_PRELUDE + textwrap.dedent(f"""
        from tflite.run import main
        code = main([{exports['int8']!r}, "--prompt", {prompt!r}, "--max-new-tokens", "10",
                     "--temperature", "0.8", "--top-k", "20", "--seed", "3", "--stream"])
        assert code == 0
        code = main([{exports['none']!r}, "--prompt", {prompt!r}, "--max-new-tokens", "10",
                     "--temperature", "0"])
        assert code == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("tensorflow", "keras", "gpt_tf", "tensorflow_text") and sys.modules[m])
        assert not loaded, loaded
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == prompt + tokenizer.decode(expected)
    assert lines[0].startswith(prompt)


def test_apps_tflite_backend_works_without_tensorflow(exports, tmp_path):
    """`open_client` on a TFLite export, its task card and an app over it import no TensorFlow."""
    from gpt_tf.clients import open_client

    export = tmp_path / "tiny"
    shutil.copytree(exports["none"], export)
    card = {"format_version": 1, "tasks": {"sentiment": {"labels": ["dull", "grand"]}}}
    (export / "task_card.json").write_text(json.dumps(card), encoding="utf-8")
    with open_client(str(export)) as client:
        expected = client.generate(PROMPTS[1], max_new_tokens=6)[0].text
    script = TF_BLOCKED_PRELUDE + textwrap.dedent(f"""
        import json
        from apps.sentiment import main
        from gpt_tf.clients import open_client
        client = open_client({str(export)!r})
        assert client.backend.startswith("tflite"), client.backend
        text = client.generate({PROMPTS[1]!r}, max_new_tokens=6)[0].text
        assert main(["--model", {str(export)!r}, "--json", "a fine film"]) == 0
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("tensorflow", "keras", "tensorflow_text") and sys.modules[m])
        assert not loaded, loaded
        print(json.dumps({{"card": client.task_card, "text": text}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    *app_lines, last = done.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["card"] == card and result["text"] == expected
    (classified,) = json.loads("\n".join(app_lines))
    assert sorted(classified["probabilities"]) == ["dull", "grand"]


def test_wrong_inputs_get_clear_errors(exports):
    from tflite.runtime import ModelInputError, TFLiteLM

    lm = TFLiteLM(exports["none"])
    cache_shape = lm.cache_shape
    cases = [
        (lambda: lm.prefill(np.array([[2, 5]], np.float32)), "'token_ids' must be int32"),
        (lambda: lm.prefill(np.array([2, 5], np.int32)), r"must have shape \(1, T\)"),
        (lambda: lm.prefill(np.zeros((1, lm.max_length + 1), np.int32)), "must hold 1.."),
        (lambda: lm.prefill(np.array([[2, 100000]], np.int32)), "ids outside"),
        (lambda: lm.decode(np.array([[3]], np.int32), np.array([0], np.int32),
                           np.zeros((1,) + cache_shape, np.float32)), "'cache' must have shape"),
        (lambda: lm.decode(np.array([[3]], np.int32), np.array([0], np.int32),
                           np.zeros(cache_shape, np.float64)), "'cache' must be float32"),
        (lambda: lm.decode(np.array([[3]], np.int32), np.array([lm.max_length], np.int32),
                           np.zeros(cache_shape, np.float32)), "position must be in"),
        (lambda: lm.decode(np.array([3], np.int32), np.array([0], np.int32),
                           np.zeros(cache_shape, np.float32)), "'token_id' must have shape"),
        (lambda: lm.generate([], 4), "no tokens"),
        (lambda: lm.generate([2], lm.max_length), "max_new_tokens must be in"),
    ]
    for call, message in cases:
        with pytest.raises(ModelInputError, match=message):
            call()
    logits, cache = lm.prefill(np.array([[2, 5]]))  # int64 ids in range are accepted
    logits2, _ = lm.decode([[7]], [2], cache)
    assert logits.shape == logits2.shape == (lm.vocab_size,)


def test_damaged_model_dirs_are_refused(exports, tmp_path, capsys):
    from tflite.run import main
    from tflite.runtime import ModelDirError, TFLiteLM

    copy = tmp_path / "copy"
    shutil.copytree(exports["none"], copy)
    with open(copy / "model.tflite", "r+b") as handle:
        handle.seek(os.path.getsize(copy / "model.tflite") // 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelDirError, match="does not match the sha256"):
        TFLiteLM(str(copy))
    os.remove(copy / "meta.json")
    assert main([str(copy), "--prompt", "x"]) == 2
    assert main([str(tmp_path / "nothing"), "--prompt", "x"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("tflite.run: error:") for e in errors)


def test_streaming_pieces_join_to_the_text(exports):
    from tflite.runtime import TFLiteLM
    from tflite.sampling import Sampler

    lm = TFLiteLM(exports["fp16"])
    pieces = []
    text = lm.generate_text("In the", 12, Sampler(0.9, 20), seed=2, on_text=pieces.append)
    assert "".join(pieces) == text
    assert lm.generate_text("In the", 12, Sampler(0.9, 20), seed=2) == text


def test_numpy_sampler_matches_tensorflow_sampler():
    import tensorflow as tf

    from gpt_tf import sampling as tf_sampling
    from tflite import sampling as np_sampling

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4, 50)).astype(np.float32)
    logits[0, :5] = 7.0  # ties at the k-th value
    for k in (0, 1, 5, 20, 50):
        np.testing.assert_array_equal(np_sampling.filter_top_k(logits, k),
                                      tf_sampling.filter_top_k(tf.constant(logits), k).numpy())
    for p in (0.1, 0.5, 0.9, 1.0):
        np.testing.assert_allclose(np_sampling.filter_top_p(logits, p),
                                   tf_sampling.filter_top_p(tf.constant(logits), p).numpy())
    presence = rng.random((4, 50)) < 0.3
    for settings in [dict(), dict(temperature=0.7, top_k=10, top_p=0.8, repetition_penalty=1.3),
                     dict(temperature=1.0, top_k=1), dict(repetition_penalty=2.0)]:
        ours = np_sampling.Sampler(**settings)
        theirs = tf_sampling.Sampler(**settings)
        if ours.greedy:
            np.testing.assert_array_equal(
                ours(logits, presence=presence),
                theirs(tf.constant(logits), tf.constant([0, 0]), tf.constant(presence)).numpy())
            continue
        allowed = ours.filtered_logits(logits, presence) > -1e8
        generator = np.random.default_rng(1)
        for _ in range(50):
            tokens = ours(logits, generator, presence)
            assert all(allowed[row, token] for row, token in enumerate(tokens))
    assert np_sampling.Sampler(top_k=1, temperature=2.0)(logits[0]) == int(np.argmax(logits[0]))
    with pytest.raises(ValueError, match="top_p"):
        np_sampling.Sampler(top_p=0.0)


# The shipped multi-task run (in the repository, so CI runs the gate), else a
# local Shakespeare run.
REFERENCE_RUN = next(
    (path for path in (os.path.join(ROOT, "models", "multitask"),
                       os.path.join(ROOT, "runs", "shakespeare-mini"))
     if os.path.isfile(os.path.join(path, "model.keras"))),
    os.path.join(ROOT, "models", "multitask"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(os.path.join(REFERENCE_RUN, "model.keras")),
                    reason="needs the shipped models/multitask run")
def test_quality_gates_on_the_reference_model(tmp_path):
    """5.3M-param trained model: int8 perplexity within +5% of fp32 and <= 30% of its size."""
    from gpt_tf.export.tflite import export_tflite_run
    from gpt_tf.training import load_model
    from tflite.runtime import TFLiteLM

    model, tokenizer, config = load_model(REFERENCE_RUN)
    models, sizes = {}, {}
    for quantize in ("none", "fp16", "int8"):
        export_tflite_run(REFERENCE_RUN, quantize, str(tmp_path), quantize)
        models[quantize] = TFLiteLM(str(tmp_path / quantize))
        sizes[quantize] = os.path.getsize(tmp_path / quantize / "model.tflite")
    run = {"run_dir": REFERENCE_RUN, "tokenizer": tokenizer, "config": config}
    windows = _validation_windows(run, count=8)
    perplexity = {q: _perplexity(lm, windows) for q, lm in models.items()}
    prompts = [_prompt_ids(tokenizer, p) for p in ("ROMEO.", "JULIET.", "First Citizen.",
                                                   "KING HENRY.")]
    reference = [models["none"].generate(p, 32, stop_ids=[]).token_ids for p in prompts]
    agreement = {}
    for quantize in ("fp16", "int8"):
        tokens = [models[quantize].generate(p, 32, stop_ids=[]).token_ids for p in prompts]
        agreement[quantize] = sum(a == b for r, e in zip(tokens, reference)
                                  for a, b in zip(r, e)) / sum(map(len, reference))
    print(f"\nsizes {sizes}\nperplexity {perplexity}\nagreement {agreement}")
    assert sizes["none"] >= 0.95 * 4 * model.num_parameters()
    assert sizes["int8"] <= 0.30 * sizes["none"]
    assert perplexity["fp16"] <= perplexity["none"] * 1.005
    assert perplexity["int8"] <= perplexity["none"] * 1.05


def test_export_cli_refuses_to_overwrite(exports, run, capsys):
    from gpt_tf.cli import main

    parent, name = os.path.split(exports["none"])
    assert main(["export", "tflite", run["run_dir"], "--name", name, "--output-dir",
                 parent]) == 2
    # An --output-dir that is a file is refused before the conversion, not after it.
    a_file = os.path.join(parent, "a-file")
    with open(a_file, "w") as handle:
        handle.write("x")
    assert main(["export", "tflite", run["run_dir"], "--name", "x", "--output-dir", a_file]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    os.remove(a_file)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "tflite", run["run_dir"], "--name", "x", "--output-dir", parent,
              "--quantize", "int4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "invalid choice" in err
