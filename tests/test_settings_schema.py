"""One settings schema: `lsp_llm/config.py` declares every setting once, and what clients
and the docs hold is generated from it (`python -m lsp_llm.settings_schema --write`). A
setting added, removed or changed on one side only fails here."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lsp_llm.config import Settings, parse_settings, settings_to_wire
from lsp_llm.server.app import DAEMON_ONLY
from lsp_llm.server.pool import MODEL_FIELDS
from lsp_llm.settings_schema import DOC, PACKAGE, drift, entries, main, write

ROOT = Path(__file__).parent.parent


def _flat(wire: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in wire.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_the_extension_and_the_docs_are_what_the_schema_makes():
    assert drift(ROOT) == [], "run: python -m lsp_llm.settings_schema --write"


def test_drift_is_caught_and_write_repairs_it(tmp_path):
    for path in (PACKAGE, DOC):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    package = json.loads((tmp_path / PACKAGE).read_text())
    properties = package["contributes"]["configuration"]["properties"]
    del properties["lspLlm.chat.seed"]
    properties["lspLlm.completion.maxNewTokens"]["maximum"] = 9999
    (tmp_path / PACKAGE).write_text(json.dumps(package, indent=2) + "\n")
    (tmp_path / DOC).write_text((tmp_path / DOC).read_text().replace("`chat.seed`", "`chat.sed`"))
    assert drift(tmp_path) == [str(PACKAGE), str(DOC)]
    assert main(["--root", str(tmp_path), "--check"]) == 1
    write(tmp_path)
    assert drift(tmp_path) == []
    repaired = json.loads((tmp_path / PACKAGE).read_text())["contributes"]["configuration"]
    assert repaired["properties"]["lspLlm.completion.maxNewTokens"]["maximum"] == 4096
    assert "lspLlm.serverCommand" in repaired["properties"]  # client-only ones are kept


def test_every_server_setting_is_in_the_schema_once_with_the_parsers_defaults():
    keys = [e.key for e in entries()]
    assert len(keys) == len(set(keys))
    assert keys == list(_flat(settings_to_wire(Settings())))
    package = json.loads((ROOT / PACKAGE).read_text())
    offered = {
        k.removeprefix("lspLlm."): v
        for k, v in package["contributes"]["configuration"]["properties"].items()
    }
    assert set(offered) - set(keys) == {"serverCommand", "pythonPath", "setup.torchIndexUrl"}
    for key in ("chat.contextTokens", "chat.seed"):  # were missing from the extension
        assert key in offered


@pytest.mark.parametrize("entry", entries(), ids=lambda e: e.key)
def test_the_schemas_values_are_what_the_parser_accepts(entry):
    def parse(value):
        data: dict = {}
        node = data
        *groups, last = entry.key.split(".")
        for group in groups:
            node = node.setdefault(group, {})
        node[last] = value
        return parse_settings(data)[1]

    assert parse(entry.default) == []
    if entry.nullable:
        assert parse(None) == []
    for choice in entry.choices:
        assert parse(choice) == []
    if entry.choices:
        assert parse("not-a-choice") != []
    if entry.minimum is not None:
        assert parse(entry.minimum) == []
        assert parse(entry.minimum - 1) != []
    if entry.maximum is not None:
        assert parse(entry.maximum) == []
        assert parse(entry.maximum + 1) != []


def test_reload_and_daemon_only_sets_come_from_the_schema():
    assert "backend" in MODEL_FIELDS and "model" in MODEL_FIELDS
    assert "completion" not in MODEL_FIELDS and "chat" not in MODEL_FIELDS
    daemon_only = {"backend", "trust_remote_code", "allow_pickle_weights", "threads", "compile"}
    assert set(DAEMON_ONLY) == daemon_only
    by_key = {e.key: e for e in entries()}
    assert by_key["backend.url"].daemon_only and by_key["backend.url"].reload
    assert not by_key["model"].daemon_only and by_key["model"].reload


def test_the_readme_names_only_settings_that_exist():
    keys = {e.key for e in entries()}
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Settings") :]
    named = set(re.findall(r"^\| `([A-Za-z.]+)`", section, flags=re.M))
    assert named, "the README's settings table"
    assert named <= keys, named - keys
