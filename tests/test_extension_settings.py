"""The VS Code extension's settings (extension/package.json) against the server's: every
server setting the extension offers has the server's default and, where the server has
a range, the same bounds; every `lspLlm.*` key is either sent to the server or client-only
(extension/src/settings.ts). A setting added on one side and not the other fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lsp_llm.config import Settings, settings_to_wire

EXTENSION = Path(__file__).parent.parent / "extension"


def _flat(wire: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in wire.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _server_keys() -> list[str]:
    source = (EXTENSION / "src" / "settings.ts").read_text()
    block = source[source.index("export const SERVER_KEYS") :]
    block = block[: block.index("] as const")]
    return re.findall(r'"([A-Za-z.]+)"', block)


def test_extension_defaults_and_bounds_match_the_server():
    package = json.loads((EXTENSION / "package.json").read_text())
    offered = {
        key.removeprefix("lspLlm."): spec
        for key, spec in package["contributes"]["configuration"]["properties"].items()
    }
    server = _flat(settings_to_wire(Settings()))
    keys = _server_keys()
    assert set(keys) <= set(server), set(keys) - set(server)
    assert set(keys) <= set(offered), set(keys) - set(offered)
    client_only = set(offered) - set(keys)
    assert client_only == {"serverCommand", "pythonPath", "setup.torchIndexUrl"}, client_only
    bounds = _bounds()
    for key in keys:
        spec = offered[key]
        if spec.get("default") is not None:  # a null default leaves it to the server
            assert spec["default"] == server[key], (key, spec["default"], server[key])
        low, high = bounds.get(key, (None, None))
        if low is not None and "minimum" in spec:
            assert spec["minimum"] == low, key
        if high is not None and "maximum" in spec:
            assert spec["maximum"] == high, key


def _bounds() -> dict[str, tuple[Any, Any]]:
    import dataclasses

    from lsp_llm.config import to_camel

    out: dict[str, tuple[Any, Any]] = {}

    def walk(cls: Any, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(default):
                walk(type(default), f"{prefix}{to_camel(f.name)}.")
            elif "min" in f.metadata or "max" in f.metadata:
                out[prefix + to_camel(f.name)] = (f.metadata.get("min"), f.metadata.get("max"))

    walk(Settings, "")
    return out
