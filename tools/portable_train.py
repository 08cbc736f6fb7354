"""Pretrain + fine-tune on a machine without TensorFlow (e.g. a JAX GPU box).

Three steps; only `train` runs on the accelerator machine:

    # here (TensorFlow, data cache): make the two run directories and the arrays
    python tools/portable_train.py prepare --work WORK --mix runs/models/mix \\
        --tokenizer models/multitask/tokenizer.model \\
        --task translate=mt-en-fr --task qa=qa-en --task sentiment=sentiment-en \\
        --task generate=lm-en --weight qa=3 --weight sentiment=3 \\
        --pretrain train.steps=3000 --finetune train.steps=1500

    # there (KERAS_BACKEND=jax, only keras + numpy + this package's model code)
    KERAS_BACKEND=jax python tools/portable_train.py train --work WORK \\
        --finetune-learning-rates 3e-4,1e-3

    # here again: weights -> WORK/base/model.keras, WORK/multitask/model.keras
    python tools/portable_train.py import --work WORK

WORK/multitask is then a fine-tuned run like any other: `gpt-tf export ...`,
`gpt-tf evaluate --model WORK/multitask`. See `gpt_tf/portable.py`.
"""

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE, TUNED, ARRAYS, OUTPUT = "base", "multitask", "arrays.npz", "output"
HISTORY = "history.json"


def _weights_file(stage):
    return f"{stage}.weights.npz"


def prepare(args):
    from gpt_tf.config import apply_overrides, preset
    from gpt_tf.portable import pack_arrays
    from gpt_tf.tasks.finetune import prepare_finetune_run
    from gpt_tf.training import prepare_run

    os.makedirs(args.work, exist_ok=True)
    base, tuned = os.path.join(args.work, BASE), os.path.join(args.work, TUNED)
    config = apply_overrides(preset(args.preset), args.pretrain)
    prepare_run(base, config, [os.path.join(args.mix, "train")],
                [os.path.join(args.mix, "validation")], tokenizer_path=args.tokenizer)
    weights = dict(w.split("=", 1) for w in args.weight)
    prepare_finetune_run(tuned, base, args.task, args.finetune,
                         weights={k: float(v) for k, v in weights.items()},
                         require_trained_base=False)
    counts = pack_arrays(base, tuned, os.path.join(args.work, ARRAYS))
    print(json.dumps(counts, indent=2))


def train(args):
    import keras

    from gpt_tf.config import RunConfig
    from gpt_tf.portable import load_arrays, save_weight_arrays, train_on_arrays

    def load(name):
        with open(os.path.join(args.work, name, "config.json")) as handle:
            return RunConfig.from_dict(json.load(handle))

    base, tuned = load(BASE), load(TUNED)
    arrays, meta = load_arrays(os.path.join(args.work, ARRAYS))
    out = args.output or os.path.join(args.work, OUTPUT)
    os.makedirs(out, exist_ok=True)
    rates = [float(r) for r in args.finetune_learning_rates.split(",")] if \
        args.finetune_learning_rates else [tuned.train.learning_rate]
    trials = [dataclasses.replace(tuned.train, learning_rate=r,
                                  min_learning_rate=min(tuned.train.min_learning_rate, r / 10))
              for r in rates]
    print(f"backend {keras.backend.backend()}; arrays {json.dumps(meta)}", flush=True)
    started = time.time()

    def save(stage, model):
        path = os.path.join(out, _weights_file(stage))
        save_weight_arrays(model, path)
        if args.part_mb:
            _split(path, args.part_mb)
        print(f"saved {stage} after {time.time() - started:.0f} s", flush=True)

    result = train_on_arrays(arrays, base.model, base.train, trials, save,
                             log=lambda line: print(line, flush=True),
                             max_seconds=(args.pretrain_seconds, args.trial_seconds),
                             pretrained=args.pretrained and _joined(args.pretrained))
    result["seconds"] = time.time() - started
    result["backend"] = keras.backend.backend()
    result["arrays"] = meta
    with open(os.path.join(out, HISTORY), "w") as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps({"seconds": round(result["seconds"]),
                      "pretrain_best": result["pretrain"]["best_validation_loss"],
                      "finetune_best": [t["best_validation_loss"]
                                        for t in result["finetune_trials"]],
                      "chosen": result["chosen_trial"]}), flush=True)


