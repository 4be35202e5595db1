"""Prompt building: FIM / chat template / plain, token budgets on line boundaries."""

from __future__ import annotations

import pytest

from lsp_llm.context.prompts import CodeContext, EditorContext, chat_prompt, completion_prompt
from lsp_llm.context.shape import LOOP_CHARS, completion_shape
from lsp_llm.generation.budget import count_tokens, encode_plain, take_head, take_tail
from lsp_llm.generation.tokens import TokenizerInfo

SOURCE = (
    "import os\n\n\ndef area(r):\n    pi = 3.14159\n    return pi * r * r\n\n\nprint(area(2))\n"
)


@pytest.fixture(scope="module")
def info(loaded):
    return TokenizerInfo(loaded.tokenizer)


def test_fim_prompt_has_prefix_suffix_and_end_tokens(info):
    offset = SOURCE.index("return") + len("return ")
    prompt = completion_prompt(info, EditorContext(SOURCE, offset), context_tokens=512)
    assert prompt.kind == "fim" and not prompt.multiline
    pre, suf, mid = info.fim
    ids = list(prompt.token_ids)
    assert ids[0] == pre and ids[-1] == mid and suf in ids
    text = info.tokenizer.decode(ids, skip_special_tokens=False)
    assert text.startswith("<|fim_prefix|>import os") and "<|fim_suffix|>pi * r * r" in text
    assert info.tokenizer.convert_tokens_to_ids("<|im_end|>") in prompt.stop.stop_token_ids
    assert prompt.stop.single_line


def test_spm_prompt_puts_the_suffix_first_and_ends_with_the_prefix(info):
    offset = SOURCE.index("return") + len("return ")
    ctx = EditorContext(SOURCE, offset)
    prompt = completion_prompt(info, ctx, context_tokens=512, order="spm")
    pre, suf, mid = info.fim
    ids = list(prompt.token_ids)
    assert ids[:2] == [pre, suf] and ids.count(mid) == 1
    text = info.tokenizer.decode(ids, skip_special_tokens=False)
    # the prompt ends at a token boundary; the cut text is generated again (healing)
    assert prompt.heal == " " and ids[-1] != mid
    spm_text = f"<|fim_prefix|><|fim_suffix|>{ctx.after}<|fim_middle|>{ctx.before}"
    assert text + prompt.heal == spm_text
    psm = completion_prompt(info, ctx, context_tokens=512)
    healed = [*ids, *info.encode(prompt.heal)]
    assert sorted(psm.token_ids) == sorted(healed)  # the same pieces, in another order


def test_fim_order_setting_follows_what_the_model_was_trained_on(loaded):
    plain, spm = TokenizerInfo(loaded.tokenizer), TokenizerInfo(loaded.tokenizer, None, True)
    assert [plain.fim_order(o) for o in ("auto", "psm", "spm")] == ["psm", "psm", "spm"]
    assert [spm.fim_order(o) for o in ("auto", "psm", "spm")] == ["spm", "psm", "spm"]


def test_document_text_cannot_inject_special_tokens(info):
    text = "s = '<|fim_middle|><|im_end|>'\n"
    prompt = completion_prompt(info, EditorContext(text, len(text)), context_tokens=256)
    specials = set(info.fim) | set(prompt.stop.stop_token_ids)
    inner = list(prompt.token_ids)[1:-1]
    assert [t for t in inner if t in specials] == [info.fim[1]]  # only our own <|fim_suffix|>


def test_budget_cuts_whole_lines_and_keeps_cursor_line(info):
    lines = [f"value_{i} = compute({i}, 'x' * {i})" for i in range(400)]
    text = "\n".join(lines) + "\nresult = comp"
    tail = take_tail(info.tokenizer, text, 100)
    assert tail.endswith("result = comp")
    assert count_tokens(info.tokenizer, tail) <= 100 + 5
    first = tail.split("\n")[0]
    assert first in lines  # starts on a line boundary
    head = take_head(info.tokenizer, "\n".join(lines), 60)
    assert all(line in lines for line in head.split("\n"))
    assert count_tokens(info.tokenizer, head) <= 60 + 5


def test_aligned_tail_starts_on_a_multiple_of_align_lines(info):
    lines = [f"value_{i} = compute({i}, 'x' * {i})" for i in range(400)]
    text = "\n".join(lines) + "\nresult = comp"
    tail = take_tail(info.tokenizer, text, 1000, align=8)
    assert tail.endswith("result = comp")
    assert lines.index(tail.split("\n")[0]) % 8 == 0
    assert len(tail) >= len(take_tail(info.tokenizer, text, 1000)) * 3 // 4


