"""`gpt-tf train` and `gpt-tf finetune` share one runner: the same flags, the same exit statuses.

Training itself is replaced by stand-ins here (`test_cli.py` and
`test_reliability.py` run it for real), so each outcome is cheap to produce.
"""

import json

import pytest
import tensorflow as tf

from gpt_tf import distribute, launcher, training
from gpt_tf.cli import build_parser, main
from gpt_tf.training_cli import add_run_arguments

COMMANDS = ["train", "finetune"]


@pytest.fixture()
def prepared_run(tmp_path, tiny_config):
    """A directory that reads as a prepared run (its config is all the commands open here)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(tiny_config.to_json())
    return str(run_dir)


@pytest.fixture()
def no_determinism(monkeypatch):
    """Records `--deterministic` instead of switching this test process to deterministic ops."""
    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism",
                        lambda: calls.append(True))
    return calls


def _train_gives(monkeypatch, outcome):
    """`training.train` returns a result with status `outcome`, or raises `outcome`."""
    calls = []
    monkeypatch.setattr(distribute, "make_strategy", lambda name, cpu_devices=0: name)

    def fake_train(run_dir, strategy, on_event, sample_prompts, overrides):
        calls.append({"strategy": strategy, "prompts": sample_prompts, "overrides": overrides})
        if isinstance(outcome, Exception):
            raise outcome
        return training.TrainResult(status=outcome, step=7, final_loss=2.5,
                                    validation={"step": 7, "validation_loss": 3.0},
                                    resumed_from=0)

    monkeypatch.setattr(training, "train", fake_train)
    return calls


def _run_options(parser):
    return {a.dest: (tuple(a.option_strings), a.default) for a in parser._actions}


def test_both_commands_have_the_run_flags():
    import argparse

    expected = argparse.ArgumentParser()
    add_run_arguments(expected)
    expected = _run_options(expected)
    expected.pop("help")
    subcommands = next(a for a in build_parser()._actions
                       if isinstance(a, argparse._SubParsersAction)).choices
    for command in COMMANDS:
        options = _run_options(subcommands[command])
        assert {k: options.get(k) for k in expected} == expected, command


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("outcome, status", [("completed", 0), ("early_stopped", 0),
                                             ("paused", 0), ("preempted", 143)])
def test_a_finished_run_prints_its_summary(command, outcome, status, prepared_run,
                                           monkeypatch, capsys, no_determinism):
    calls = _train_gives(monkeypatch, outcome)
    assert main([command, "--run-dir", prepared_run, "--quiet", "--deterministic",
                 "--sample-prompt", "Once", "--train.steps=9"]) == status
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == {
        "status": outcome, "step": 7, "final_loss": 2.5, "validation_loss": 3.0}
    assert ("preempted (SIGTERM): checkpoint saved" in captured.err) == (outcome == "preempted")
    assert calls == [{"strategy": "auto", "prompts": ["Once"], "overrides": ["train.steps=9"]}]
    assert no_determinism == [True]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_nan_stop_exits_3(command, prepared_run, monkeypatch, capsys):
    _train_gives(monkeypatch, training.TrainingStopped("loss became nan at step 3"))
    assert main([command, "--run-dir", prepared_run, "--quiet"]) == 3
    assert capsys.readouterr().err.strip() == \
        "gpt-tf: training stopped: loss became nan at step 3"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_failed_peer_worker_exits_4_under_multi_worker_only(command, prepared_run,
                                                               monkeypatch, capsys):
    _train_gives(monkeypatch, tf.errors.UnavailableError(None, None, "peer gone\nmore"))
    assert main([command, "--run-dir", prepared_run, "--quiet",
                 "--strategy", "multi_worker"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a peer worker failed (UnavailableError: peer gone)" in err[0]
    with pytest.raises(tf.errors.UnavailableError):
        main([command, "--run-dir", prepared_run, "--quiet"])


@pytest.mark.parametrize("command", COMMANDS)
def test_workers_relaunch_the_prepared_run(command, prepared_run, monkeypatch, no_determinism):
    launched = []
    monkeypatch.setattr(launcher, "run_workers",
                        lambda args, workers, restarts, on_output, on_event:
                        launched.append((args, workers, restarts)) or 0)
    assert main([command, "--run-dir", prepared_run, "--workers", "2", "--max-restarts", "1",
                 "--quiet", "--deterministic", "--train.steps=9"]) == 0
    assert launched == [(["--run-dir", prepared_run, "--train.steps=9", "--quiet",
                          "--deterministic"], 2, 1)]
    assert main([command, "--run-dir", prepared_run, "--workers", "1"]) == 2
