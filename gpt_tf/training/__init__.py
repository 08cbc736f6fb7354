"""Training runs: a run directory, one training loop for every strategy, exact resume.

Why a custom loop instead of `model.fit`: stock Keras 3.15 `fit` fails under
`MultiWorkerMirroredStrategy` (keras-team/keras#20585), and a step-exact resume
needs the step, optimizer, dropout seeds and data position in one
`tf.train.Checkpoint`, which `BackupAndRestore` (per epoch only) cannot give.
So `strategy.run` drives one replica step on every strategy.

The loop has an inner and an outer part, in the manner of orbit:

- `step`: the inner step (`build_train_step`): micro-batches, all-reduce, clip, apply.
- `controller`: the outer loop (`Controller`): a step, then actions, then stop conditions.
- `actions`: each thing done between steps, by name: `StopOnNonFiniteLoss`,
  `LogProgress`, `EvaluateAndKeepBest`, `WriteSamples`, `SaveCheckpoint`;
  stops `EarlyStopping`, `StopOnSigterm`, `PauseAfter`.
- `loop`: `train`, which sets a run up, lists the actions and finishes the run.
- `state`: what is checkpointed (`TrainState`), LoRA, a base run's weights.
- `evaluation`: validation loss and answer accuracy (`evaluate`, `Validator`).
- `inputs`: the training and validation datasets of a run's data split.
- `run_dir`: the run directory's files, `prepare_run`, `load_model`.

`gpt_tf.training_cli` runs a prepared run for `gpt-tf train` and `gpt-tf finetune`.
Running `train` again on the same directory resumes at the exact step.
"""

from gpt_tf.task_card import TASK_CARD, read_task_card  # noqa: F401  (re-exported)
from gpt_tf.training.actions import TrainingStopped
from gpt_tf.training.evaluation import (
    count_answers,
    evaluate,
    evaluate_totals,
    validation_metrics,
)
from gpt_tf.training.inputs import validation_sets
from gpt_tf.training.loop import TrainResult, train
from gpt_tf.training.run_dir import (
    CONFIG_FILE,
    HISTORY_FILE,
    INIT_FILE,
    MODEL_KERAS,
    SPLIT_FILE,
    is_run_dir,
    load_model,
    load_run_config,
    load_split,
    prepare_run,
    save_model_atomic,
)
from gpt_tf.training.state import copy_weights, enable_lora
from gpt_tf.training.step import build_train_step, flops_per_token

__all__ = [
    "CONFIG_FILE", "HISTORY_FILE", "INIT_FILE", "MODEL_KERAS", "SPLIT_FILE", "TASK_CARD",
    "TrainResult", "TrainingStopped", "build_train_step", "copy_weights", "count_answers",
    "enable_lora", "evaluate", "evaluate_totals", "flops_per_token", "is_run_dir",
    "load_model", "load_run_config", "load_split", "prepare_run", "read_task_card",
    "save_model_atomic", "train", "validation_metrics", "validation_sets",
]
