import json
import os
import subprocess
import sys

import pytest

from gpt_tf.cli import main

TINY = ["--preset", "nano", "--model.vocab_size=320", "--model.sequence_length=32",
        "--model.hidden_dim=16", "--model.num_heads=2", "--model.intermediate_dim=64",
        "--data.validation_fraction=0.25", "--train.batch_size=4", "--train.warmup_steps=2",
        "--train.eval_every=10", "--train.checkpoint_every=10", "--train.log_every=5", "--train.xla=false"]


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpt-tf: error: "), err
    return err[0]


def test_cli_end_to_end(tmp_path, corpus_files, capsys):
    run_dir = str(tmp_path / "run")
    tokenizer_dir = str(tmp_path / "tok")
    assert main(["tokenizer", "train", *corpus_files, "--output", tokenizer_dir,
                 "--vocab-size", "320"]) == 0
    assert "320 tokens" in capsys.readouterr().out
    assert main(["train", "--run-dir", run_dir, "--data", *corpus_files, "--quiet",
                 "--tokenizer", os.path.join(tokenizer_dir, "tokenizer.model"),
                 *TINY, "--train.steps=20"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["step"] == 20
    assert summary["validation_bits_per_byte"] > 0
    # Resume with more steps: continues from 20, does not restart.
    assert main(["train", "--run-dir", run_dir, "--quiet", "--train.steps=25"]) == 0
    captured = capsys.readouterr()
    assert "resumed at step 20" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["step"] == 25

    assert main(["generate", run_dir, "--prompt", "And God said", "--max-new-tokens", "12",
                 "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert greedy.startswith("And God said") and len(greedy) > len("And God said\n")
    assert main(["generate", run_dir, "--prompt", "And God said", "--max-new-tokens", "12",
                 "--temperature", "0", "--stream"]) == 0
    assert capsys.readouterr().out == greedy

    assert main(["evaluate", run_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["perplexity"] > 1 and report["bits_per_byte"] > 0
    assert report["validation_loss"] == pytest.approx(summary["validation_loss"], rel=0.2)


@pytest.mark.parametrize("make, message", [
    (lambda d: [str(d / "missing.txt")], "does not exist"),
    (lambda d: [_write(d / "empty.txt", b"")], "is empty"),
    (lambda d: [_write(d / "blob.dat", b"\x7fELF\x00\x00\x01" * 50)], "looks binary"),
    (lambda d: [_write(d / "bad.txt", b"caf\xe9\n" * 50)], "not valid UTF-8"),
])
def test_bad_data_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, make, message):
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--data", *make(tmp_path), *TINY]) == 2
    assert message in _one_error_line(capsys)
    assert not run_dir.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".run")]


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--preset", "nano", "--model.hidden_dim=30", "--model.num_heads=4"], "divisible"),
    (["--preset", "nano", "--model.vocab_size=60000"], "too small for a vocabulary of 60000"),
    (["--preset", "nano", "--model.num_layerz=2"], "unknown config key"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, corpus_files, capsys, args, message):
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--data", *corpus_files, *args]) == 2
    assert message in _one_error_line(capsys)
    assert not run_dir.exists()


def test_generate_stream_prints_characters_split_over_byte_tokens_whole(tokenizer, monkeypatch,
                                                                       capsys):
    from gpt_tf import generation, training

    ids = tokenizer.encode("a€ b🙂c")

    class ByteByByte:  # stands in for the model: yields the ids one at a time
        def __init__(self, model, jit_compile=True):
            pass

        def generate(self, prompts, max_new_tokens, sampler, seed, stop, on_token=None):
            for step, token in enumerate(ids + stop):
                on_token(step, [token])
                print("|", end="")  # marks each token's write

    monkeypatch.setattr(training, "load_model", lambda run_dir, checkpoint: (None, tokenizer, None))
    monkeypatch.setattr(generation, "Generator", ByteByByte)
    assert main(["generate", "RUN", "--prompt", "x", "--stream", "--temperature", "0"]) == 0
    out = capsys.readouterr().out
    assert "\ufffd" not in out and out.replace("|", "") == "xa€ b🙂c\n"
    assert "|€|" in out


def test_generate_on_a_missing_run(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "not a run directory" in _one_error_line(capsys)


def test_console_script_exit_status(tmp_path):
    # The real entry point, in a fresh process: no traceback, status 2.
    missing = str(tmp_path / "nothing.txt")
    process = subprocess.run(
        [sys.executable, "-m", "gpt_tf.cli", "train", "--run-dir", str(tmp_path / "r"),
         "--data", missing], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert f"input '{missing}' does not exist" in process.stderr


def _write(path, data):
    path.write_bytes(data)
    return str(path)
