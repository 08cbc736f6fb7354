"""`gpt-tf import hf|keras-hub|openai` and `gpt-tf export hf|keras-hub` (registered there)."""

import json


def register(subparsers):
    imports = subparsers.add_parser(
        "import", help="bring a pretrained GPT-2-family checkpoint in as a run directory",
        description="Create a run directory from pretrained GPT-2-family weights; generate, "
                    "evaluate, finetune, export and serve then use it like any run.")
    kinds = imports.add_subparsers(dest="import_kind", required=True)
    hf = kinds.add_parser("hf", help="a Hugging Face GPT-2 folder (config.json, "
                                     "model.safetensors, vocab.json, merges.txt)")
    hf.add_argument("source", help="the folder (save_pretrained output or a hub snapshot)")
    hf.add_argument("--run-dir", required=True, help="run directory to create")
    hf.add_argument("--json", action="store_true", help="print the result as JSON")
    hf.set_defaults(func=cmd_import)


def cmd_import(args):
    if args.import_kind == "hf":
        from gpt_tf.interop.hf import import_hf

        result = import_hf(args.source, args.run_dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        added = ", ".join(f"{t}={i}" for t, i in result["added_tokens"].items()) or "none"
        print(f"imported {args.source} -> {result['run_dir']}: {result['parameters']:,} "
              f"parameters, vocabulary {result['vocab_size']:,} (added: {added})")
    return 0
