"""What the outer loop does after each step, and when it stops: small, named, tested alone.

Actions (`action(output)`, in the order `gpt_tf.training.loop.train` lists them):
`StopOnNonFiniteLoss`, `LogProgress`, `EvaluateAndKeepBest`, `WriteSamples`,
`SaveCheckpoint`. Stop conditions (`stop(output) -> status or None`):
`EarlyStopping`, `StopOnSigterm`, `PauseAfter`. `ProfileSteps` wraps the step
itself; `StepTimer` measures step time without the actions' own time.
"""

import math
import signal
import time

import tensorflow as tf

from gpt_tf.generation import Generator
from gpt_tf.sampling import Sampler


class TrainingStopped(Exception):
    """Training ended early for a reason the user must see (e.g. NaN loss)."""


class StepTimer:
    """Seconds per step since the last log line, leaving out evaluation and sampling time.

    `count_step()` after each step, `restart()` after a log line,
    `skip_elapsed()` after work that is not training (the steps counted so
    far keep counting, over a clock restarted now).
    """

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.restart()

    def restart(self):
        self.start, self.steps = self.clock(), 0

    def count_step(self):
        self.steps += 1

    def skip_elapsed(self):
        self.start = self.clock()

    def step_time(self):
        return (self.clock() - self.start) / self.steps


class ProfileSteps:
    """Wraps the step function: a TensorBoard profile from step `first` to step `last`.

    Args:
        step_fn: `() -> outputs`, one step.
        step: the step variable.
        first, last: the trace starts before the step taken at `first` steps
            done and stops after the one that reaches `last` (`train.profile_steps`).
        logdir: where the trace goes (`logs/profile`).
    """

    def __init__(self, step_fn, step, first, last, logdir):
        self.step_fn, self.step = step_fn, step
        self.first, self.last, self.logdir = first, last, logdir

    def __call__(self):
        if int(self.step.numpy()) == self.first:
            tf.profiler.experimental.start(self.logdir)
        outputs = self.step_fn()
        if int(self.step.numpy()) == self.last:
            tf.profiler.experimental.stop()
        return outputs


class StopOnNonFiniteLoss:
    """Raises `TrainingStopped` (saving nothing) when the loss or gradient norm is not finite.

    With float16 loss scaling, a finite loss with a non-finite gradient norm
    is an overflow the optimizer handled (step skipped, loss scale halved):
    that only warns.

    Args:
        float16: the run uses float16 loss scaling.
        last_checkpoint: `() -> path or None`, named in the message.
        warn: `fn(message)`.
    """

    def __init__(self, float16, last_checkpoint, warn):
        self.float16 = float16
        self.last_checkpoint = last_checkpoint
        self.warn = warn

    def __call__(self, output):
        loss, norm = output.loss, output.grad_norm
        if self.float16 and math.isfinite(loss) and not math.isfinite(norm):
            self.warn(f"float16 gradients overflowed at step {output.step}: step skipped, "
                      "loss scale halved")
        elif not (math.isfinite(loss) and math.isfinite(norm)):
            raise TrainingStopped(
                f"loss became {loss} (gradient norm {norm}) at step {output.step}; stopped "
                f"without saving. Last good checkpoint: {self.last_checkpoint() or 'none'}. "
                "Lower train.learning_rate or raise train.warmup_steps, then rerun to resume")


class LogProgress:
    """Every `every` steps (and at the last): a `step` event and TensorBoard scalars.

    Args:
        timer: the `StepTimer` (this action counts the steps).
        every: `train.log_every`.
        total_steps: `train.steps`.
        tokens_per_step: tokens in one optimizer step (all replicas, micro-batches).
        learning_rate: `() -> float`, the current rate.
        flops_per_token: training FLOPs per token, for `mfu`.
        peak_tflops: the hardware's peak (`train.peak_tflops`; 0: no `mfu`).
        writer: the train summary writer, or None (not the chief).
        emit: `fn(kind, info)`.
    """

    def __init__(self, timer, every, total_steps, tokens_per_step, learning_rate,
                 flops_per_token, peak_tflops, writer, emit):
        self.timer = timer
        self.every = every
        self.total_steps = total_steps
        self.tokens_per_step = tokens_per_step
        self.learning_rate = learning_rate
        self.flops_per_token = flops_per_token
        self.peak_tflops = peak_tflops
        self.writer = writer
        self.emit = emit

    def __call__(self, output):
        self.timer.count_step()
        if output.step % self.every and output.step != self.total_steps:
            return
        info = self.progress(output)
        if self.writer is not None:
            write_train_summaries(self.writer, info)
        self.emit("step", info)
        self.timer.restart()

    def progress(self, output):
        """The `step` event: loss, speed, learning rate, ETA (and `mfu`)."""
        step_time = self.timer.step_time()
        tokens_per_second = self.tokens_per_step / step_time
        info = {"step": output.step, "steps": self.total_steps, "loss": output.loss,
                "grad_norm": output.grad_norm, "step_time": step_time,
                "tokens_per_second": tokens_per_second, "learning_rate": self.learning_rate(),
                "eta_seconds": step_time * (self.total_steps - output.step)}
        if self.peak_tflops > 0:
            info["mfu"] = self.flops_per_token * tokens_per_second / (self.peak_tflops * 1e12)
        return info


