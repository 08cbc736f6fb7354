"""The outer training loop's parts, each alone: `Controller`, the actions, the stop conditions.

No model and no training here: steps are counters and outputs are made up, so
each action's rule (when it acts, what it records) is checked directly.
`test_training.py` runs them together in real runs.
"""

import os
import signal

import pytest
import tensorflow as tf

from gpt_tf.training import actions
from gpt_tf.training.controller import Controller, StepOutput


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _counting_step(step, losses=None):
    """A step function over `step` that returns the next of `losses` (default 1.0)."""
    values = iter(losses or [])

    def step_fn():
        step.assign_add(1)
        return next(values, 1.0), 0.5

    return step_fn


def _int_step(value=0):
    return tf.Variable(value, dtype=tf.int64)


class FakeState:
    """What the checkpointing actions use of a `TrainState`."""

    def __init__(self, step=0):
        self.step = _int_step(step)
        self.best_score = tf.Variable(float("inf"), dtype=tf.float32)
        self.stale_evals = _int_step()
        self.saved, self.best_saved = [], []

    @property
    def current_step(self):
        return int(self.step.numpy())

    def save(self):
        self.saved.append(self.current_step)
        return f"ckpt-{self.current_step}"

    def save_best(self):
        self.best_saved.append(self.current_step)


# === Controller ===

def test_controller_runs_the_actions_after_every_step_then_the_stops():
    step, calls = _int_step(), []
    controller = Controller(
        _counting_step(step, [3.0, 2.0, 1.0]), step, 3,
        actions=[lambda o: calls.append(("log", o.step)), lambda o: calls.append(("eval", o.step))],
        stops=[lambda o: calls.append(("stop?", o.step))])
    assert controller.run() == "completed"
    assert calls == [(name, s) for s in (1, 2, 3) for name in ("log", "eval", "stop?")]
    assert controller.last_output == StepOutput(step=3, loss=1.0, grad_norm=0.5)


def test_the_first_stop_that_answers_ends_the_loop_after_that_steps_actions():
    step, seen = _int_step(), []
    controller = Controller(
        _counting_step(step), step, 100, actions=[lambda o: seen.append(o.step)],
        stops=[lambda o: None, lambda o: "early_stopped" if o.step == 4 else None,
               lambda o: "paused" if o.step >= 4 else None])
    assert controller.run() == "early_stopped"
    assert seen == [1, 2, 3, 4] and int(step.numpy()) == 4


def test_a_run_already_at_its_last_step_takes_no_step():
    step = _int_step(5)
    controller = Controller(_counting_step(step), step, 5, actions=[pytest.fail])
    assert controller.run() == "completed" and controller.last_output is None


# === StepTimer ===

def test_step_timer_leaves_out_skipped_time_but_keeps_counting_steps():
    clock = FakeClock()
    timer = actions.StepTimer(clock)
    for _ in range(4):
        clock.now += 1.0
        timer.count_step()
    clock.now += 30.0  # an evaluation
    timer.skip_elapsed()
    clock.now += 2.0
    assert timer.step_time() == pytest.approx(2.0 / 4)
    timer.restart()
    clock.now += 3.0
    timer.count_step()
    assert timer.step_time() == pytest.approx(3.0)


# === StopOnNonFiniteLoss ===

def test_a_non_finite_loss_stops_and_names_the_last_good_checkpoint():
    warnings = []
    stop = actions.StopOnNonFiniteLoss(False, lambda: "run/checkpoints/ckpt-8", warnings.append)
    stop(StepOutput(9, 2.5, 1.0))
    for loss, norm in ((float("nan"), 1.0), (2.0, float("inf"))):
        with pytest.raises(actions.TrainingStopped, match="at step 9; stopped without saving. "
                           "Last good checkpoint: run/checkpoints/ckpt-8"):
            stop(StepOutput(9, loss, norm))
    with pytest.raises(actions.TrainingStopped, match="Last good checkpoint: none"):
        actions.StopOnNonFiniteLoss(False, lambda: None, warnings.append)(
            StepOutput(1, float("nan"), 1.0))
    assert warnings == []


def test_a_float16_overflow_only_warns():
    warnings = []
    stop = actions.StopOnNonFiniteLoss(True, lambda: None, warnings.append)
    stop(StepOutput(3, 2.0, float("inf")))
    assert warnings == ["float16 gradients overflowed at step 3: step skipped, loss scale halved"]
    with pytest.raises(actions.TrainingStopped):
        stop(StepOutput(4, float("nan"), float("nan")))


# === LogProgress ===

def test_log_progress_every_n_steps_and_at_the_last(tmp_path):
    clock, events = FakeClock(), []
    timer = actions.StepTimer(clock)
    writer = tf.summary.create_file_writer(str(tmp_path))
    log = actions.LogProgress(timer, every=4, total_steps=10, tokens_per_step=1000,
                              learning_rate=lambda: 0.01, flops_per_token=6e6, peak_tflops=1.0,
                              writer=writer, emit=lambda kind, info: events.append((kind, info)))
    for step in range(1, 11):
        clock.now += 0.5
        log(StepOutput(step, 4.0, 1.5))
    assert [info["step"] for _, info in events] == [4, 8, 10]
    info = events[0][1]
    assert info["step_time"] == pytest.approx(0.5)
    assert info["tokens_per_second"] == pytest.approx(2000)
    assert info["eta_seconds"] == pytest.approx(0.5 * 6)
    assert info["mfu"] == pytest.approx(6e6 * 2000 / 1e12)
    assert {k: info[k] for k in ("loss", "grad_norm", "learning_rate", "steps")} == {
        "loss": 4.0, "grad_norm": 1.5, "learning_rate": 0.01, "steps": 10}
    assert events[2][1]["step_time"] == pytest.approx(0.5)  # 2 steps since step 8
    writer.flush()
    assert any(name.startswith("events.out") for name in os.listdir(tmp_path))


