"""Hostile params cost work bounded by the expected shape: a huge string where an array
belongs is one error at once (cattrs alone builds one per character), and a `--tcp` daemon
connection that has not authenticated gets nothing structured but its token checked."""

from __future__ import annotations

import io
import json

import pytest
from cattrs.errors import BaseValidationError
from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.protocol import default_converter

from lsp_llm.server.connection import Connection
from lsp_llm.server.main import create_server
from lsp_llm.server.structuring import ShapeError, bounded_converter


def leaves(exc: BaseException) -> int:
    """How many errors were built under `exc` (its leaves)."""
    if isinstance(exc, BaseValidationError):
        return sum(leaves(e) for e in exc.exceptions)
    return 1


FOLDERS = types.DidChangeWorkspaceFoldersParams
CHANGES = types.DidChangeTextDocumentParams


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"event": {"added": [], "removed": "x" * 1_000_000}}, FOLDERS),
        (
            {"textDocument": {"uri": "file:///a", "version": 1}, "contentChanges": "y" * 1_000_000},
            CHANGES,
        ),
        ({"event": {"added": [{"uri": 1}] * 100_000, "removed": []}}, FOLDERS),
    ],
)
def test_a_wrong_value_is_one_error_whatever_its_size(params, kind):
    with pytest.raises(BaseValidationError) as caught:
        bounded_converter().structure(params, kind)
    assert leaves(caught.value) == 1
    assert isinstance(caught.value.exceptions[0], ShapeError | BaseValidationError)


def test_without_the_bound_each_character_is_an_error():
    """What the bound removes (cattrs as pygls configures it), on a small string."""
    with pytest.raises(BaseValidationError) as caught:
        default_converter().structure({"event": {"added": [], "removed": "x" * 2000}}, FOLDERS)
    assert leaves(caught.value) >= 2000


def test_right_values_are_read_as_before():
    good = {"event": {"added": [{"uri": "file:///a", "name": "a"}], "removed": []}}
    assert bounded_converter().structure(good, FOLDERS) == default_converter().structure(
        good, FOLDERS
    )


class Kept(io.BytesIO):
    """What the server wrote, readable after it closed the connection."""

    def close(self) -> None:
        pass


def initialize(token: str, capabilities: dict) -> bytes:
    params = {"processId": None, "capabilities": capabilities}
    params["initializationOptions"] = {"authToken": token}
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    ).encode()


def _daemon_session(monkeypatch):
    server = create_server()
    protocol = server.protocol
    protocol.connection = Connection.of_daemon("the-token")
    out = Kept()
    protocol.set_writer(StdoutWriter(out))
    structured: list[str] = []
    real = protocol.structure_message
    monkeypatch.setattr(
        protocol,
        "structure_message",
        lambda data: structured.append(data.get("method")) or real(data),
    )
    return protocol, out, structured


def test_before_authenticating_nothing_is_structured(monkeypatch):
    protocol, out, structured = _daemon_session(monkeypatch)
    hostile = {"event": {"added": [], "removed": "x" * 300_000}}
    note = {"jsonrpc": "2.0", "method": "workspace/didChangeWorkspaceFolders", "params": hostile}
    protocol.receive(json.dumps(note).encode())
    assert structured == [] and out.getvalue() == b""  # dropped unread, no answer
    caps = {"textDocument": {"synchronization": "z" * 300_000}}
    protocol.receive(initialize("wrong", caps))
    assert structured == []
    reply = out.getvalue()
    assert b'"id": 1' in reply.replace(b'"id":1', b'"id": 1') and b"authToken" in reply
    assert not protocol.initialize_seen


def test_an_initialize_with_the_token_is_structured(monkeypatch):
    protocol, _out, structured = _daemon_session(monkeypatch)
    protocol.receive(initialize("the-token", {}))
    assert structured == ["initialize"] and protocol.initialize_seen
