"""Translate text (English -> French by default) with a fine-tuned model.

    python -m apps.translate "In the beginning God created the heavens and the earth."
    python -m apps.translate --model tflite/tasks-int8 --source en --target fr < lines.txt
    >>> from apps.translate import translate
    >>> translate("Jesus wept.")
"""

import sys

from apps._common import base_parser, client_from_args, get_client, print_json, read_texts, run


def translate(texts, model=None, source="en", target="fr", max_new_tokens=None):
    """Translates a string (returns a string) or a list of strings (returns a list)."""
    from gpt_tf.tasks.translate import translate as translate_texts

    out = translate_texts(get_client(model), texts, source, target, max_new_tokens)
    return out[0] if isinstance(texts, str) else out


def main(argv=None):
    from gpt_tf.task_data.formats import check_user_texts
    from gpt_tf.tasks.translate import translate as translate_texts

    parser = base_parser("translate", "Translate text with a fine-tuned gpt-tf model.")
    parser.add_argument("text", nargs="*", help="text to translate (default: stdin lines)")
    parser.add_argument("--source", default="en", help="source language key (default en)")
    parser.add_argument("--target", default="fr", help="target language key (default fr)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    args = parser.parse_args(argv)
    texts = read_texts(args.text)
    check_user_texts(texts)  # before the model loads
    client = client_from_args(args)
    translations = translate_texts(client, texts, args.source, args.target, args.max_new_tokens)
    if args.json:
        print_json([{"source": s, "translation": t} for s, t in zip(texts, translations)])
    else:
        for translation in translations:
            print(translation)
    return 0


if __name__ == "__main__":
    sys.exit(run("apps.translate", main))
