"""The remote backend's plain logic, no engine: request bodies, the engine's text under our
stop rules and whitespace healing, prompts built with no tokenizer (character budgets),
the `backend` settings, and the HTTP client's errors against a closed port."""

from __future__ import annotations

import asyncio

import pytest

from lsp_llm.config import parse_settings
from lsp_llm.context.chat import plan_chat
from lsp_llm.context.completion import plan_completion
from lsp_llm.context.prompts import EditorContext
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import ChatMessage, GenerationRequest, Sampling, StopRules
from lsp_llm.remote.client import EngineUnreachable, OpenAIClient
from lsp_llm.remote.generation import TextRun, request_body


def request(**kw) -> GenerationRequest:
    kw.setdefault("prompt_text", "x = ")
    return GenerationRequest((), **kw)


def run_pieces(req: GenerationRequest, pieces: list[str]) -> tuple[str, str]:
    run = TextRun(req)
    shown = ""
    for piece in pieces:
        shown += run.feed(piece)
        if run.final is not None:
            break
    text, rest = run.finish()
    return text, shown + rest


def test_a_completion_body_carries_the_text_prompt_and_our_stops():
    req = request(
        max_new_tokens=20,
        stop=StopRules(stop_strings=("```",), single_line=True),
        sampling=Sampling(0.0, 1.0, seed=7),
    )
    path, body = request_body(req, "smollm2")
    assert path == "/completions"
    assert body == {
        "model": "smollm2",
        "prompt": "x = ",
        "max_tokens": 20,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 7,
        "stream": True,
        "stop": ["```", "\n"],
    }


def test_a_chat_body_sends_the_turns_and_no_prompt():
    req = request(messages=(ChatMessage("system", "be brief"), ChatMessage("user", "hi")))
    path, body = request_body(req, None)
    assert path == "/chat/completions" and "model" not in body and "prompt" not in body
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_stop_sequences_are_capped_for_engines_that_limit_them():
    req = request(stop=StopRules(stop_strings=("a", "b", "c", "d", "e"), single_line=True))
    assert len(request_body(req, None)[1]["stop"]) == 4


def test_a_partial_word_cut_goes_back_on_the_prompt():
    """An engine cannot be made to spell a cut word again: the prompt keeps it."""
    req = request(prompt_text="def add(a, b):\n   ", heal=" return")
    assert request_body(req, None)[1]["prompt"] == "def add(a, b):\n    return"
    assert run_pieces(req, [" a", " +", " b"]) == (" a + b", " a + b")


def test_healed_indentation_is_dropped_whatever_its_width():
    req = request(prompt_text="def f():\n", heal="    ", stop=StopRules(single_line=True))
    body = request_body(req, None)[1]
    assert body["prompt"] == "def f():\n" and body["max_tokens"] > req.max_new_tokens
    assert run_pieces(req, ["  ", "  return", " 1", "\n", "x"]) == ("return 1", "return 1")
    assert run_pieces(req, ["  ", "return 1\n"])[0] == "return 1"
    # A newline before any code is not indentation: with the single-line rule it ends it.
    assert run_pieces(req, ["\n", "    x"])[0] == ""


def test_stop_rules_cut_the_engine_text_and_end_the_run():
    req = request(stop=StopRules(stop_strings=("```",)))
    run = TextRun(req)
    assert run.feed("a = 1\n`") == "a = 1\n"  # the backtick may start a stop string
    assert run.feed("``\nmore") == "" and run.final == "a = 1\n"


def test_the_engine_finishing_keeps_a_partial_stop_string_as_text():
    assert run_pieces(request(stop=StopRules(stop_strings=("```",))), ["a`"]) == ("a`", "a`")