def write_train_summaries(writer, info):
    """A `step` event's values as TensorBoard scalars at its step."""
    with writer.as_default(step=info["step"]):
        tf.summary.scalar("loss", info["loss"])
        tf.summary.scalar("perplexity", math.exp(min(info["loss"], 50.0)))
        tf.summary.scalar("learning_rate", info["learning_rate"])
        tf.summary.scalar("gradient_norm", info["grad_norm"])
        tf.summary.scalar("tokens_per_second", info["tokens_per_second"])
        tf.summary.scalar("step_time", info["step_time"])
        if "mfu" in info:
            tf.summary.scalar("mfu", info["mfu"])


class EvaluateAndKeepBest:
    """Every `every` steps (and at the last): validates, and keeps the best checkpoint.

    A better score (`score(metrics)`, lower is better) saves `best/` and
    resets the count of stale evaluations that `EarlyStopping` reads; a score
    that is not better adds one to it.

    Args:
        validate: `fn(step) -> metrics` (an `evaluation.Validator`).
        every: `train.eval_every`.
        total_steps: `train.steps`.
        score: `fn(metrics) -> float` (`gpt_tf.config.selection_score` for `train.best_metric`).
        state: the `TrainState` (`best_score`, `stale_evals`, `save_best`).
        timer: the `StepTimer`, told to leave the evaluation's time out.

    Attributes:
        last_metrics: the latest evaluation's metrics, or None.
    """

    def __init__(self, validate, every, total_steps, score, state, timer):
        self.validate = validate
        self.every = every
        self.total_steps = total_steps
        self.score = score
        self.state = state
        self.timer = timer
        self.last_metrics = None

    def __call__(self, output):
        if output.step % self.every and output.step != self.total_steps:
            return
        self.evaluate(output.step)

    def evaluate(self, step):
        """Validates now (also before the first step: `train.eval_at_start`)."""
        self.last_metrics = self.validate(step)
        score = self.score(self.last_metrics)
        if score < float(self.state.best_score.numpy()):
            self.state.best_score.assign(score)
            self.state.stale_evals.assign(0)
            self.state.save_best()
        else:
            self.state.stale_evals.assign_add(1)
        self.timer.skip_elapsed()


class WriteSamples:
    """Every `every` steps: generates from `prompts` into TensorBoard and a `sample` event.

    Args:
        every: `train.sample_every`.
        writer: the train summary writer.
        model, tokenizer: the run's.
        prompts: the prompts (one sample each).
        timer: the `StepTimer`, told to leave the sampling's time out.
        emit: `fn(kind, info)`.
    """

    def __init__(self, every, writer, model, tokenizer, prompts, timer, emit):
        self.every = every
        self.writer = writer
        self.model = model
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.timer = timer
        self.emit = emit

    def __call__(self, output):
        if output.step % self.every:
            return
        texts = sample_texts(self.model, self.tokenizer, self.prompts, seed=output.step)
        with self.writer.as_default(step=output.step):
            tf.summary.text("samples", tf.constant(texts))
        self.emit("sample", {"step": output.step, "texts": texts})
        self.timer.skip_elapsed()


def sample_texts(model, tokenizer, prompts, seed):
    """Each prompt and its continuation (temperature 0.8, top-k 40, at most 48 tokens)."""
    ids = [[tokenizer.end_of_text_id] + tokenizer.encode(p) for p in prompts]
    new_tokens = min(48, model.backbone.sequence_length // 2)
    result = Generator(model).generate(ids, max_new_tokens=new_tokens,
                                       sampler=Sampler(temperature=0.8, top_k=40), seed=seed,
                                       stop_ids=[tokenizer.end_of_text_id])
    return [p + tokenizer.decode(t) for p, t in zip(prompts, result.token_ids)]


class SaveCheckpoint:
    """Every `every` steps: a checkpoint (and a `checkpoint` event); `save` for other reasons.

    Args:
        state: the `TrainState`.
        every: `train.checkpoint_every`.
        emit: `fn(kind, info)`.
    """

    def __init__(self, state, every, emit):
        self.state = state
        self.every = every
        self.emit = emit

    def __call__(self, output):
        if output.step % self.every == 0:
            self.save("periodic")

    def save(self, reason):
        path = self.state.save()
        self.emit("checkpoint", {"step": self.state.current_step, "path": path, "reason": reason})


class EarlyStopping:
    """Stops (`early_stopped`) once `patience` evaluations in a row did not improve.

    Args:
        stale_evals: the variable `EvaluateAndKeepBest` counts in (checkpointed,
            so a resumed run keeps its count).
        patience: `train.early_stopping_patience` (0: never).
    """

    def __init__(self, stale_evals, patience):
        self.stale_evals = stale_evals
        self.patience = patience

    def __call__(self, output):
        if self.patience and int(self.stale_evals.numpy()) >= self.patience:
            return "early_stopped"
        return None


class StopOnSigterm:
    """Turns SIGTERM (preemption) into a stop (`preempted`) after the current step.

    A context manager: the handler is installed on entry (main thread only)
    and the previous one put back on exit.
    """

    def __init__(self):
        self.raised = False
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def __call__(self, output):
        return "preempted" if self.raised else None


class PauseAfter:
    """Stops (`paused`) after `steps` steps in this call (None or 0: never), to train in slices."""

    def __init__(self, steps):
        self.steps = steps
        self.taken = 0

    def __call__(self, output):
        self.taken += 1
        return "paused" if self.steps and self.taken >= self.steps else None