def _split(path, part_mb):
    """Cuts `path` into `path.part0`, `path.part1`, ... (a file-size limit on the way back)."""
    size = part_mb * 1024 * 1024
    with open(path, "rb") as handle:
        number = 0
        while chunk := handle.read(size):
            with open(f"{path}.part{number}", "wb") as part:
                part.write(chunk)
            number += 1
    os.remove(path)


def _joined(path):
    """`path`, rebuilt from its `.partN` pieces when only those exist."""
    if not os.path.exists(path) and os.path.exists(path + ".part0"):
        with open(path + ".tmp", "wb") as whole:
            number = 0
            while os.path.exists(f"{path}.part{number}"):
                with open(f"{path}.part{number}", "rb") as part:
                    whole.write(part.read())
                number += 1
        os.replace(path + ".tmp", path)
    return path


def _record_train_config(run_dir, train):
    path = os.path.join(run_dir, "config.json")
    with open(path) as handle:
        config = json.load(handle)
    config["train"] = train
    with open(path + ".tmp", "w") as handle:
        json.dump(config, handle, indent=2)
    os.replace(path + ".tmp", path)


def import_(args):
    from gpt_tf.portable import FINETUNE, PRETRAIN, import_weights

    out = args.output or os.path.join(args.work, OUTPUT)
    with open(os.path.join(out, HISTORY)) as handle:
        result = json.load(handle)
    chosen = result["finetune_trials"][result["chosen_trial"]]
    # The configs as trained (a sweep or a budget may differ from what prepare wrote).
    _record_train_config(os.path.join(args.work, BASE), result["pretrain"]["config"])
    _record_train_config(os.path.join(args.work, TUNED), chosen["config"])
    pretrained = result["pretrain"].get("weights_from") or os.path.join(
        out, _weights_file(PRETRAIN))
    import_weights(os.path.join(args.work, BASE), _joined(pretrained),
                   result["pretrain"]["history"])
    import_weights(os.path.join(args.work, TUNED), _joined(os.path.join(out, _weights_file(FINETUNE))),
                   chosen["history"])
    print(f"imported into {args.work}/{BASE} and {args.work}/{TUNED} "
          f"(fine-tuning trial {result['chosen_trial']}, lr {chosen['config']['learning_rate']})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="run directories + arrays (needs TensorFlow and data)")
    p.add_argument("--work", required=True)
    p.add_argument("--mix", required=True, help="a `gpt-tf data mix` folder")
    p.add_argument("--tokenizer", required=True, help="tokenizer.model to reuse")
    p.add_argument("--preset", default="mini")
    p.add_argument("--task", action="append", required=True)
    p.add_argument("--weight", action="append", default=[])
    p.add_argument("--pretrain", action="append", default=[], help="override, e.g. train.steps=3000")
    p.add_argument("--finetune", action="append", default=[], help="override for fine-tuning")
    p.set_defaults(func=prepare)
    p = sub.add_parser("train", help="train on the arrays (any Keras backend)")
    p.add_argument("--work", required=True)
    p.add_argument("--output", help="where weights and history go (default WORK/output)")
    p.add_argument("--finetune-learning-rates", help="comma-separated sweep, e.g. 3e-4,1e-3")
    p.add_argument("--pretrain-seconds", type=float, help="time budget of pretraining")
    p.add_argument("--trial-seconds", type=float, help="time budget of each fine-tuning trial")
    p.add_argument("--pretrained", help="weights of an earlier pretraining: fine-tune only")
    p.add_argument("--part-mb", type=int, default=0,
                   help="store weights as pieces of at most this many MB")
    p.set_defaults(func=train)
    p = sub.add_parser("import", help="weights -> model.keras in the run directories")
    p.add_argument("--work", required=True)
    p.add_argument("--output")
    p.set_defaults(func=import_)
    args = parser.parse_args(argv)
    from gpt_tf.errors import UserError

    try:
        args.func(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
