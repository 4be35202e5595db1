"""The custom protocol's messages (`lsp_llm/server/wire.py`): read strictly, every error
naming its field, written in camelCase, and mirrored field for field by the extension."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_llm.server import wire
from lsp_llm.server.wire import ActionData, ChatParams, structure, unstructure

CHAT = "lspLlm/chat"
RANGE = {"start": {"line": 1, "character": 2}, "end": {"line": 3, "character": 0}}


def test_a_chat_request_reads_into_its_classes():
    params = structure(
        {
            "messages": [
                {"role": "system", "content": "be short"},
                {"role": "user", "content": "hi \udc00"},
            ],
            "context": {"uri": "file:///a.py", "range": RANGE},
            "partialResultToken": 7,
            "somethingNewer": True,  # a newer client's field is ignored, not refused
        },
        ChatParams,
        CHAT,
    )
    assert [m.role for m in params.messages] == ["system", "user"]
    assert params.messages[1].content == "hi \ufffd"  # a lone surrogate cannot be tokenized
    assert params.context is not None and params.context.range == types.Range(
        types.Position(1, 2), types.Position(3, 0)
    )
    assert params.partial_result_token == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hello", "lspLlm/chat must be an object, got a string"),
        (None, "lspLlm/chat must be an object, got null"),
        ({}, "lspLlm/chat.messages is missing"),
        ({"messages": "hi"}, "lspLlm/chat.messages must be an array, got a string"),
        ({"messages": [5]}, "lspLlm/chat.messages[0] must be an object, got a number"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "wizard", "content": "b"}]},
            "lspLlm/chat.messages[1].role must be one of system, user, assistant",
        ),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "lspLlm/chat.messages[0].content must be a string, got a number",
        ),
        (
            {
                "messages": [],
                "context": {"uri": "u", "range": {**RANGE, "end": {"line": True, "character": 0}}},
            },
            "lspLlm/chat.context.range.end.line must be an integer from 0 to 2147483647, "
            "got a boolean",
        ),
        (
            {
                "messages": [],
                "context": {"uri": "u", "range": {**RANGE, "start": {"line": -1, "character": 0}}},
            },
            "lspLlm/chat.context.range.start.line must be an integer from 0 to 2147483647, "
            "got one out of range",
        ),
        (
            {"messages": [], "partialResultToken": 1.5},
            "lspLlm/chat.partialResultToken must be an integer or a string, got a number",
        ),
    ],
)
def test_what_does_not_fit_is_invalid_params_naming_the_field(value, message):
    with pytest.raises(JsonRpcInvalidParams) as caught:
        structure(value, ChatParams, CHAT)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_huge_wrong_array_is_one_error_at_once():
    """The bound structuring.py keeps for lsprotocol's types holds here too: the first bad
    element ends the reading (one error, not one per element)."""
    bad = {"messages": [{"role": "user"}] * 100_000}
    with pytest.raises(JsonRpcInvalidParams, match=r"messages\[0\]\.content is missing"):
        structure(bad, ChatParams, CHAT)


def test_action_data_round_trips_and_is_checked():
    data = ActionData("fillBody", "file:///a.py", 12, 4)
    assert unstructure(data) == {
        "action": "fillBody",
        "uri": "file:///a.py",
        "start": 12,
        "version": 4,
    }
    assert structure(unstructure(data), ActionData, "code action data") == data
    with pytest.raises(
        JsonRpcInvalidParams, match=r"code action data\.action must be one of docstring, fillBody"
    ):
        structure({**unstructure(data), "action": "rm -rf"}, ActionData, "code action data")
    with pytest.raises(JsonRpcInvalidParams, match=r"code action data\.start must be an integer"):
        structure({**unstructure(data), "start": "12"}, ActionData, "code action data")


def test_results_are_written_in_camel_case():
    result = wire.ChatResult(
        "x", "stop", wire.ChatUsage(3, 4), wire.ChatTimings(1.0, None, 2.0, 3.0, 4.0)
    )
    assert unstructure(result) == {
        "content": "x",
        "finishReason": "stop",
        "usage": {"promptTokens": 3, "completionTokens": 4},
        "timings": {
            "queueMs": 1.0,
            "firstTokenMs": None,
            "totalMs": 2.0,
            "tokensPerSecond": 3.0,
            "serverMs": 4.0,
        },
    }


def _typescript_fields(source: str, interface: str) -> set[str]:
    body = re.search(rf"export interface {interface} \{{(.*?)\n\}}", source, re.S)
    assert body, f"interface {interface} not found in the extension"
    return set(re.findall(r"^  (\w+)\??:", body.group(1), re.M))


@pytest.mark.parametrize(
    "cls",
    [
        wire.ChatMessage,
        wire.ChatContext,
        wire.ChatParams,
        wire.ChatUsage,
        wire.ChatTimings,
        wire.ChatResult,
    ],
)
def test_the_extension_mirrors_the_wire_classes(cls):
    source = (Path(__file__).parent.parent / "extension" / "src" / "chatStream.ts").read_text()
    names = {wire._camel(f.name) for f in attrs.fields(cls)}
    assert _typescript_fields(source, cls.__name__) == names


def test_a_document_version_is_a_signed_integer():
    data = {"action": "docstring", "uri": "file:///a.py", "start": 0, "version": -3}
    assert structure(data, ActionData, "code action data").version == -3
    with pytest.raises(JsonRpcInvalidParams, match=r"data\.version must be an integer"):
        structure({**data, "version": "3"}, ActionData, "code action data")
