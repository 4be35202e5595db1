"""Model-backed code actions as plain logic: find the function at the cursor, build the
prompt for an action, and turn the model's text into a text replacement.

Actions: add a docstring, fill in a stub's body (both fill-in-the-middle when the model
has FIM tokens, chat otherwise), rewrite a selection by an instruction (chat).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from tree_sitter import Node, Tree

from lsp_llm.config import Settings
from lsp_llm.context.bracefunctions import JSDOC, DocStyle
from lsp_llm.context.bracefunctions import LANGUAGES as BRACE_LANGUAGES
from lsp_llm.context.prompts import Prompt, as_messages, heal_prompt
from lsp_llm.context.shape import block_rules
from lsp_llm.context.syntax import Lines, parse_around
from lsp_llm.generation.budget import take_head, take_tail
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import GenerationRequest, Speculation, StopRules

ActionKind = Literal["docstring", "fillBody", "rewrite"]
STUB_BODY = re.compile(r"^\s*(pass|\.\.\.|raise NotImplementedError(\(.*\))?)\s*(#.*)?$")


@dataclass(frozen=True)
class FunctionSpan:
    start: int
    """Offset of the `def` line's first character (decorators excluded)."""
    body_line_start: int
    """Offset of the first body line (its indentation included)."""
    body_start: int
    """Offset of the first body line's first character after its indentation."""
    stub_start: int
    """Where the body to fill in begins: the stub statement after any docstring, or the
    blank line the user has opened for a body not written yet."""
    end: int
    """Offset just past the function's last character (before its final newline)."""
    body_indent: str
    has_docstring: bool
    is_stub: bool
    pad: str = ""
    """Indentation the blank body line lacks (the editor did not auto-indent it): edits
    and prompts insert it."""
    style: Literal["python", "braces"] = "python"
    """Python (docstring inside, body by indentation) or a brace language (a doc comment
    above, body between braces: `body_start` to `end` is inside them)."""
    indent: str = ""
    """The indentation of the function's statement (brace languages)."""
    closed: bool = True
    """The body's closing brace is there (brace languages)."""
    doc: DocStyle | None = None
    """How the brace language writes the doc comment above the function."""


@dataclass(frozen=True)
class Replacement:
    start: int
    end: int
    text: str


STUB_LIMIT = 1
"""A body of at most this many stub statements (`pass`, `...`, `raise
NotImplementedError`) can be filled in."""


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _enclosing(node: Node | None) -> Node | None:
    while node is not None and node.type != "function_definition":
        node = node.parent
    return node


def _function_at(tree: Tree, lines: Lines, first: int, offset: int) -> Node | None:
    row, column = lines.point(offset, first)
    if row < 0:
        return None
    found = tree.root_node.descendant_for_point_range((row, column), (row, column))
    return _enclosing(found)


def _statements(fn: Node) -> tuple[list[Node], bool]:
    """The body's statements (comments aside) and whether the first is a docstring."""
    body = fn.child_by_field_name("body")
    found = [c for c in body.named_children if c.type != "comment"] if body else []
    doc = bool(
        found
        and found[0].type == "expression_statement"
        and found[0].named_child_count == 1
        and found[0].named_children[0].type == "string"
    )
    return found, doc


def _open_body(fn: Node) -> bool:
    """Nothing is written in the body yet, a docstring aside."""
    found, doc = _statements(fn)
    return len(found) == (1 if doc else 0)


def find_function(text: str, offset: int, language: str = "python") -> FunctionSpan | None:
    """The innermost function containing `offset` (its header or body), also in code that
    does not parse: a function the user has only started (its header, maybe a docstring,
    and a blank line under it, with the cursor there) counts as a stub. Python, and the
    brace languages of `bracefunctions` (JavaScript/TypeScript, Go, Rust, Java, C, C++);
    None for other languages."""
    if language in BRACE_LANGUAGES:
        from lsp_llm.context.bracefunctions import find_brace_function

        found: FunctionSpan | None = find_brace_function(text, offset, language)
        return found
    if language != "python":
        return None
    lines = Lines.of(text)
    line = lines.line_at(offset)
    parsed = parse_around(lines, line)
    if parsed is None:
        return None
    tree, first = parsed
    node = _function_at(tree, lines, first, offset)
    if line >= len(lines.lines) or not lines.lines[line].strip():
        above = next((i for i in range(line - 1, -1, -1) if lines.lines[i].strip()), None)
        if above is not None:
            end_above = lines.starts[above] + len(lines.lines[above].rstrip()) - 1
            opened = _function_at(tree, lines, first, end_above)
            if (
                opened is not None
                and _open_body(opened)
                and (node is None or opened.start_byte > node.start_byte)
            ):
                node = opened
    return None if node is None else _span(node, lines, first)


