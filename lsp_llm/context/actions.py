"""Model-backed code actions as plain logic: find the function at the cursor, build the
prompt for an action, and turn the model's text into a text replacement.

Actions: add a docstring, fill in a stub's body (both fill-in-the-middle when the model
has FIM tokens, chat otherwise), rewrite a selection by an instruction (chat).
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, replace
from typing import Literal

from lsp_llm.config import Settings
from lsp_llm.context.budget import take_head, take_tail
from lsp_llm.context.prompts import Prompt, TokenizerInfo, as_messages, heal_prompt
from lsp_llm.engine.types import GenerationRequest, Speculation, StopRules

ActionKind = Literal["docstring", "fillBody", "rewrite"]
STUB_BODY = re.compile(r"^\s*(pass|\.\.\.|raise NotImplementedError(\(.*\))?)\s*(#.*)?$")


@dataclass(frozen=True)
class FunctionSpan:
    start: int
    """Offset of the `def` line's first character (decorators excluded)."""
    body_start: int
    """Offset of the first body line's first character."""
    end: int
    """Offset just past the function's last character (before its final newline)."""
    body_indent: str
    has_docstring: bool
    is_stub: bool


@dataclass(frozen=True)
class Replacement:
    start: int
    end: int
    text: str


MAX_PARSE_LINE = 10_000
"""Files with a longer line are not parsed for code actions: CPython's parser can take
gigabytes on one pathological line (`x = ----…1` with 200,000 signs)."""


def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _parse_around(text: str, lines: list[str], line: int) -> ast.Module | None:
    """The tree of the top-level statement around `line` (with its line numbers kept);
    the whole file's when that piece does not parse alone (a line at column 0 inside a
    string split it wrongly); None when neither parses (mid-edit).

    Editors ask for code actions on every cursor move, and parsing a 3,000-line file
    takes some 50 ms of the server's event loop, which ghost text waits behind; the
    statement around the cursor parses in about a millisecond."""
    tops = [i for i, ln in enumerate(lines) if ln[:1].strip() and ln[0] not in "#)]}"]
    first = max((i for i in tops if i <= line), default=0)
    while first > 0 and first - 1 in tops and lines[first - 1].startswith("@"):
        first -= 1
    end = min((i for i in tops if i > line), default=len(lines))
    if max(map(len, lines), default=0) > MAX_PARSE_LINE:
        return None  # a minified or generated file: no function to act on
    for source in ("\n" * first + "".join(lines[first:end]), text):
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def find_function(text: str, offset: int) -> FunctionSpan | None:
    """The innermost Python function containing `offset` (its header or body)."""
    starts = _offsets(text)
    lines = text.splitlines(keepends=True)
    tree = _parse_around(text, lines, bisect.bisect_right(starts, offset) - 1)
    if tree is None:
        return None
    best: FunctionSpan | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
            continue
        first = node.body[0]
        start = starts[node.lineno - 1]
        end = starts[node.end_lineno - 1] + len(lines[node.end_lineno - 1].rstrip("\r\n"))
        if not start <= offset <= end or first.lineno == node.lineno:
            continue  # a one-line `def f(): pass` has no body lines to work with
        body_line = lines[first.lineno - 1]
        body_indent = body_line[: len(body_line) - len(body_line.lstrip())]
        has_doc = ast.get_docstring(node) is not None
        statements = node.body[1:] if has_doc else node.body
        body_text = "".join(lines[s.lineno - 1] for s in statements)
        is_stub = len(statements) <= 1 and all(STUB_BODY.match(ln) for ln in body_text.splitlines())
        span = FunctionSpan(
            start, starts[first.lineno - 1] + len(body_indent), end, body_indent, has_doc, is_stub
        )
        if best is None or span.start >= best.start:
            best = span
    return best


