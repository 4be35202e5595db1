"""The settings schema as data, from `config.py` (its one source), and what is generated
from it: the VS Code extension's settings (`extension/package.json`: the server settings'
properties and which of them an untrusted workspace may not set) and `docs/settings.md`.

`python -m lsp_llm.settings_schema --write` regenerates both from a checkout;
`--check` (and `tests/test_settings_schema.py`) fails when either has drifted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from lsp_llm.config import Settings, to_camel

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

SECTION = "lspLlm"
DOC = Path("docs") / "settings.md"
PACKAGE = Path("extension") / "package.json"


@dataclass(frozen=True)
class Entry:
    """One leaf setting, as clients and the docs see it."""

    key: str
    """Dotted camelCase, under `lspLlm.` (`completion.maxNewTokens`)."""
    kind: str
    """The JSON type: boolean, integer, number or string."""
    default: JsonValue
    nullable: bool
    choices: tuple[str, ...]
    minimum: float | None
    maximum: float | None
    doc: str
    reload: bool
    daemon_only: bool
    restricted: bool


_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _kind(tp: object) -> tuple[str, bool, tuple[str, ...]]:
    """(JSON type, nullable, choices) of a field's type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        kind, _, choices = _kind(args[0])
        return kind, True, choices
    if origin is typing.Literal:
        return "string", False, tuple(str(c) for c in typing.get_args(tp))
    if isinstance(tp, type) and tp in _KINDS:
        return _KINDS[tp], False, ()
    raise TypeError(f"no JSON type for the settings type {tp!r}")


def entries(
    cls: type = Settings, prefix: str = "", inherited: frozenset[str] = frozenset()
) -> list[Entry]:
    """Every leaf setting of `cls`, in declaration order; a nested group's `reload` and
    `daemon_only` hold for all its settings."""
    out: list[Entry] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        flags = inherited | {k for k in ("reload", "daemon_only") if meta.get(k)}
        key = prefix + to_camel(f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(entries(typing.cast(type, tp), key + ".", frozenset(flags)))
            continue
        if "doc" not in meta:
            raise TypeError(f"setting {key} has no doc (declare it with config.setting)")
        kind, nullable, choices = _kind(tp)
        out.append(
            Entry(
                key=key,
                kind=kind,
                default=f.default,  # type: ignore[arg-type]  # leaves have plain defaults
                nullable=nullable,
                choices=choices,
                minimum=meta.get("min"),
                maximum=meta.get("max"),
                doc=meta["doc"],
                reload="reload" in flags,
                daemon_only="daemon_only" in flags,
                restricted=bool(meta.get("restricted")),
            )
        )
    return out


def _notes(entry: Entry) -> str:
    notes = []
    if entry.reload:
        notes.append("A change reloads the model.")
    if entry.daemon_only:
        notes.append("A client of a `--tcp` daemon cannot set it: the daemon's command line does.")
    return " ".join([entry.doc, *notes])


def vscode_property(entry: Entry) -> dict[str, JsonValue]:
    """The `contributes.configuration.properties` entry for one setting."""
    prop: dict[str, JsonValue] = {"type": [entry.kind, "null"] if entry.nullable else entry.kind}
    prop["default"] = entry.default
    if entry.choices:
        prop["enum"] = list(entry.choices)
    if entry.minimum is not None:
        prop["minimum"] = entry.minimum
    if entry.maximum is not None:
        prop["maximum"] = entry.maximum
    prop["markdownDescription"] = _notes(entry)
    return prop


def package_json(current: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """`extension/package.json` with its server settings generated: the client-only
    properties (those the schema does not hold) stay first, as they are."""
    package = json.loads(json.dumps(current))
    schema = entries()
    ours = {f"{SECTION}.{e.key}" for e in schema}
    properties = package["contributes"]["configuration"]["properties"]
    kept = {k: v for k, v in properties.items() if k not in ours}
    kept.update({f"{SECTION}.{e.key}": vscode_property(e) for e in schema})
    package["contributes"]["configuration"]["properties"] = kept
    untrusted = package["capabilities"]["untrustedWorkspaces"]
    restricted = [k for k in untrusted["restrictedConfigurations"] if k not in ours]
    restricted += [f"{SECTION}.{e.key}" for e in schema if e.restricted]
    untrusted["restrictedConfigurations"] = restricted
    return typing.cast(dict[str, JsonValue], package)


def _show(value: JsonValue) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str) and len(value) > 40:
        return "see below"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _values(entry: Entry) -> str:
    if entry.choices:
        return ", ".join(f"`{c}`" for c in entry.choices)
    if entry.minimum is not None and entry.maximum is not None:
        return f"{entry.kind}, {entry.minimum:g} to {entry.maximum:g}"
    return entry.kind + (" or unset" if entry.nullable else "")


def settings_markdown() -> str:
    """docs/settings.md."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from lsp_llm/config.py by `python -m lsp_llm.settings_schema --write`;",
        "     edit the schema there, not this file (a test fails on drift). -->",
        "",
        "The server reads one object, section `lspLlm`: as `initializationOptions`, in",
        "`workspace/didChangeConfiguration`, or from the client's `workspace/configuration`.",
        'Keys are camelCase and nested (`{"completion": {"maxNewTokens": 64}}`); in VS Code',
        "each is the setting `lspLlm.<key>`. A wrong or unknown key is reported by name and",
        "keeps its previous value; the rest of the object still applies.",
        "",
        "| setting | default | values | what it does |",
        "|---|---|---|---|",
    ]
    schema = entries()
    long_defaults = []
    for e in schema:
        lines.append(
            f"| `{e.key}` | {_show(e.default)} | {_values(e)} | {_notes(e).replace('|', '/')} |"
        )
        if isinstance(e.default, str) and len(e.default) > 40:
            long_defaults.append(e)
    for e in long_defaults:
        lines += ["", f"The default `{e.key}`:", "", f"> {e.default}"]
    restricted = ", ".join(f"`{e.key}`" for e in schema if e.restricted)
    lines += [
        "",
        f"In an untrusted VS Code workspace these come from user settings only: {restricted}",
        "(a workspace could otherwise make the editor run a program, load model code or send",
        "prompts and keys elsewhere).",
        "",
    ]
    return "\n".join(lines)


def _package_text(package: dict[str, JsonValue]) -> str:
    return json.dumps(package, indent=2, ensure_ascii=False) + "\n"


def generated(root: Path) -> dict[Path, str]:
    """What the schema makes of each generated file under `root` (package.json keeps what
    is not the server's settings)."""
    package = json.loads((root / PACKAGE).read_text())
    return {PACKAGE: _package_text(package_json(package)), DOC: settings_markdown()}


def drift(root: Path) -> list[str]:
    """The generated files under `root` that differ from what the schema makes."""
    return [
        str(path)
        for path, text in generated(root).items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]


def write(root: Path) -> None:
    for path, text in generated(root).items():
        (root / path).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsp_llm.settings_schema", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the checkout")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the files")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file has drifted")
    args = parser.parse_args(argv)
    if args.write:
        write(args.root)
        return 0
    stale = drift(args.root)
    for name in stale:
        print(
            f"{name} differs from lsp_llm/config.py: python -m lsp_llm.settings_schema --write",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
