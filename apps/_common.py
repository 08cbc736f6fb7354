"""What the four apps share: the default model, opened clients, the CLI frame."""

import argparse
import json
import os
import sys

from gpt_tf import logs
from gpt_tf.errors import UserError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped multi-task model (SavedModel, TF Serving layout); GPT_TF_MODEL overrides it.
DEFAULT_MODEL = os.path.join("saved_models", "multitask")

_clients = {}


def default_model():
    chosen = os.environ.get("GPT_TF_MODEL") or DEFAULT_MODEL
    if not os.path.isabs(chosen) and not os.path.exists(chosen) and "://" not in chosen:
        chosen = os.path.join(REPO_ROOT, chosen)
    return chosen


def get_client(model=None, **options):
    """An open client for `model` (a path, URL or `Client`), cached per target."""
    from gpt_tf.clients import Client, open_client

    if isinstance(model, Client):
        return model
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise UserError(f"model must be a path, a URL or a Client (got {model!r}); leave it out "
                        f"for the shipped model ({DEFAULT_MODEL})")
    target = model or default_model()
    key = (target, tuple(sorted(options.items())))
    if key not in _clients:
        _clients[key] = open_client(target, **options)
    return _clients[key]


def base_parser(prog, description):
    parser = argparse.ArgumentParser(prog=f"python -m apps.{prog}", description=description)
    parser.add_argument("--model", default=None,
                        help="run directory, SavedModel directory, http(s)://HOST:PORT/v1/models/"
                             f"NAME URL or TFLite export (default: {DEFAULT_MODEL}, or "
                             "$GPT_TF_MODEL)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-xla", action="store_true",
                        help="run directories: do not compile with XLA")
    parser.add_argument(logs.VERBOSE_FLAG, action="store_true", help=logs.VERBOSE_HELP)
    return parser


def client_from_args(args):
    options = {"jit_compile": False} if args.no_xla else {}
    return get_client(args.model, **options)


def read_texts(values, what="text"):
    """Texts from the command line, else one per non-empty line of stdin."""
    if values:
        return list(values)
    if sys.stdin.isatty():
        raise UserError(f"give the {what} as arguments or on stdin (one per line)")
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError(f"stdin held no {what} (it was empty or blank); give the {what} as "
                        "arguments or on stdin (one per line)")
    return texts


def run(prog, main, argv=None):
    """Runs `main(argv)` with TensorFlow's logs hidden unless `--verbose` or `GPT_TF_LOG`
    asks for them; user errors print one line and exit 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        logs.configure(verbose=logs.has_verbose_flag(argv))
        return main(argv)
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def print_json(value):
    print(json.dumps(value, ensure_ascii=False, indent=2))
