"""`lsp-llm serve`: the language server, over stdio (what an editor starts) or, with
`--tcp`, as a shared daemon whose command line alone sets what its clients may not."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lsp_llm.commands.common import Subparsers, backend_args, parse_tcp


def add_parser(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    serve.add_argument(
        "--tcp",
        type=parse_tcp,
        metavar="[HOST:]PORT",
        help="listen on TCP instead of stdio (host defaults to 127.0.0.1)",
    )
    backend_args(
        serve,
        "generate with the OpenAI-compatible engine at this base URL (every session; over "
        "--tcp, clients cannot change it)",
    )
    serve.add_argument(
        "--backend-api-key-env", help="the environment variable holding that engine's API key"
    )
    serve.add_argument(
        "--token-file",
        help="with --tcp: where to write the token clients must send (default "
        "$XDG_RUNTIME_DIR/lsp-llm/tcp-PORT.token, else ~/.cache/lsp-llm/tcp-PORT.token)",
    )
    serve.add_argument(
        "--model",
        help="the model every session starts with (a client may still choose another the "
        "daemon allows)",
    )
    serve.add_argument(
        "--model-dir",
        action="append",
        default=[],
        help="with --tcp: clients may choose models inside this folder (repeatable)",
    )
    serve.add_argument(
        "--allow-model",
        action="append",
        default=[],
        help="with --tcp: clients may choose this model id or path (repeatable)",
    )
    serve.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let models run their own code (over --tcp, only this flag can allow it)",
    )
    serve.add_argument(
        "--allow-pickle-weights",
        action="store_true",
        help="load non-safetensors weights (over --tcp, only this flag can allow it)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for local models (0: the physical cores; over --tcp, only this "
        "flag sets it: it is process-wide)",
    )
    serve.add_argument(
        "--compile",
        action="store_true",
        help="on a CPU, compile the decoding step with torch.compile (the `compile` "
        "setting; over --tcp, only this flag can turn it on)",
    )
    serve.add_argument(
        "--stdio",
        action="store_true",
        help="LSP over stdin/stdout (the default; accepted "
        "because clients such as vscode-languageclient pass it)",
    )


def run(args: argparse.Namespace) -> int:
    from lsp_llm.config import parse_settings
    from lsp_llm.server.auth import ModelPolicy
    from lsp_llm.server.main import serve as serve_lsp

    wire = {"url": args.backend_url, "model": args.backend_model}
    if args.backend_api_key_env:
        wire["apiKeyEnv"] = args.backend_api_key_env
    defaults, errors = parse_settings(
        {
            "model": args.model,
            "backend": wire,
            "trustRemoteCode": args.trust_remote_code,
            "allowPickleWeights": args.allow_pickle_weights,
            "threads": args.threads,
            "compile": args.compile,
        }
    )
    key_env = args.backend_api_key_env
    if key_env and key_env not in os.environ:
        errors.append(f"--backend-api-key-env: {key_env} is not set in this environment")
    if errors:
        print(f"lsp-llm serve: {'; '.join(errors)}", file=sys.stderr)
        return 2
    allowed = (*args.allow_model, *([args.model] if args.model else []))
    policy = ModelPolicy(tuple(Path(d).resolve() for d in args.model_dir), allowed)
    token_file = Path(args.token_file) if args.token_file else None
    return serve_lsp(args.tcp, defaults, token_file, policy)