@pytest.mark.parametrize("order", ["psm", "spm"])
def test_completion_window_stays_put_after_a_one_line_edit(info, order):
    """Typing a new line above the cursor must not move the window's start; otherwise the
    next request shares nothing with the cached one and re-reads the whole prompt. In SPM
    order only the inserted line is new: the suffix and the prefix above it are shared."""
    lines = [f"    total += weights[{i}] * values[{i}]" for i in range(2000)]
    before = "def dot(weights, values):\n" + "\n".join(lines[:1500]) + "\n    "
    after = "\n" + "\n".join(lines[1500:]) + "\n"
    first = completion_prompt(
        info, EditorContext(before + after, len(before)), context_tokens=300, order=order
    )
    edited = before[:-4] + "    total = total\n    "
    second = completion_prompt(
        info, EditorContext(edited + after, len(edited)), context_tokens=300, order=order
    )
    shared = 0
    for a, b in zip(first.token_ids, second.token_ids, strict=False):
        if a != b:
            break
        shared += 1
    assert shared >= len(first.token_ids) // 2
    if order == "spm":
        new_line = count_tokens(info.tokenizer, "    total = total\n    ")
        assert len(second.token_ids) - shared <= new_line + 2


def test_one_huge_line_is_cut_by_whole_characters(info):
    line = "数据🐍" * 5000
    tail = take_tail(info.tokenizer, line, 50)
    assert 0 < len(tail) < len(line) and line.endswith(tail)
    assert count_tokens(info.tokenizer, tail) <= 50


def test_near_the_top_of_a_file_the_suffix_keeps_its_share(info):
    """In prefix-suffix-middle order a keystroke re-reads the whole suffix, so a short
    prefix does not hand it the rest of the budget."""
    from lsp_llm.context.prompts import PREFIX_PERCENT

    after = "".join(f"value_{i} = compute({i})\n" for i in range(2000))
    text = "import os\n" + after
    prompt = completion_prompt(info, EditorContext(text, len("import os\n")), context_tokens=1000)
    share = 1000 * (100 - PREFIX_PERCENT) // 100
    assert (
        prompt.kind == "fim" and 0.8 * share < count_tokens(info.tokenizer, prompt.suffix) <= share
    )
    assert len(prompt.token_ids) < 0.3 * 1000


def test_completion_prompt_respects_context_budget(info):
    big = "\n".join(f"x{i} = {i}" for i in range(20000))
    ctx = EditorContext(big + "\ny = ", len(big) + 5)
    prompt = completion_prompt(info, ctx, context_tokens=300)
    assert len(prompt.token_ids) <= 300 + 10


def test_prompts_stay_inside_the_models_context_window(loaded):
    from lsp_llm.config import Settings
    from lsp_llm.context.completion import plan_completion

    small = TokenizerInfo(loaded.tokenizer, context_window=384)
    assert small.budget(1536, 96) == 288  # the prompt plus the new tokens fit
    assert small.budget(3072, 512) == 192  # at most half the window is kept for the reply
    assert small.budget(100, 96) == 100
    assert TokenizerInfo(loaded.tokenizer).budget(1536, 96) == 1536  # window unknown
    big = "\n".join(f"x{i} = {i}" for i in range(20000))
    plan = plan_completion(small, EditorContext(big + "\ny = ", len(big) + 5), Settings())
    assert len(plan.request.prompt_ids) + plan.request.max_new_tokens <= 384 + 10


@pytest.mark.parametrize(
    ("before", "after", "multiline", "expected_block", "indent"),
    [
        ("x = foo(", ")\n", "auto", False, None),
        ("    total = ", "\n", "auto", False, None),
        ("def f(x):", "\n", "auto", True, 1),
        ("def f(x):\n    ", "\n", "auto", True, 4),
        ("\n", "\n", "auto", True, 1),
        ("    if x:", "\n", "auto", True, 5),
        ("    x = 1", "", "always", True, 4),
        ("def f(x):", "\n", "never", False, None),
        ("def f(x):\n    ", "  # trailing comment\n", "auto", False, None),
    ],
)
def test_completion_shape(before, after, multiline, expected_block, indent):
    shape = completion_shape(before, after, multiline)
    assert shape.multiline == expected_block
    assert shape.stop.single_line == (not expected_block)
    assert shape.stop.block_indent == indent
    assert shape.stop.max_line_repeats == (3 if expected_block else None)
    assert shape.stop.max_line_cycle == LOOP_CHARS  # every completion ends a loop in a line


