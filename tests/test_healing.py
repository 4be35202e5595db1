"""Token healing: completion prompts cut back to a token boundary, per tokenizer (SmolLM2's
byte-level BPE, the Qwen2-style one the tests train, the bundled model's), and the engine
spelling the cut text again before anything is returned or streamed."""

from __future__ import annotations

import threading

import pytest

from lsp_llm.context.healing import heal_tail
from lsp_llm.context.prompts import EditorContext, completion_prompt
from lsp_llm.engine.decoding import Decoder
from lsp_llm.generation.budget import encode_plain
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import GenerationRequest, Speculation, StopRules, TextDelta


@pytest.fixture(scope="module", params=["smollm2", "qwen2-style", "bundled"])
def tokenizer(request, tiny):
    from transformers import AutoTokenizer

    from lsp_llm.engine.load.bundled import bundled_model_dir

    if request.param == "smollm2":
        return AutoTokenizer.from_pretrained(request.getfixturevalue("smollm2_folder"))
    folder = tiny.target if request.param == "qwen2-style" else bundled_model_dir()
    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("def area(r):\n    ", "return 3.14 * r * r\n"),  # the cursor after auto-indent
        ("class A:\n    def f(self):\n        ", "pass\n"),
        ("    total = compu", "te_total(items)\n"),  # a partial identifier
        ("    total = ", "len(items)\n"),  # a space the next token would carry
        ("    print(", "total)\n"),
    ],
)
def test_the_healed_prompt_is_how_the_tokenizer_spells_the_code_that_follows(tokenizer, text, rest):
    ids = encode_plain(tokenizer, text)
    healed, cut = heal_tail(tokenizer, ids, text)
    assert cut and text.endswith(cut) and len(healed) < len(ids)
    assert tokenizer.decode(healed) + cut == text
    # Whatever the user goes on to type, its tokens start with the healed prompt: the
    # model sees a boundary it was trained on, not one that only the cursor made.
    assert encode_plain(tokenizer, text + rest)[: len(healed)] == healed


def test_text_that_would_not_round_trip_is_not_healed(tokenizer):
    text = "name = 'café"
    ids = encode_plain(tokenizer, text)
    assert heal_tail(tokenizer, ids, text) == (ids, "")
    assert heal_tail(tokenizer, ids[:1], text[:1]) == (ids[:1], "")


def run(loaded, request, mode="off"):
    from dataclasses import replace

    deltas: list[str] = []
    decoder = Decoder(loaded.model, loaded.tokenizer, loaded.draft_model)
    done = decoder.run(
        replace(request, speculation=Speculation(mode, 4)),
        threading.Event(),
        lambda e: deltas.append(e.text) if isinstance(e, TextDelta) else None,
    )
    return done, "".join(deltas)


@pytest.mark.parametrize("mode", ["off", "draft", "promptLookup", "auto"])
def test_the_engine_spells_the_cut_text_first_and_returns_only_what_follows(loaded, mode):
    text = "def area(r):\n    "
    ids, cut = heal_tail(loaded.tokenizer, encode_plain(loaded.tokenizer, text), text)
    request = GenerationRequest(tuple(ids), max_new_tokens=12, stop=StopRules(), heal=cut)
    done, streamed = run(loaded, request, mode)
    decode = loaded.tokenizer.decode
    spelled = decode(list(done.token_ids))
    assert spelled.startswith(cut)
    assert done.text == spelled[len(cut) :] == streamed
    assert done.reason == "length"
    # the tokens that spelled the cut text do not count against the budget
    tokens = list(done.token_ids)
    spelling = next(i for i in range(1, len(tokens) + 1) if len(decode(tokens[:i])) >= len(cut))
    assert len(tokens) - spelling == 12
    assert done.token_ids == run(loaded, request, "off")[0].token_ids


def test_stop_rules_apply_after_the_healed_text(loaded):
    # The cut text itself holds a newline: a single-line rule must not end the generation
    # on it, only on a newline the model writes after it.
    text = "x = 1\n"
    ids = encode_plain(loaded.tokenizer, text)
    healed, cut = heal_tail(loaded.tokenizer, ids, text)
    assert "\n" in cut
    request = GenerationRequest(
        tuple(healed), max_new_tokens=16, stop=StopRules(single_line=True), heal=cut
    )
    done, streamed = run(loaded, request)
    assert "\n" not in done.text and done.text == streamed
    assert loaded.tokenizer.decode(list(done.token_ids)).startswith(cut)


def test_completion_prompts_heal_where_the_prompt_ends_with_the_prefix(loaded):
    info = TokenizerInfo(loaded.tokenizer)
    text = "def area(r):\n    "
    ctx = EditorContext(text + "\n", len(text))
    prefix = completion_prompt(info, ctx, context_tokens=256, style="prefix")
    spm = completion_prompt(info, ctx, context_tokens=256, order="spm")
    psm = completion_prompt(info, ctx, context_tokens=256, order="psm")
    assert prefix.heal and spm.heal == prefix.heal  # both end with the code before the cursor
    assert psm.heal == ""  # its prompt ends with the FIM middle token: nothing to heal
    assert prefix.kind == "plain" and spm.kind == psm.kind == "fim"


def test_which_tokens_may_spell_the_cut_text():
    from lsp_llm.engine.healing import _fits

    assert _fits("\n   ", "\n    ", False)  # a part of it, the rest comes next
    assert _fits("\n    ", "\n    ", True)  # all of it
    assert _fits(" return", " ", True)  # all of it and the code that follows
    assert not _fits(" x", "\n    ", False)  # something else
    assert not _fits("", "\n    ", False)  # special tokens spell nothing
    # after a space or indentation the cursor is where the code starts: no more whitespace
    assert not _fits("\n        ", "\n    ", True) and _fits("\n        ", "\n    ", False)
    assert not _fits(" ", "", True) and _fits("x", "", True)


@pytest.mark.parametrize("no_space_after", [False, True])
def test_the_indexed_masks_are_the_tokens_that_fit(tokenizer, no_space_after):
    from lsp_llm.engine.healing import TokenTexts, _fits

    texts = TokenTexts(tokenizer, len(tokenizer) + 3)
    for remaining in (
        "\n    ",
        "\n        ",
        " ",
        "",
        "compu",
        " return",
        "ré",
        "\t",
        "zzzq",
        "\U0010ffff",
        "\x00",
    ):
        mask = texts.allowed(remaining, no_space_after)
        expected = [_fits(t, remaining, no_space_after) for t in texts.texts]
        assert mask[: len(expected)].tolist() == expected, remaining
        assert not mask[len(expected) :].any()


@pytest.mark.parametrize("mode", ["off", "promptLookup"])
def test_nothing_shown_starts_with_whitespace_after_a_healed_indentation(loaded, mode):
    for text in ("def area(r):\n    ", "    total = ", "class A:\n    def f(self):\n        "):
        ids, cut = heal_tail(loaded.tokenizer, encode_plain(loaded.tokenizer, text), text)
        assert cut.endswith(" ")
        request = GenerationRequest(tuple(ids), max_new_tokens=6, stop=StopRules(), heal=cut)
        done, streamed = run(loaded, request, mode)
        assert done.text == streamed and done.text and not done.text[0].isspace()