def test_log_progress_without_a_peak_or_a_writer():
    events = []
    log = actions.LogProgress(actions.StepTimer(FakeClock()), 1, 2, 10, lambda: 0.1, 1.0, 0.0,
                              None, lambda kind, info: events.append(info))
    log.timer.clock.now += 1.0
    log(StepOutput(1, 1.0, 1.0))
    assert "mfu" not in events[0]


# === EvaluateAndKeepBest ===

def test_evaluate_keeps_the_best_and_counts_stale_evaluations():
    state, clock = FakeState(), FakeClock()
    timer = actions.StepTimer(clock)
    losses = iter([3.0, 2.0, 2.5, 2.0, 1.0])
    evaluate = actions.EvaluateAndKeepBest(
        lambda step: {"step": step, "validation_loss": next(losses)}, every=2, total_steps=9,
        score=lambda metrics: metrics["validation_loss"], state=state, timer=timer)
    stale = []
    for step in range(1, 10):
        state.step.assign(step)
        evaluate(StepOutput(step, 0.0, 0.0))
        stale.append(int(state.stale_evals.numpy()))
    # Evaluations at 2, 4, 6, 8 and the last step, 9; a tie (2.0 at 8) is not better.
    assert state.best_saved == [2, 4, 9]
    assert stale == [0, 0, 0, 0, 0, 1, 1, 2, 0]
    assert evaluate.last_metrics == {"step": 9, "validation_loss": 1.0}
    assert float(state.best_score.numpy()) == 1.0


def test_evaluation_time_is_left_out_of_the_step_time():
    state, clock = FakeState(), FakeClock()
    timer = actions.StepTimer(clock)

    def slow_validation(step):
        clock.now += 60.0
        return {"validation_loss": 1.0}

    evaluate = actions.EvaluateAndKeepBest(slow_validation, 1, 1, lambda m: 1.0, state, timer)
    clock.now += 1.0
    timer.count_step()
    evaluate(StepOutput(1, 0.0, 0.0))
    clock.now += 1.0
    assert timer.step_time() == pytest.approx(1.0)


# === WriteSamples ===

def test_samples_every_n_steps_into_tensorboard_and_an_event(tmp_path, monkeypatch):
    monkeypatch.setattr(actions, "sample_texts",
                        lambda model, tokenizer, prompts, seed: [f"{p}@{seed}" for p in prompts])
    events = []
    samples = actions.WriteSamples(3, tf.summary.create_file_writer(str(tmp_path)), None, None,
                                   ["a", "b"], actions.StepTimer(FakeClock()),
                                   lambda kind, info: events.append((kind, info)))
    for step in range(1, 7):
        samples(StepOutput(step, 0.0, 0.0))
    assert events == [("sample", {"step": 3, "texts": ["a@3", "b@3"]}),
                      ("sample", {"step": 6, "texts": ["a@6", "b@6"]})]


# === SaveCheckpoint ===

def test_checkpoints_every_n_steps_and_on_demand():
    state, events = FakeState(), []
    save = actions.SaveCheckpoint(state, 4, lambda kind, info: events.append(info))
    for step in range(1, 10):
        state.step.assign(step)
        save(StepOutput(step, 0.0, 0.0))
    save.save("preempted")
    assert state.saved == [4, 8, 9]
    assert events[-1] == {"step": 9, "path": "ckpt-9", "reason": "preempted"}
    assert [e["reason"] for e in events] == ["periodic", "periodic", "preempted"]


# === Stop conditions ===

def test_early_stopping_reads_the_stale_count():
    stale = _int_step()
    stop = actions.EarlyStopping(stale, patience=2)
    output = StepOutput(1, 0.0, 0.0)
    assert stop(output) is None
    stale.assign(2)
    assert stop(output) == "early_stopped"
    assert actions.EarlyStopping(stale, patience=0)(output) is None


def test_pause_after_n_steps_of_this_call():
    pause = actions.PauseAfter(3)
    assert [pause(StepOutput(s, 0.0, 0.0)) for s in (11, 12, 13)] == [None, None, "paused"]
    never = actions.PauseAfter(None)
    assert all(never(StepOutput(s, 0.0, 0.0)) is None for s in range(5))


def test_sigterm_becomes_a_stop_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with actions.StopOnSigterm() as stop:
        assert stop(StepOutput(1, 0.0, 0.0)) is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop(StepOutput(2, 0.0, 0.0)) == "preempted"
    assert signal.getsignal(signal.SIGTERM) is before


# === ProfileSteps ===

def test_profile_covers_the_steps_from_first_to_last(monkeypatch):
    step, calls = _int_step(), []
    monkeypatch.setattr(tf.profiler.experimental, "start",
                        lambda logdir: calls.append(("start", int(step.numpy()))))
    monkeypatch.setattr(tf.profiler.experimental, "stop",
                        lambda: calls.append(("stop", int(step.numpy()))))
    profiled = actions.ProfileSteps(_counting_step(step), step, 2, 4, "logs/profile")
    for _ in range(6):
        profiled()
    assert calls == [("start", 2), ("stop", 4)]
