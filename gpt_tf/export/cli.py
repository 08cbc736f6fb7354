"""`gpt-tf export savedmodel|tflite|verify`: one command per export format."""

import json
import os


def register(subparsers):
    export = subparsers.add_parser(
        "export", help="export a trained run (SavedModel for TF Serving, TFLite for devices)")
    commands = export.add_subparsers(dest="export_command", required=True)

    saved = commands.add_parser(
        "savedmodel", help="write saved_models/NAME/<next version>/ and the TF Serving bundle",
        description="Export a run as a versioned SavedModel with text-in/text-out signatures "
                    "(serving_default, generate, generate_ids, score, tokenize, detokenize, "
                    "logits, task signatures) and refresh models.config & co. in --output-dir.")
    saved.add_argument("run_dir")
    saved.add_argument("--name", required=True, help="model name (TF Serving model_name)")
    saved.add_argument("--output-dir", default="saved_models")
    saved.add_argument("--version", type=int, help="version number (default: next)")
    saved.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"])
    saved.add_argument("--tasks", help="JSON file of task signatures "
                                       "(default: RUN_DIR/export_tasks.json if present)")
    saved.add_argument("--max-new-tokens-limit", type=int,
                       help="largest max_new_tokens a request may ask (default: context / 2)")
    saved.add_argument("--default-max-new-tokens", type=int,
                       help="serving_default: tokens generated (default min(64, limit))")
    saved.add_argument("--default-temperature", type=float, default=0.0,
                       help="serving_default: temperature (default 0, greedy)")
    saved.add_argument("--default-top-k", type=int, default=0)
    saved.add_argument("--default-top-p", type=float, default=1.0)
    saved.add_argument("--default-repetition-penalty", type=float, default=1.0)
    saved.add_argument("--stable", action="store_true",
                       help="label this version 'stable' too (default: 'canary' only)")
    saved.add_argument("--no-xla", action="store_true",
                       help="do not compile generation with XLA (TF Serving then needs no "
                            "--xla_cpu_compilation_enabled)")
    saved.add_argument("--no-warmup", action="store_true", help="skip the warm-up requests file")
    saved.set_defaults(func=cmd_export_savedmodel)

    lite = commands.add_parser(
        "tflite", help="write tflite/NAME/ (model.tflite, tokenizer.model, meta.json)",
        description="Export a run as a .tflite with prefill/decode signatures and an explicit "
                    "KV cache, builtin ops only, for the on-device runner (python -m tflite.run).")
    lite.add_argument("run_dir")
    lite.add_argument("--name", required=True, help="output directory name under --output-dir")
    lite.add_argument("--output-dir", default="tflite")
    lite.add_argument("--quantize", default="none", choices=["none", "fp16", "int8"])
    lite.add_argument("--checkpoint", default="final", choices=["final", "latest", "best"])
    lite.add_argument("--max-length", type=int, help="KV cache length (default: context)")
    lite.add_argument("--overwrite", action="store_true", help="replace an existing export")
    lite.set_defaults(func=cmd_export_tflite)

    from gpt_tf.interop.cli import add_export_commands

    add_export_commands(commands)

    verify = commands.add_parser("verify", help="check a SavedModel version against SHA256SUMS")
    verify.add_argument("export_dir", help="e.g. saved_models/NAME/3")
    verify.set_defaults(func=cmd_export_verify)


def cmd_export_savedmodel(args):
    from gpt_tf.export.bundle import server_commands
    from gpt_tf.export.saved_model import export_run
    from gpt_tf.export.tasks import load_tasks

    tasks = load_tasks(args.tasks) if args.tasks else None
    defaults = {"temperature": args.default_temperature, "top_k": args.default_top_k,
                "top_p": args.default_top_p,
                "repetition_penalty": args.default_repetition_penalty}
    _check_defaults(defaults)
    if args.default_max_new_tokens is not None:
        defaults["max_new_tokens"] = args.default_max_new_tokens
    result = export_run(args.run_dir, args.name, args.output_dir, args.checkpoint, tasks,
                        stable=args.stable, version=args.version,
                        max_new_tokens_limit=args.max_new_tokens_limit, defaults=defaults,
                        jit_compile=not args.no_xla, warmup=not args.no_warmup)
    print(json.dumps({"path": result.path, "name": result.name, "version": result.version,
                      "signatures": result.signatures, "size_bytes": result.size_bytes}))
    commands = server_commands(os.path.abspath(args.output_dir), args.name)
    print(f"serve it:  {commands['gpt_tf']}\n       or:  {commands['docker']}")
    return 0


def _check_defaults(defaults):
    from gpt_tf.sampling import Sampler

    Sampler(defaults["temperature"], defaults["top_k"], defaults["top_p"],
            defaults["repetition_penalty"])  # raises UserError on bad values


def cmd_export_tflite(args):
    from gpt_tf.export.tflite import export_tflite_run

    meta = export_tflite_run(args.run_dir, args.name, args.output_dir, args.quantize,
                             args.checkpoint, args.max_length, args.overwrite)
    path = os.path.join(args.output_dir, args.name)
    print(json.dumps({"path": path, "quantization": meta["quantization"],
                      "size_bytes": meta["size_bytes"], "max_length": meta["max_length"],
                      "operators": meta["operators"]}))
    print(f'run it:  python -m tflite.run {path} --prompt "Hello" --stream')
    return 0


def cmd_export_verify(args):
    from gpt_tf.export.manifest import verify_manifest

    files = verify_manifest(args.export_dir)
    print(f"{args.export_dir}: {len(files)} files match SHA256SUMS")
    return 0
