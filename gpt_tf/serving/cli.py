"""`gpt-tf serve`: the TF-Serving-compatible model server (flags as in TF Serving)."""

import logging
import os
import signal
import sys


def register(subparsers):
    serve = subparsers.add_parser(
        "serve", help="serve SavedModels with TF Serving's REST API (and gRPC with --port)",
        description="A TF-Serving-compatible server over exported SavedModels. Flags follow "
                    "tensorflow_model_server: --rest_api_port is REST, --port is gRPC.")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_config_file", help="models.config (ModelServerConfig text)")
    source.add_argument("--model_base_path", help="directory with integer version subdirs")
    serve.add_argument("--model_name", default="default",
                       help="name for --model_base_path (default 'default')")
    serve.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0: any)")
    serve.add_argument("--rest_api_host", default="127.0.0.1",
                       help="REST bind address (TF Serving binds 0.0.0.0; default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0,
                       help="gRPC port (TF Serving's default is 8500; 0: no gRPC server)")
    serve.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                       help="seconds between scans for new versions (0: scan once)")
    serve.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0.0,
                       help="seconds between re-reads of --model_config_file (0: never)")
    serve.add_argument("--enable_model_warmup", type=_bool, default=True,
                       help="replay assets.extra/tf_serving_warmup_requests at load")
    serve.add_argument("--monitoring_config_file", help="monitoring.config (Prometheus path)")
    serve.add_argument("--max_concurrent_requests", type=int, default=8,
                       help="requests running at once; more get HTTP 429")
    serve.add_argument("--max_body_bytes", type=int, default=4 << 20,
                       help="larger request bodies get HTTP 413")
    serve.add_argument("--max_batch_size", type=int, default=64, help="instances per request")
    serve.add_argument("--max_string_bytes", type=int, default=16384,
                       help="bytes per string input (bounds prompt length)")
    serve.add_argument("--max_new_tokens", type=int, default=0,
                       help="cap on max_new_tokens (0: each export's own limit)")
    serve.add_argument("--max_request_tokens", type=int, default=8192,
                       help="compute budget per request: rows x (prompt + new tokens), "
                            "checked before it runs; more get HTTP 413 (0: no limit)")
    serve.add_argument("--max_response_bytes", type=int, default=32 << 20,
                       help="largest response; requests whose answer would be larger get "
                            "HTTP 413 before they run (0: no limit)")
    serve.add_argument("--rest_api_header_timeout_seconds", type=float, default=10.0,
                       help="seconds a connection has to send its request headers (and an "
                            "idle keep-alive connection stays open)")
    serve.add_argument("--rest_api_max_connections", type=int, default=256,
                       help="REST connections served at once (a thread each); more get 503")
    serve.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False,
                       help="merge concurrent requests of a signature into one model call, "
                            "padded to allowed batch sizes (TF Serving's batching)")
    serve.add_argument("--batching_parameters_file",
                       help="BatchingParameters text (max_batch_size, batch_timeout_micros, "
                            "allowed_batch_sizes, ...); default: the export bundle's "
                            "batching_parameters.txt values")
    serve.add_argument("--require_manifest", type=_bool, default=True,
                       help="load only versions whose SHA256SUMS verifies")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)


def _bool(text):
    value = str(text).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    import argparse

    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _monitoring_path(path):
    import re

    from gpt_tf.errors import UserError
    from gpt_tf.serving.server import METRICS_PATH

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        raise UserError(f"monitoring config '{path}' cannot be read") from None
    match = re.search(r'path\s*:\s*"([^"]+)"', text)
    return match.group(1) if match else METRICS_PATH


def _check_not_a_version(spec):
    """A SavedModel given as a base path: TF Serving would poll it forever, loading nothing."""
    from gpt_tf.errors import UserError
    from gpt_tf.serving.models import VERSION_DIR

    path = spec.base_path
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return
    name = os.path.basename(os.path.normpath(path))
    fix = (f"give the folder above it, '{os.path.dirname(os.path.normpath(path))}'"
           if VERSION_DIR.match(name) else
           f"move it into a version folder (e.g. '{path}/1') and give '{path}'")
    raise UserError(f"model {spec.name}: base path '{path}' is itself a SavedModel, but a base "
                    f"path holds versions (BASE/1/saved_model.pb); {fix}")