def test_without_a_tokenizer_budgets_count_characters_and_prompts_are_text():
    info = TokenizerInfo.by_characters()
    settings, _ = parse_settings({"completion": {"contextTokens": 100}})
    text = "".join(f"line_{i} = {i}\n" for i in range(200)) + "value = compute"
    plan = plan_completion(info, EditorContext(text, len(text)), settings)
    req = plan.request
    assert req.prompt_ids == () and info.approximate and info.fim is None
    assert req.heal == " compute" and req.prompt_text.endswith("value =")
    assert 300 <= len(req.prompt_text) <= 400  # 100 tokens of 4 characters
    chat = plan_chat(info, settings, [{"role": "user", "content": "hi"}])
    assert chat.prompt_ids == () and [m.role for m in chat.messages] == ["system", "user"]


def test_without_a_tokenizer_old_chat_turns_are_dropped_to_fit():
    info = TokenizerInfo.by_characters()
    settings, _ = parse_settings({"chat": {"contextTokens": 200, "maxNewTokens": 16}})
    turns = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 60} for i in range(9)
    ]
    req = plan_chat(info, settings, turns)
    kept = [m for m in req.messages if m.role != "system"]
    assert 1 <= len(kept) < 9 and kept[-1].content == turns[-1]["content"]


def test_backend_settings_are_checked_and_the_key_is_never_echoed(monkeypatch):
    settings, errors = parse_settings(
        {"backend": {"url": "ftp://x", "apiKey": 5, "apiKeyEnv": "NOT A NAME"}}
    )
    assert settings.backend.url is None and len(errors) == 3
    assert any("backend.url: expected an http:// or https:// base URL" in e for e in errors)
    assert all("5" not in e for e in errors if "apiKey:" in e)
    monkeypatch.setenv("ENGINE_KEY", "s3cret")
    settings, errors = parse_settings(
        {"backend": {"url": "http://127.0.0.1:8080/v1", "apiKeyEnv": "ENGINE_KEY"}}
    )
    assert not errors and settings.backend.remote and settings.backend.key() == "s3cret"
    again, errors = parse_settings({"backend": {"apiKey": ["x"]}}, settings)
    assert errors and "s3cret" not in errors[0] and again.backend == settings.backend


def test_a_closed_port_is_unreachable_after_retries():
    from tests.engine_helpers import free_port

    async def ask() -> None:
        client = OpenAIClient(f"http://127.0.0.1:{free_port()}/v1")
        try:
            async for _ in client.stream("/completions", {"prompt": "x"}):
                pass
        finally:
            await client.aclose()

    with pytest.raises(EngineUnreachable, match="is unreachable"):
        asyncio.run(ask())


def test_control_token_names_in_the_code_are_text_for_the_engine():
    """A file holding `<|endoftext|>` must not end the prompt an engine reads from text (the
    local engine reads those names as plain text already)."""
    info = TokenizerInfo.by_characters()
    assert info.defuse("s = '<|endoftext|>' + '<fim_middle>'") == (
        "s = '< |endoftext|>' + '< fim_middle>'"
    )
    assert info.defuse("if a < b and c > d: pass") == "if a < b and c > d: pass"
    settings, _ = parse_settings({})
    text = "marker = '<|im_end|>'\nvalue = "
    plan = plan_completion(info, EditorContext(text, len(text)), settings)
    assert "<|im_end|>" not in plan.request.prompt_text
    chat = plan_chat(info, settings, [{"role": "user", "content": "what is <|im_start|>?"}])
    assert chat.messages[-1].content == "what is < |im_start|>?"


def test_smollm2_control_tokens_are_defused_and_its_ids_unchanged(smollm2_folder):
    from transformers import AutoTokenizer

    info = TokenizerInfo(AutoTokenizer.from_pretrained(smollm2_folder))
    settings, _ = parse_settings({})
    text = "END = '<|im_end|>'  # and <file_sep>\nvalue = "
    plan = plan_completion(info, EditorContext(text, len(text)), settings)
    assert plan.request.prompt_text.startswith("END = '< |im_end|>'  # and < file_sep>")
    im_end = info.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end not in plan.request.prompt_ids  # the local engine reads it as text too
