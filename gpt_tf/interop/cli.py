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
    hub = kinds.add_parser("keras-hub", help="a keras-hub GPT-2 preset directory "
                                             "(save_to_preset), or a preset name when online")
    hub.add_argument("source", help="preset directory, or e.g. gpt2_base_en")
    openai = kinds.add_parser("openai", help="OpenAI's GPT-2 release folder (hparams.json, "
                                             "model.ckpt.*, encoder.json, vocab.bpe)")
    openai.add_argument("source", help="the folder, e.g. models/124M")
    for parser in (hub, openai):
        parser.add_argument("--run-dir", required=True, help="run directory to create")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    for parser in (hf, hub, openai):
        parser.set_defaults(func=cmd_import)


def add_export_commands(commands):
    """`gpt-tf export hf|keras-hub RUN --out DIR` (called by `gpt_tf.export.cli`)."""
    for kind, text in (("hf", "a Hugging Face GPT-2 folder (safetensors, config, tokenizer)"),
                       ("keras-hub", "a keras-hub preset (GPT2CausalLM.from_preset)")):
        parser = commands.add_parser(kind, help=f"write {text}")
        parser.add_argument("run_dir")
        parser.add_argument("--out", required=True, help="folder to create")
        parser.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"])
        parser.set_defaults(func=cmd_export, export_kind=kind)


def cmd_export(args):
    if args.export_kind == "hf":
        from gpt_tf.interop.hf import export_hf as export
    else:
        from gpt_tf.interop.keras_hub import export_keras_hub as export
    result = export(args.run_dir, args.out, args.checkpoint)
    print(json.dumps(result, indent=2))
    return 0


def cmd_import(args):
    if args.import_kind == "hf":
        from gpt_tf.interop.hf import import_hf as run_import
    elif args.import_kind == "keras-hub":
        from gpt_tf.interop.keras_hub import import_keras_hub as run_import
    else:
        from gpt_tf.interop.openai import import_openai as run_import
    result = run_import(args.source, args.run_dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        added = ", ".join(f"{t}={i}" for t, i in result["added_tokens"].items()) or "none"
        print(f"imported {args.source} -> {result['run_dir']}: {result['parameters']:,} "
              f"parameters, vocabulary {result['vocab_size']:,} (added: {added})")
    return 0
