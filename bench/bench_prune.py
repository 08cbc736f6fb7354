"""Magnitude pruning of the shipped model: held-out loss and compressed size per sparsity.

    python bench/bench_prune.py [--run models/multitask] [--arrays runs/portable/arrays.npz]

One-shot pruning (no fine-tuning after it) of the decoder blocks' kernels with
`gpt_tf.pruning`, at several sparsities, on the same weights in one process:
validation loss on answer tokens (fine-tuning validation windows) and on
plain text (pretraining validation stream), and the size of the weights
after gzip (zeros only pay off compressed: dense kernels keep their shape).
Writes bench/results/prune.json. The arrays file comes from
`tools/portable_train.py prepare` (make models-portable).
"""

import argparse
import gzip
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from common import write_json  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "prune.json")


def masked_loss(model, inputs, targets, weights, batch_size=32):
    """Mean next-token loss (nats) on the weighted tokens, by `gpt_tf.training.evaluate`."""
    import tensorflow as tf

    from gpt_tf.training import evaluate

    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets, weights)).batch(batch_size)
    return evaluate(model, dataset)[0]


def gzip_mb(model):
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w.numpy(), np.float32) for w in model.weights])
    return len(gzip.compress(buffer.getvalue(), 6)) / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="models/multitask")
    parser.add_argument("--arrays", default="runs/portable/arrays.npz")
    parser.add_argument("--sparsities", default="0,0.25,0.5,0.75")
    parser.add_argument("--windows", type=int, default=192, help="validation windows per set")
    args = parser.parse_args(argv)

    from gpt_tf.portable import load_arrays, sequential_windows
    from gpt_tf.pruning import apply_masks, magnitude_masks, sparsity_of
    from gpt_tf.training import load_model

    model, _, config = load_model(args.run)
    arrays, _ = load_arrays(args.arrays)
    length = config.model.sequence_length
    task_tokens = arrays["ft_validation_tokens"][:args.windows].astype(np.int32)
    task = (task_tokens[:, :-1], task_tokens[:, 1:],
            arrays["ft_validation_mask"][:args.windows, 1:].astype(np.float32))
    text = [part[:args.windows] for part in sequential_windows(arrays["pre_validation"], length)]
    dense = [np.array(w.numpy()) for w in model.weights]
    rows = []
    for sparsity in [float(s) for s in args.sparsities.split(",")]:
        for weight, value in zip(model.weights, dense):
            weight.assign(value)
        started = time.time()
        apply_masks(model, magnitude_masks(model, sparsity))
        rows.append({"sparsity": sparsity, "measured_sparsity": round(sparsity_of(model), 4),
                     "task_loss": masked_loss(model, *task),
                     "text_loss": masked_loss(model, *text),
                     "weights_gzip_mb": gzip_mb(model), "seconds": time.time() - started})
    base = rows[0]
    print(f"{'sparsity':>8} {'task loss':>10} {'x dense':>8} {'text loss':>10} {'x dense':>8} "
          f"{'gzip MB':>8}")
    for r in rows:
        print(f"{r['measured_sparsity']:>8.2f} {r['task_loss']:>10.4f} "
              f"{r['task_loss'] / base['task_loss']:>8.3f} {r['text_loss']:>10.4f} "
              f"{r['text_loss'] / base['text_loss']:>8.3f} {r['weights_gzip_mb']:>8.2f}")
    write_json(RESULTS, {"run": args.run, "windows": args.windows, "rows": rows})


if __name__ == "__main__":
    main()