def _infill(
    info: TokenizerInfo, before: str, after: str, budget: int, stop: StopRules, heal: bool
) -> Prompt:
    """The model writes what goes between `before` and `after`: with FIM tokens when it has
    them, else as the continuation of `before` (any model can; the stop rules end it),
    token-healed when `heal` (`before` may end inside a token, e.g. in indentation)."""
    stop = replace(stop, stop_token_ids=info.end_ids)
    if info.fim is None:
        prefix = take_tail(info.tokenizer, before, budget)
        ids = info.encode(prefix)
        ids, cut = heal_prompt(info, ids, prefix) if heal else (ids, "")
        text = info.defuse(prefix[: len(prefix) - len(cut)])
        return Prompt(info.ids(ids), "plain", stop, True, prefix, "", cut, text)
    pre, suf, mid = info.fim
    prefix = take_tail(info.tokenizer, before, budget * 3 // 4)
    suffix = take_head(info.tokenizer, after, budget // 4)
    ids = [pre, *info.encode(prefix), suf, *info.encode(suffix), mid]
    pre_name, suf_name, mid_name = info.fim_names
    return Prompt(
        tuple(ids),
        "fim",
        stop,
        True,
        prefix,
        suffix,
        text=f"{pre_name}{info.defuse(prefix)}{suf_name}{info.defuse(suffix)}{mid_name}",
    )


def docstring_prompt(info: TokenizerInfo, text: str, fn: FunctionSpan, budget: int) -> Prompt:
    """The model writes the text between the opening and closing quotes (the prompt ends
    with whole quotes: nothing to heal)."""
    before = text[: fn.body_start] + '"""'
    after = '"""\n' + fn.body_indent + text[fn.body_start :]
    return _infill(info, before, after, budget, StopRules(stop_strings=('"""',)), heal=False)


def fill_body_prompt(info: TokenizerInfo, text: str, fn: FunctionSpan, budget: int) -> Prompt:
    """The model writes the body in place of the stub statement(s)."""
    body_from = _stub_start(text, fn)
    stop = StopRules(block_indent=len(fn.body_indent), stop_strings=("\n\n\n",))
    return _infill(info, text[:body_from], text[fn.end :], budget, stop, heal=True)


def _stub_start(text: str, fn: FunctionSpan) -> int:
    """Where the stub statements begin (after a docstring, if any)."""
    if not fn.has_docstring:
        return fn.body_start
    segment = text[fn.body_start : fn.end]
    matches = list(re.finditer(r"^[ \t]*(pass|\.\.\.|raise NotImplementedError)", segment, re.M))
    if not matches:
        return fn.body_start
    match = matches[-1]
    return fn.body_start + match.start() + len(match.group(0)) - len(match.group(0).lstrip())


def chat_action_prompt(
    info: TokenizerInfo, instruction: str, code: str, budget: int, language: str = "python"
) -> Prompt:
    snippet = take_head(info.tokenizer, code, budget * 2 // 3)
    user = (
        f"{instruction}\n\n```{language}\n{snippet}\n```\n\n"
        "Reply with only the resulting code in one fenced code block."
    )
    system = "You edit code exactly as asked and keep everything else unchanged."
    turns = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    ids = [] if info.approximate else info.template(turns)
    stop = StopRules(stop_token_ids=info.end_ids)
    return Prompt(tuple(ids), "chat", stop, True, messages=as_messages(info, turns))


def action_request(prompt: Prompt, max_new_tokens: int, settings: Settings) -> GenerationRequest:
    """The generation for a code action's prompt under `settings` (greedy)."""
    return prompt.request(
        max_new_tokens=max_new_tokens,
        speculation=Speculation(settings.speculation.mode, settings.speculation.num_tokens),
    )


def extract_code(reply: str) -> str:
    """The first fenced code block of a chat reply, or the reply itself."""
    match = re.search(r"```[^\n`]*\n(.*?)(?:```|$)", reply, re.S)
    return (match.group(1) if match else reply).rstrip("\n")


def _indent_lines(text: str, indent: str) -> str:
    return "\n".join(indent + ln if ln.strip() else "" for ln in text.split("\n"))


def docstring_edit(text: str, fn: FunctionSpan, reply: str, infill: bool) -> Replacement | None:
    if not infill:
        return Replacement(fn.start, fn.end, extract_code(reply))
    doc = reply.strip().replace('"""', "'''")
    if not doc:
        return None
    lines = [ln.strip() for ln in doc.split("\n")]
    ind = fn.body_indent
    if len(lines) == 1:
        block = f'{ind}"""{lines[0]}"""\n'
    else:
        rest = "\n".join(ind + ln if ln else "" for ln in lines[1:])
        block = f'{ind}"""{lines[0]}\n{rest}\n{ind}"""\n'
    line_start = fn.body_start - len(fn.body_indent)
    return Replacement(line_start, line_start, block)


def fill_body_edit(text: str, fn: FunctionSpan, reply: str, infill: bool) -> Replacement | None:
    if not infill:
        return Replacement(fn.start, fn.end, extract_code(reply))
    body = "\n".join(ln.rstrip() for ln in reply.rstrip().split("\n"))
    if not body.strip():
        return None
    return Replacement(_stub_start(text, fn), fn.end, body.lstrip(" \t"))


def rewrite_edit(start: int, end: int, selected: str, reply: str) -> Replacement | None:
    code = extract_code(reply)
    if not code.strip():
        return None
    indent = selected[: len(selected) - len(selected.lstrip(" \t"))]
    if indent and not code.startswith(indent):
        code = _indent_lines(code, indent)
    if selected.endswith("\n") and not code.endswith("\n"):
        code += "\n"
    return Replacement(start, end, code)
