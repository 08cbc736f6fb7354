"""Typed, frozen configuration: the single source of hyperparameters.

Three sections (`model`, `data`, `train`) live in one `RunConfig`. Presets are
plain data. Overrides use dotted keys (`model.num_layers=6`) and are type
checked; unknown keys and wrong types raise `UserError`. `validate()` is the
one place where cross-field rules are checked.
"""

import dataclasses
import json

from gpt_tf import task_table
from gpt_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape of the GPT.

    Args:
        vocab_size: number of token ids, including special tokens.
        sequence_length: context window (maximum positions).
        num_layers: number of decoder blocks.
        hidden_dim: model width.
        num_heads: attention heads; must divide `hidden_dim`.
        intermediate_dim: width of the MLP inside each block.
        dropout: dropout on embeddings, attention output and MLP output.
        layer_norm_epsilon: epsilon of every LayerNorm.
    """

    vocab_size: int = 8192
    sequence_length: int = 256
    num_layers: int = 4
    hidden_dim: int = 256
    num_heads: int = 4
    intermediate_dim: int = 1024
    dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5

    def num_parameters(self):
        """Exact parameter count of the GPT this config builds (tied head)."""
        d, f = self.hidden_dim, self.intermediate_dim
        per_block = (
            2 * 2 * d  # two LayerNorms
            + 3 * d * d + 3 * d  # fused QKV
            + d * d + d  # attention output
            + d * f + f + f * d + d  # MLP
        )
        return (self.vocab_size * d + self.sequence_length * d
                + self.num_layers * per_block + 2 * d)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How text becomes training windows.

    Args:
        validation_fraction: share of documents (files) held out for validation;
            a single file holds out its contiguous tail instead.
        shuffle_buffer: windows held in the shuffle buffer.
        seed: seed of the shuffle and of the document split.
        tokenizer_model_type: `bpe` or `unigram` (SentencePiece).
    """

    validation_fraction: float = 0.1
    shuffle_buffer: int = 2048
    seed: int = 1234
    tokenizer_model_type: str = "bpe"


# Fine-tuning tasks whose validation answers are scored (`gpt_tf.training.evaluate_totals`),
# and the `train.best_metric` values: the loss, the tasks' mean loss or one of their accuracies.
ANSWER_TASKS = task_table.ANSWER_TASKS
TASK_LOSS = "task_loss"
BEST_METRICS = ("loss", TASK_LOSS) + tuple(f"{task}_accuracy" for task in ANSWER_TASKS)