def build_server(args):
    """`ModelServer` from parsed `gpt-tf serve` arguments (models polled once)."""
    from gpt_tf.errors import UserError
    from gpt_tf.serving.models import ModelManager, ModelSpec, specs_from_config_file
    from gpt_tf.serving.server import METRICS_PATH, ModelServer, ServerOptions

    if not 0 <= args.rest_api_port <= 65535:
        raise UserError(f"--rest_api_port must be in [0, 65535] (got {args.rest_api_port}); "
                        "0 picks a free port")
    if args.model_config_file:
        specs = specs_from_config_file(args.model_config_file)
    else:
        if not os.path.isdir(args.model_base_path):
            raise UserError(f"--model_base_path '{args.model_base_path}' is not a directory")
        specs = [ModelSpec(args.model_name, os.path.abspath(args.model_base_path))]
    for spec in specs:
        _check_not_a_version(spec)
    for value, flag in ((args.max_concurrent_requests, "--max_concurrent_requests"),
                        (args.max_body_bytes, "--max_body_bytes"),
                        (args.max_batch_size, "--max_batch_size"),
                        (args.max_string_bytes, "--max_string_bytes"),
                        (args.rest_api_max_connections, "--rest_api_max_connections")):
        if value < 1:
            raise UserError(f"{flag} must be >= 1")
    for value, flag in ((args.max_request_tokens, "--max_request_tokens"),
                        (args.max_response_bytes, "--max_response_bytes")):
        if value < 0:
            raise UserError(f"{flag} must be >= 0 (0: no limit)")
    if not args.rest_api_header_timeout_seconds > 0:
        raise UserError("--rest_api_header_timeout_seconds must be > 0")
    batching = None
    if args.batching_parameters_file and not args.enable_batching:
        raise UserError("--batching_parameters_file is read only with --enable_batching; add "
                        "--enable_batching")
    if args.enable_batching:
        from gpt_tf.serving.batching import read_batching_parameters

        batching = read_batching_parameters(args.batching_parameters_file)
        if batching.ignored:
            logging.getLogger("gpt_tf.serving").warning(
                "batching parameters not implemented by gpt-tf serve, ignored: %s",
                ", ".join(batching.ignored))
    options = ServerOptions(
        max_body_bytes=args.max_body_bytes, max_concurrent_requests=args.max_concurrent_requests,
        max_batch_size=args.max_batch_size, max_string_bytes=args.max_string_bytes,
        max_new_tokens=max(0, args.max_new_tokens),
        max_request_tokens=args.max_request_tokens, max_response_bytes=args.max_response_bytes,
        header_timeout=args.rest_api_header_timeout_seconds,
        max_connections=args.rest_api_max_connections,
        metrics_path=_monitoring_path(args.monitoring_config_file)
        if args.monitoring_config_file else METRICS_PATH, batching=batching)
    manager = ModelManager(specs, require_manifest=args.require_manifest,
                           warmup=args.enable_model_warmup)
    manager.poll_once()
    reloader = (lambda: specs_from_config_file(args.model_config_file)) \
        if args.model_config_file else None
    manager.start_polling(args.file_system_poll_wait_seconds, reloader,
                          args.model_config_file_poll_wait_seconds)
    try:
        return ModelServer(manager, args.rest_api_host, args.rest_api_port, options,
                           grpc_port=args.port if args.port else None, owns_manager=True)
    except OSError as error:
        manager.stop()
        raise UserError(f"cannot listen on {args.rest_api_host}:{args.rest_api_port} "
                        f"({error.strerror}); choose another --rest_api_port") from None


def cmd_serve(args):
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    server = build_server(args)
    for name in server.manager.model_names():
        status = server.manager.status(name) if server.manager.states.get(name) else None
        versions = [s["version"] + ":" + s["state"] for s in (status or {}).get(
            "model_version_status", [])]
        if versions:
            print(f"model {name}: {', '.join(versions)}", file=sys.stderr)
        else:
            base = getattr(server.manager.specs.get(name), "base_path", "BASE")
            manifest = (" and SHA256SUMS (written by `gpt-tf export`; or pass "
                        "--require_manifest=false)" if args.require_manifest else "")
            print(f"model {name}: no versions yet under '{base}' (a version is a positive "
                  f"integer folder, e.g. {base}/1, holding saved_model.pb{manifest}); " + (
                      f"polling every {args.file_system_poll_wait_seconds:g} s"
                      if args.file_system_poll_wait_seconds > 0 else
                      "not polling (--file_system_poll_wait_seconds 0): add one and restart"),
                  file=sys.stderr)
    grpc = f", gRPC on port {server.grpc_port}" if server.grpc_port else ""
    batching = server.options.batching
    if batching is not None:
        print(f"batching: up to {batching.max_batch_size} rows per call, padded to "
              f"{list(batching.allowed_batch_sizes) or 'no fixed sizes'}, "
              f"{batching.batch_timeout_micros} us timeout, {batching.num_batch_threads} "
              "threads", file=sys.stderr)
    print(f"serving REST on {server.url}{grpc} (Ctrl-C to stop)", file=sys.stderr, flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
