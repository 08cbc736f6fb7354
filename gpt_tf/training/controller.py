"""The outer loop, in the manner of orbit's `Controller`: steps, then actions, then stops.

    while step < total:
        output = step_fn()                  # the inner step (gpt_tf.training.step)
        for action in actions: action(output)
        for stop in stops:
            if stop(output): return that status

An action does one thing after a step (log, evaluate, checkpoint, ...); a stop
condition returns a status (`early_stopped`, `preempted`, `paused`) to end the
loop after this step's actions. Both live in `gpt_tf.training.actions`.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class StepOutput:
    """What one step gives the actions.

    Attributes:
        step: optimizer steps done, this one included.
        loss: the step's training loss.
        grad_norm: the global gradient norm (before clipping).
    """

    step: int
    loss: float
    grad_norm: float


class Controller:
    """Runs `step_fn` until `step` reaches `total_steps`, or a stop condition ends it.

    Args:
        step_fn: `() -> (loss, grad_norm)`: one optimizer step, which increments `step`.
        step: the int64 step variable.
        total_steps: the step to train to.
        actions: callables `action(output)`, applied after every step in order.
        stops: callables `stop(output) -> status or None`, asked in order after
            the actions; the first status ends the loop.
    """

    def __init__(self, step_fn, step, total_steps, actions=(), stops=()):
        self.step_fn = step_fn
        self.step = step
        self.total_steps = total_steps
        self.actions = list(actions)
        self.stops = list(stops)
        self.last_output = None

    def run(self):
        """Trains; returns `completed` or the status of the stop condition that ended it."""
        while int(self.step.numpy()) < self.total_steps:
            loss, norm = self.step_fn()
            loss, norm = float(loss), float(norm)
            output = StepOutput(int(self.step.numpy()), loss, norm)
            self.last_output = output
            for action in self.actions:
                action(output)
            for stop in self.stops:
                status = stop(output)
                if status:
                    return status
        return "completed"