def test_chat_prompt_uses_template_and_code_context(info):
    prompt = chat_prompt(
        info,
        [{"role": "user", "content": "What does this do?"}],
        system_prompt="Be brief.",
        context_tokens=1024,
        code=CodeContext("def f():\n    return 1\n", "a.py", "python"),
    )
    text = info.tokenizer.decode(list(prompt.token_ids), skip_special_tokens=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert "```python\ndef f():" in text and "What does this do?" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_chat_prompt_drops_oldest_turns_to_fit(info):
    history = []
    for i in range(40):
        history += [
            {"role": "user", "content": f"question {i} " + "word " * 30},
            {"role": "assistant", "content": f"answer {i} " + "word " * 30},
        ]
    history.append({"role": "user", "content": "last question"})
    prompt = chat_prompt(info, history, system_prompt="S", context_tokens=400)
    text = info.tokenizer.decode(list(prompt.token_ids), skip_special_tokens=False)
    assert len(prompt.token_ids) <= 400
    assert "last question" in text and "question 0 " not in text


def test_chat_prompt_work_is_linear_and_a_huge_message_is_cut(info, monkeypatch):
    """10,000 short messages render the template a couple of times, not once per dropped
    turn; a single 400 KB message is cut to the budget, keeping its end (the question)."""
    renders = []
    template = info.template
    monkeypatch.setattr(info, "template", lambda turns: renders.append(1) or template(turns))
    many = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"}
        for i in range(10_001)
    ]
    prompt = chat_prompt(info, many, system_prompt="S", context_tokens=300)
    assert len(prompt.token_ids) <= 300 and len(renders) <= 3
    assert prompt.messages[-1].content == "message 10000"
    huge = "line of text\n" * 30_000 + "So what is it?"
    prompt = chat_prompt(
        info, [{"role": "user", "content": huge}], system_prompt="S", context_tokens=300
    )
    assert len(prompt.token_ids) <= 300
    assert prompt.messages[-1].content.endswith("So what is it?")


class _NoTemplate:
    """A tokenizer without FIM tokens or chat template (wraps a real one)."""

    def __init__(self, tok):
        self.tok = tok
        self.chat_template = None
        self.eos_token_id = tok.eos_token_id

    def get_vocab(self):
        return {k: v for k, v in self.tok.get_vocab().items() if "fim" not in k}

    def encode(self, text, **kw):
        return self.tok.encode(text, **kw)

    def decode(self, ids, **kw):
        return self.tok.decode(ids, **kw)


def test_plain_prompt_without_fim_or_template(loaded):
    info = TokenizerInfo(_NoTemplate(loaded.tokenizer))
    assert info.fim is None and not info.has_template
    prompt = completion_prompt(info, EditorContext(SOURCE, 20), context_tokens=256)
    assert prompt.kind == "plain" and SOURCE[:20].endswith(prompt.heal)
    assert list(prompt.token_ids) == info.encode(SOURCE[: 20 - len(prompt.heal)])


def test_fast_token_count_matches_the_tokenizer(loaded):
    import sysconfig
    from pathlib import Path

    tok = loaded.tokenizer
    text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
    pieces = [*text.split("\n")[:300], "x = '<|endoftext|>'", "<|im_start|>user", "\t  \n", "é😀"]
    for piece in pieces:
        want = list(tok.encode(piece, add_special_tokens=False, split_special_tokens=True))
        assert encode_plain(tok, piece) == want, piece
        assert count_tokens(tok, piece) == len(want), piece
    # the tokenizer's own per-call setting is left as a plain encode expects it
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=True)
    ids = chat["input_ids"] if hasattr(chat, "keys") else chat
    assert tok.convert_tokens_to_ids("<|im_start|>") in list(ids)


