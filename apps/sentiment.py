"""Label the sentiment of texts, with probabilities.

    python -m apps.sentiment "a gripping, beautifully acted film" "a dull, lifeless mess"
    >>> from apps.sentiment import classify
    >>> classify("a gripping film")   # {"label": "positive", "probabilities": {...}, ...}
"""

import sys

from apps._common import base_parser, client_from_args, get_client, print_json, read_texts, run
from gpt_tf.errors import UserError


def classify(texts, model=None, labels=None):
    """A dict for a string, a list of dicts for a list (see `gpt_tf.tasks.sentiment.classify`)."""
    from gpt_tf.tasks.sentiment import classify as classify_texts

    out = classify_texts(get_client(model), texts, labels)
    return out[0] if isinstance(texts, str) else out


def main(argv=None):
    from gpt_tf.task_data.formats import check_user_texts
    from gpt_tf.tasks.sentiment import classify as classify_texts

    parser = base_parser("sentiment", "Sentiment of texts with a fine-tuned gpt-tf model.")
    parser.add_argument("text", nargs="*", help="texts (default: stdin lines)")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="labels to choose from (default: the model's)")
    args = parser.parse_args(argv)
    try:
        texts = read_texts(args.text)
    except UserError as error:
        if args.labels:  # `--labels a b TEXT` takes TEXT as a label
            raise UserError(f"{error} (--labels takes every word after it: put the texts "
                            "before --labels, or end the labels with --)") from None
        raise
    check_user_texts(texts)  # before the model loads
    results = classify_texts(client_from_args(args), texts, args.labels)
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