def _span(node: Node, lines: Lines, first: int) -> FunctionSpan | None:
    text = lines.text
    header_row = node.start_point.row + first
    start = lines.starts[header_row]
    def_indent = _indent_of(lines.lines[header_row])
    found, has_doc = _statements(node)
    rest = found[1:] if has_doc else found
    if rest:
        first_row = found[0].start_point.row + first
        if first_row == header_row:
            return None  # a one-line `def f(): pass` has no body lines to work with
        body_start = lines.offset(found[0].start_point, first)
        indent = _indent_of(lines.lines[first_row])
        stub_start = lines.offset(rest[0].start_point, first)
        end = lines.offset(node.end_point, first)
        body_text = text[stub_start:end]
        return FunctionSpan(
            start=start,
            body_line_start=lines.starts[first_row],
            body_start=body_start,
            stub_start=stub_start,
            end=end,
            body_indent=indent,
            has_docstring=has_doc,
            is_stub=len(rest) <= STUB_LIMIT
            and all(STUB_BODY.match(ln) for ln in body_text.splitlines()),
        )
    # Nothing written yet: the body is the blank line under the header (or docstring).
    colon = next((c for c in node.children if c.type == ":"), None)
    opened_row = (found[0].end_point.row if has_doc else (colon or node).end_point.row) + first
    row = opened_row + 1
    if row < len(lines.lines):
        blank = lines.lines[row]
        if blank.strip():
            return None
    elif text.endswith(("\n", "\r")):
        blank = ""
    else:
        return None  # the header is the last line, with no line under it yet
    have = _indent_of(blank.rstrip("\r\n"))
    if has_doc:
        indent = _indent_of(lines.lines[found[0].start_point.row + first])
    elif len(have) > len(def_indent):
        indent = have
    else:
        indent = def_indent + ("\t" if def_indent.startswith("\t") else "    ")
    pad = indent[len(have) :] if indent.startswith(have) else ""
    line_start = lines.starts[row] if row < len(lines.lines) else len(text)
    body_start = line_start + len(have)
    return FunctionSpan(
        start=start,
        body_line_start=lines.offset(found[0].start_point, first) - len(indent)
        if has_doc
        else line_start,
        body_start=lines.offset(found[0].start_point, first) if has_doc else body_start,
        stub_start=body_start,
        end=line_start + len(blank.rstrip("\r\n")),
        body_indent=indent,
        has_docstring=has_doc,
        is_stub=True,
        pad=pad,
    )


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
    with whole quotes: nothing to heal). For a brace language, the doc comment above the
    function in its style (`/** */`, `//`, `///`): filled in the middle, or asked for in a
    chat (a continuation of the code before the function would not see the function)."""
    if fn.style == "braces":
        doc = fn.doc or JSDOC
        if info.fim is None:
            return chat_action_prompt(info, doc.request, text[fn.start : fn.end + 1], budget)
        if doc.open:
            before = text[: fn.start] + fn.indent + doc.open + "\n" + fn.indent + doc.line
            after = "\n" + fn.indent + doc.close + "\n" + text[fn.start :]
            stop = StopRules(stop_strings=(doc.close.strip(),))
        else:  # line comments: the model writes the first line (a summary is enough)
            before = text[: fn.start] + fn.indent + doc.line
            after = "\n" + text[fn.start :]
            stop = StopRules(stop_strings=("\n",))
        return _infill(info, before, after, budget, stop, heal=False)
    before = text[: fn.body_start] + fn.pad + '"""'
    after = '"""\n' + fn.body_indent + text[fn.body_start :]
    return _infill(info, before, after, budget, StopRules(stop_strings=('"""',)), heal=False)


def fill_body_prompt(info: TokenizerInfo, text: str, fn: FunctionSpan, budget: int) -> Prompt:
    """The model writes the body in place of the stub statement(s)."""
    stop = block_rules(len(fn.body_indent))
    if fn.style == "braces":
        before = text[: fn.stub_start] + "\n" + fn.body_indent
        after = "\n" + fn.indent + ("" if fn.closed else "}") + text[fn.end :]
        return _infill(info, before, after, budget, stop, heal=True)
    before = text[: fn.stub_start] + fn.pad
    return _infill(info, before, text[fn.end :], budget, stop, heal=True)


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


def _doc_comment(fn: FunctionSpan, reply: str) -> Replacement | None:
    """The doc comment above the function, in its language's style, from the model's
    comment text (with or without its own fences and comment marks)."""
    doc = fn.doc or JSDOC
    body = extract_code(reply).replace("*/", "").replace("/**", "")
    lines = [re.sub(r"^\s*(///?|\*)? ?", "", ln).rstrip() for ln in body.strip().split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or not any(lines):
        return None
    ind = fn.indent
    text = "".join(f"{ind}{doc.line}{ln}".rstrip() + "\n" for ln in lines)
    if doc.open:
        text = f"{ind}{doc.open}\n{text}{ind}{doc.close}\n"
    return Replacement(fn.start, fn.start, text)


def docstring_edit(text: str, fn: FunctionSpan, reply: str, infill: bool) -> Replacement | None:
    if fn.style == "braces":
        return _doc_comment(fn, reply)
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
    return Replacement(fn.body_line_start, fn.body_line_start, block)


def fill_body_edit(text: str, fn: FunctionSpan, reply: str, infill: bool) -> Replacement | None:
    if not infill:
        return Replacement(fn.start, fn.end, extract_code(reply))
    body = "\n".join(ln.rstrip() for ln in reply.rstrip().split("\n"))
    if not body.strip():
        return None
    if fn.style == "braces":
        inner = "\n" + fn.body_indent + body.lstrip(" \t") + "\n" + fn.indent
        return Replacement(fn.stub_start, fn.end, inner + ("" if fn.closed else "}"))
    return Replacement(fn.stub_start, fn.end, fn.pad + body.lstrip(" \t"))


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