def selection_score(metrics, best_metric):
    """Lower is better: the validation loss, the scored tasks' mean loss, or minus an answer
    accuracy."""
    if best_metric == "loss":
        return metrics["validation_loss"]
    if best_metric == TASK_LOSS:
        losses = [metrics[f"validation_{t}_loss"] for t in ANSWER_TASKS
                  if f"validation_{t}_loss" in metrics]
        return sum(losses) / len(losses) if losses else metrics["validation_loss"]
    return -metrics.get(f"validation_{best_metric}", 0.0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    Args:
        batch_size: global batch (split over replicas).
        steps: total optimizer steps.
        learning_rate: peak learning rate.
        min_learning_rate: floor of the cosine decay.
        warmup_steps: linear warmup steps.
        weight_decay: AdamW decay, not applied to norms, biases, embeddings
            (see `decay_embeddings`).
        decay_embeddings: whether the token/position embeddings are decayed.
        beta_1: Adam beta 1.
        beta_2: Adam beta 2.
        clip_norm: global gradient norm clip (0 disables).
        eval_every: steps between validation runs.
        eval_at_start: also validate before the first step of a new run (a
            fine-tuning run's starting point, step 0 in `history.jsonl`).
            It counts for `best_metric`: when no later evaluation beats it,
            `restore_best_weights` keeps the starting weights, and early
            stopping counts from it (a run that stops before its last step
            for that is warned about at the start).
        eval_steps: validation batches per evaluation (0: the whole split);
            a fine-tuning run applies it to each task.
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: checkpoints kept by the manager.
        log_every: steps between progress/metric logs.
        seed: weight init and dropout seed.
        xla: compile the forward/backward pass with XLA.
        mixed_precision: `float32`, `bfloat16` or `float16` (float16 uses
            dynamic loss scaling; meant for GPUs, CPUs emulate it slowly).
        gradient_accumulation: micro-batches summed per optimizer step.
        early_stopping_patience: stop after this many evaluations without a
            better `best_metric` (0: never).
        best_metric: what picks the `best` checkpoint and drives early
            stopping: `loss` (the validation loss) or, for a fine-tuning run,
            `task_loss` (the mean of the scored tasks' validation losses,
            each task counted once and the `generate` text left out: the
            total loss of a multi-task run can rise with its text while the
            tasks improve), `translate_accuracy`, `qa_accuracy` or `sentiment_accuracy` (the
            share of that task's validation answers the model predicts
            exactly, token by token; for sentiment, the label; a QA question
            longer than the window counts once per window).
        restore_best_weights: when the run ends (completed or early-stopped),
            `model.keras` gets the weights of the `best` checkpoint instead of
            the last step's (the checkpoints keep the last step, for resuming).
        peak_tflops: accelerator peak used for MFU (0: MFU not logged).
        sample_every: steps between generated text samples in TensorBoard
            (0: off).
        lora_rank: if > 0, train only LoRA adapters of this rank on every
            dense layer (plus biases); embeddings and norms stay frozen. The
            saved `model.keras` has the adapters merged into the kernels.
        profile_steps: `"START,STOP"` to record a TensorBoard profile of
            those steps (needs `tensorboard-plugin-profile` to view), "" off.
    """

    batch_size: int = 16
    steps: int = 1000
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    decay_embeddings: bool = False
    beta_1: float = 0.9
    beta_2: float = 0.95
    clip_norm: float = 1.0
    eval_every: int = 200
    eval_at_start: bool = False
    eval_steps: int = 20
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    log_every: int = 10
    seed: int = 42
    xla: bool = True
    mixed_precision: str = "float32"
    gradient_accumulation: int = 1
    early_stopping_patience: int = 0
    best_metric: str = "loss"
    restore_best_weights: bool = False
    peak_tflops: float = 0.0
    sample_every: int = 0
    profile_steps: str = ""
    lora_rank: int = 0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs: `model`, `data`, `train`."""

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from nested dicts, rejecting unknown keys."""
        if not isinstance(values, dict):
            raise UserError(f"config must be a JSON object, got {type(values).__name__}")
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(
                f"unknown config section(s) {sorted(unknown)}; valid: model, data, train"
            )
        sections = {}
        for field in dataclasses.fields(cls):
            section_cls = field.type
            raw = values.get(field.name, {})
            sections[field.name] = _build_section(section_cls, raw, field.name)
        return validate(cls(**sections))

    @classmethod
    def from_json(cls, text, source=None):
        """A config from JSON text; `source` (a file name) names it in errors."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            where = f"config file '{source}'" if source else "config"
            raise UserError(f"{where} is not valid JSON ({error}); fix it or recreate the "
                            "run") from None
        return cls.from_dict(values)


def _build_section(section_cls, raw, section_name):
    if not isinstance(raw, dict):
        raise UserError(f"config section '{section_name}' must be an object")
    names = {f.name: f for f in dataclasses.fields(section_cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise UserError(
                f"unknown config key '{section_name}.{key}'; "
                f"valid keys: {', '.join(sorted(names))}"
            )
        kwargs[key] = _check_type(f"{section_name}.{key}", names[key].type, value)
    return section_cls(**kwargs)


def _check_type(key, expected, value):
    """Returns `value` as `expected` (int is accepted for float), or raises."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise UserError(f"config '{key}' must be an integer, got {value!r}")
    if not isinstance(value, expected):
        raise UserError(
            f"config '{key}' must be {expected.__name__}, got {value!r} "
            f"({type(value).__name__})"
        )
    return value


def _parse_value(key, expected, text):
    """Parses an override string into the field's type."""
    try:
        if expected is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        return expected(text)
    except ValueError:
        raise UserError(
            f"override '{key}={text}': expected {expected.__name__}, got '{text}'"
        ) from None


PRESETS = {
    # Tests: < 100k parameters.
    "nano": {
        "model": dict(
            vocab_size=512, sequence_length=64, num_layers=2, hidden_dim=32,
            num_heads=2, intermediate_dim=128,
        ),
        "train": dict(batch_size=8, steps=50, warmup_steps=5, eval_every=25,
                      checkpoint_every=25, eval_steps=4, log_every=5),
    },
    # CPU demo: 5.3M parameters at vocab 8192 (the benchmark reference shape).
    "mini": {
        "model": dict(
            vocab_size=8192, sequence_length=256, num_layers=4, hidden_dim=256,
            num_heads=4, intermediate_dim=1024, dropout=0.1,
        ),
        "train": dict(batch_size=16, steps=3000, learning_rate=1e-3, warmup_steps=200,
                      eval_every=250, checkpoint_every=250, eval_steps=40),
    },
    # ~30M parameters.
    "small": {
        "model": dict(
            vocab_size=16384, sequence_length=512, num_layers=6, hidden_dim=512,
            num_heads=8, intermediate_dim=2048, dropout=0.1,
        ),
        "train": dict(batch_size=32, steps=20000, learning_rate=6e-4, warmup_steps=1000),
    },
    # GPT-2 small shape.
    "gpt2-124m": {
        "model": dict(
            vocab_size=50257, sequence_length=1024, num_layers=12, hidden_dim=768,
            num_heads=12, intermediate_dim=3072, dropout=0.1,
        ),
        "train": dict(batch_size=64, steps=100000, learning_rate=6e-4, warmup_steps=2000),
    },
}


def preset(name):
    """Returns the `RunConfig` of a named preset."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name])


def apply_overrides(config, overrides):
    """Applies `section.key=value` strings (or a dict of them) to `config`.

    Args:
        config: a `RunConfig`.
        overrides: iterable of `"model.num_layers=6"` strings, or a dict
            `{"model.num_layers": 6}` with typed values.

    Returns:
        A new, validated `RunConfig`.
    """
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            text = text[2:] if text.startswith("--") else text
            if "=" not in text:
                raise UserError(f"override '{text}' must look like section.key=value")
            key, value = text.split("=", 1)
            items.append((key, value))
    values = config.to_dict()
    for key, value in items:
        if key.count(".") != 1:
            raise UserError(f"override key '{key}' must look like section.key (e.g. model.num_layers)")
        section, name = key.split(".")
        if section not in values:
            raise UserError(f"unknown config section '{section}' in '{key}'; valid: model, data, train")
        section_cls = {f.name: f.type for f in dataclasses.fields(RunConfig)}[section]
        fields = {f.name: f.type for f in dataclasses.fields(section_cls)}
        if name not in fields:
            raise UserError(
                f"unknown config key '{key}'; valid keys in '{section}': {', '.join(sorted(fields))}"
            )
        if isinstance(value, str) and fields[name] is not str:
            value = _parse_value(key, fields[name], value)
        values[section][name] = value
    return RunConfig.from_dict(values)


def validate(config):
    """Checks cross-field rules; returns `config` or raises `UserError`."""
    m, d, t = config.model, config.data, config.train
    problems = []
    for name in ("vocab_size", "sequence_length", "num_layers", "hidden_dim",
                 "num_heads", "intermediate_dim"):
        if getattr(m, name) < 1:
            problems.append(f"model.{name} must be >= 1 (got {getattr(m, name)})")
    if m.num_heads >= 1 and m.hidden_dim % m.num_heads:
        problems.append(
            f"model.hidden_dim ({m.hidden_dim}) must be divisible by model.num_heads ({m.num_heads})"
        )
    if m.vocab_size < 260 + 1:
        # SentencePiece byte fallback needs 256 byte pieces plus special tokens.
        problems.append(f"model.vocab_size must be >= 261 for byte fallback (got {m.vocab_size})")
    if not 0.0 <= m.dropout < 1.0:
        problems.append(f"model.dropout must be in [0, 1) (got {m.dropout})")
    if not 0.0 <= d.validation_fraction < 1.0:
        problems.append(f"data.validation_fraction must be in [0, 1) (got {d.validation_fraction})")
    if d.tokenizer_model_type not in ("bpe", "unigram"):
        problems.append(f"data.tokenizer_model_type must be 'bpe' or 'unigram' (got '{d.tokenizer_model_type}')")
    if d.shuffle_buffer < 1:
        problems.append(f"data.shuffle_buffer must be >= 1 (got {d.shuffle_buffer})")
    for name in ("batch_size", "steps", "eval_every", "checkpoint_every", "log_every",
                 "keep_checkpoints"):
        if getattr(t, name) < 1:
            problems.append(f"train.{name} must be >= 1 (got {getattr(t, name)})")
    if t.learning_rate <= 0:
        problems.append(f"train.learning_rate must be > 0 (got {t.learning_rate})")
    if t.min_learning_rate < 0 or t.min_learning_rate > t.learning_rate:
        # Typical when a fine-tune lowers learning_rate below the floor its base run set.
        problems.append(
            f"train.min_learning_rate must be in [0, learning_rate={t.learning_rate:g}] "
            f"(got {t.min_learning_rate:g}); lower it too, e.g. "
            f"--train.min_learning_rate={max(t.learning_rate, 0) / 10:g}"
        )
    if t.warmup_steps < 0 or t.eval_steps < 0 or t.clip_norm < 0 or t.weight_decay < 0:
        problems.append("train.warmup_steps, eval_steps, clip_norm and weight_decay must be >= 0")
    if t.mixed_precision not in ("float32", "bfloat16", "float16"):
        problems.append(
            f"train.mixed_precision must be float32, bfloat16 or float16 (got '{t.mixed_precision}')"
        )
    if t.gradient_accumulation < 1:
        problems.append(f"train.gradient_accumulation must be >= 1 (got {t.gradient_accumulation})")
    if t.early_stopping_patience < 0 or t.peak_tflops < 0 or t.sample_every < 0 or t.lora_rank < 0:
        problems.append("train.early_stopping_patience, peak_tflops, sample_every and lora_rank "
                        "must be >= 0")
    if t.best_metric not in BEST_METRICS:
        problems.append(f"train.best_metric must be one of {', '.join(BEST_METRICS)} "
                        f"(got '{t.best_metric}')")
    if t.profile_steps:
        parts = t.profile_steps.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or \
                int(parts[0]) >= int(parts[1]):
            problems.append(f"train.profile_steps must look like 'START,STOP' with START < STOP "
                            f"(got '{t.profile_steps}')")
    if problems:
        raise UserError("invalid config: " + "; ".join(problems))
    return config