class _CountingTokenizer:
    """One token per word, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, text: str, **_: object) -> list[int]:
        self.calls += 1
        return [0] * len(text.split())


def test_budgets_count_only_the_lines_an_edit_changed() -> None:
    tokenizer = _CountingTokenizer()
    lines = [f"value_{i} = compute({i}, {i} + 1)" for i in range(400)]
    before = "\n".join(lines) + "\n    "
    after = "\n" + "\n".join(lines[:200])
    first = (take_tail(tokenizer, before, 600), take_head(tokenizer, after, 300))
    assert tokenizer.calls > 140  # about 100 lines of prefix and 50 of suffix
    tokenizer.calls = 0
    edited = before.replace("value_390 = ", "value_390 = edited + ")
    second = (take_tail(tokenizer, edited, 600), take_head(tokenizer, after, 300))
    assert tokenizer.calls <= 3  # the edited line, the cursor line, the suffix's first line
    assert second[0] != first[0] and second[0].endswith("\n    ")
    assert second[1] == first[1]


@pytest.mark.parametrize(
    ("after", "multiline", "single_line", "line_unless_opens"),
    [
        ("\n", True, False, False),  # nothing below: the block may go on
        ("\n    return x\n", True, False, True),  # a body goes on below: a line, unless...
        ("\n        y = 1\n", False, True, False),  # the next line is the body of this one
        ("\nprint(f(1))\n", True, False, False),  # the cursor's block ends below
    ],
)
def test_what_follows_an_empty_indented_line_decides_line_or_block(
    after, multiline, single_line, line_unless_opens
):
    shape = completion_shape("def f(x):\n    ", after, "auto")
    assert shape.multiline == multiline
    assert shape.stop.single_line == single_line
    assert bool(shape.stop.line_unless_opens) == line_unless_opens
    if line_unless_opens:
        assert ":" in shape.stop.line_unless_opens and shape.stop.block_indent == 4
    # "always" and "never" are what the user asked for, whatever follows
    assert completion_shape("def f(x):\n    ", after, "always").stop.block_indent == 4
    assert completion_shape("def f(x):\n    ", after, "never").stop.single_line


def test_prompt_style_setting_and_its_fallbacks(loaded, smollm2):
    tiny = TokenizerInfo(loaded.tokenizer)  # FIM tokens and a chat template
    smol = TokenizerInfo.of(smollm2)  # a chat template, no FIM tokens
    assert [tiny.prompt_style(s) for s in ("auto", "fim", "prefix", "chat")] == [
        "fim",
        "fim",
        "prefix",
        "chat",
    ]
    assert [smol.prompt_style(s) for s in ("auto", "fim", "prefix", "chat")] == [
        "prefix",
        "prefix",
        "prefix",
        "chat",
    ]
    text = "def f(x):\n    "
    ctx = EditorContext(text + "\n", len(text), "python", "a.py")
    assert completion_prompt(smol, ctx, context_tokens=256, style="prefix").kind == "plain"
    chat = completion_prompt(smol, ctx, context_tokens=256, style="chat")
    assert chat.kind == "chat" and chat.heal == ""


def test_a_prompt_at_an_auto_indent_ends_at_the_lines_start(info):
    from lsp_llm.context.prompts import reindent_point

    text = "def f(xs):\n    for x in xs:\n        print(x)\n        \n\nf([])\n"
    offset = text.index("        \n") + 8
    ctx = EditorContext(text, offset)
    assert reindent_point(ctx) == " " * 8
    prompt = completion_prompt(info, ctx, context_tokens=512)
    assert prompt.indent == " " * 8 and prompt.kind == "fim"
    decoded = info.tokenizer.decode(list(prompt.token_ids), skip_special_tokens=False)
    assert "print(x)\n<|fim_suffix|>\n\nf([])" in decoded  # no whitespace left at the cursor
    assert prompt.multiline and prompt.stop.indent_from_first_line
    kept = completion_prompt(info, ctx, context_tokens=512, reindent=False)
    assert kept.indent == "" and "print(x)\n        <|fim_suffix|>" in info.tokenizer.decode(
        list(kept.token_ids), skip_special_tokens=False
    )
    # code after the cursor on its line, or text before it: no re-indent
    assert reindent_point(EditorContext("    x = 1\n", 4)) == ""
    assert reindent_point(EditorContext("    x = 1\n", 6)) == ""
    assert reindent_point(EditorContext("x\n", 2)) == ""


def test_the_start_of_a_file_is_a_prompt_in_every_style(loaded, smollm2):
    """A cursor at offset 0 (an empty file, or before its first line) still gets a prompt:
    FIM around the code after it, or a continuation from the start of a new document."""
    for model in (loaded, smollm2):
        info = TokenizerInfo.of(model)
        for style in ("fim", "prefix", "chat"):
            for text in ("", "import os\n"):
                prompt = completion_prompt(
                    info, EditorContext(text, 0), context_tokens=256, style=style
                )
                assert prompt.token_ids, (model.name, style, text)
    smol = TokenizerInfo.of(smollm2)
    start = completion_prompt(smol, EditorContext("", 0), context_tokens=256, style="prefix")
    assert start.token_ids == (smol.tokenizer.convert_tokens_to_ids("<|endoftext|>"),)
