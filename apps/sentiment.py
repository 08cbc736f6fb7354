"""Label the sentiment of texts, with probabilities.

    python -m apps.sentiment "a gripping, beautifully acted film" "a dull, lifeless mess"
    >>> from apps.sentiment import classify
    >>> classify("a gripping film")   # {"label": "positive", "probabilities": {...}, ...}

Your own domain (product reviews, support tickets...): label a few dozen of its
texts, fit the label offsets on them once and reuse them:

    python -m apps.sentiment --calibrate mine.jsonl --save-offsets offsets.json
    python -m apps.sentiment --offsets offsets.json "battery died in a week"
"""

import json
import sys

from apps._common import base_parser, client_from_args, get_client, print_json, read_texts, run
from gpt_tf.errors import UserError


def classify(texts, model=None, labels=None, offsets=None):
    """A dict for a string, a list of dicts for a list (see `gpt_tf.tasks.sentiment.classify`)."""
    from gpt_tf.tasks.sentiment import classify as classify_texts

    out = classify_texts(get_client(model), texts, labels, offsets=offsets)
    return out[0] if isinstance(texts, str) else out


def calibrate(texts, gold, model=None, labels=None):
    """Label offsets for `classify`, fitted on labelled texts of your domain (see
    `gpt_tf.tasks.sentiment.calibrate`)."""
    from gpt_tf.tasks.sentiment import calibrate as calibrate_texts

    return calibrate_texts(get_client(model), texts, gold, labels)


def load_offsets(path):
    """The `offsets` of a file written by `--save-offsets` (or a plain `{label: number}`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except OSError as error:
        raise UserError(f"cannot read offsets file '{path}': {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise UserError(f"offsets file '{path}' is not JSON ({error}); write it with "
                        "--calibrate FILE --save-offsets OUT") from None
    if isinstance(value, dict) and isinstance(value.get("offsets"), dict):
        value = value["offsets"]
    if not isinstance(value, dict) or not value:
        raise UserError(f"offsets file '{path}' holds no offsets: expected "
                        '{"offsets": {"negative": -0.4, "positive": 0.4}}')
    return value


def _calibrated(args, client):
    """Offsets fitted on --calibrate's file (None without it), saved to --save-offsets."""
    from gpt_tf.datasets import load_sentiment
    from gpt_tf.tasks.sentiment import calibrate as calibrate_texts

    if not args.calibrate:
        return None
    examples = load_sentiment(args.calibrate)
    fitted = calibrate_texts(client, [e.text for e in examples],
                             [str(e.label) for e in examples], args.labels)
    shown = ", ".join(f"{k} {v:+.3f}" for k, v in fitted["offsets"].items())
    print(f"calibrated on {fitted['examples']} texts of {args.calibrate}: offsets {shown}; "
          f"accuracy on them {fitted['accuracy']['before']:.3f} -> "
          f"{fitted['accuracy']['after']:.3f} (measure on other texts)", file=sys.stderr)
    if args.save_offsets:
        with open(args.save_offsets, "w", encoding="utf-8") as handle:
            json.dump({**fitted, "calibration_file": args.calibrate}, handle, indent=2)
        print(f"wrote {args.save_offsets}", file=sys.stderr)
    return fitted["offsets"]


def main(argv=None):
    from gpt_tf.task_data.formats import check_user_texts
    from gpt_tf.tasks.sentiment import classify as classify_texts

    parser = base_parser("sentiment", "Sentiment of texts with a fine-tuned gpt-tf model.")
    parser.add_argument("text", nargs="*", help="texts (default: stdin lines)")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="labels to choose from (default: the model's)")
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument("--calibrate", metavar="FILE",
                             help="labelled texts of your domain (JSONL or CSV with text and "
                                  "label): fit label offsets on them before classifying")
    calibration.add_argument("--offsets", metavar="FILE",
                             help="label offsets saved by --save-offsets")
    parser.add_argument("--save-offsets", metavar="OUT",
                        help="with --calibrate: write the offsets to OUT (no texts given: "
                             "calibrate only)")
    args = parser.parse_args(argv)
    if args.save_offsets and not args.calibrate:
        raise UserError("--save-offsets writes what --calibrate FILE fits: add --calibrate")
    if args.save_offsets and not args.text:
        _calibrated(args, client_from_args(args))
        return 0
    try:
        texts = read_texts(args.text)
    except UserError as error:
        if args.labels:  # `--labels a b TEXT` takes TEXT as a label
            raise UserError(f"{error} (--labels takes every word after it: put the texts "
                            "before --labels, or end the labels with --)") from None
        raise
    check_user_texts(texts)  # before the model loads
    offsets = load_offsets(args.offsets) if args.offsets else None  # before it loads, too
    client = client_from_args(args)
    offsets = offsets or _calibrated(args, client)
    results = classify_texts(client, texts, args.labels, offsets=offsets)
    if args.json:
        print_json([{"text": t, **r} for t, r in zip(texts, results)])
        return 0
    for text, result in zip(texts, results):
        probabilities = ", ".join(f"{k} {v:.3f}" for k, v in result["probabilities"].items())
        shown = text if len(text) <= 70 else text[:67] + "..."
        print(f"{result['label']:>9s}  ({probabilities})  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(run("apps.sentiment", main))
