"""What a Python file imports, and another file's outline: tree-sitter over the source
(error-tolerant, so a file mid-edit still yields its imports).

`imports(text)` lists `import a.b` and `from .c import d, e`; `module_paths` turns one into
the workspace-relative files it can name; `outline(text, names)` is a file's top-level
definitions as their signatures and docstrings, without bodies: what a completion that
calls them needs, in a few lines each.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from tree_sitter import Node

from lsp_llm.context.syntax import parser

MAX_DOC_LINES = 6
"""Docstring lines kept per definition in an outline."""
MAX_VALUE_CHARS = 100
"""A top-level assignment is kept in an outline when its first line is at most this long."""


SCOPES = frozenset(
    {
        "module",
        "block",
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "finally_clause",
        "function_definition",
        "class_definition",
        "decorated_definition",
    }
)
"""Nodes an import can sit inside."""


@dataclass(frozen=True)
class Import:
    module: str
    """Dotted module name, with leading dots for a relative import (`..pkg.mod`)."""
    names: tuple[str, ...] = ()
    """The names a `from … import` takes (empty for `import a.b` and `import *`)."""


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def imports(text: str) -> list[Import]:
    """The imports of a Python file, in order (top-level and nested)."""
    p = parser("python")
    if p is None:
        return []
    out: list[Import] = []
    stack = [p.parse(text.encode("utf-8")).root_node]
    while stack:
        node = stack.pop()
        if node.type == "import_statement":
            for name in node.children_by_field_name("name"):
                target = name.child_by_field_name("name") if name.type == "aliased_import" else name
                out.append(Import(_text(target)))
        elif node.type == "import_from_statement":
            module = _text(node.child_by_field_name("module_name"))
            names = []
            for name in node.children_by_field_name("name"):
                target = name.child_by_field_name("name") if name.type == "aliased_import" else name
                names.append(_text(target))
            out.append(Import(module, tuple(names)))
        elif node.type in SCOPES:
            stack.extend(reversed(node.named_children))
    return out


def module_paths(module: str, importer: str) -> list[str]:
    """The workspace-relative files `module` can be, imported from the file at relative
    path `importer`: `pkg/mod.py` or `pkg/mod/__init__.py`; relative imports resolve
    against the importer's package. Empty when it climbs out of the workspace."""
    dots = len(module) - len(module.lstrip("."))
    rest = module[dots:]
    if dots:
        base = posixpath.dirname(importer)
        for _ in range(dots - 1):
            if not base:
                return []
            base = posixpath.dirname(base)
        parts = [base] if base else []
    else:
        parts = []
    if rest:
        parts.append(rest.replace(".", "/"))
    stem = "/".join(parts)
    if not stem:
        return []
    return [stem + ".py", stem + "/__init__.py"]


def _docstring(body: Node | None) -> Node | None:
    if body is None:
        return None
    statements = [c for c in body.named_children if c.type != "comment"]
    if (
        statements
        and statements[0].type == "expression_statement"
        and statements[0].named_child_count == 1
        and statements[0].named_children[0].type == "string"
    ):
        return statements[0]
    return None


def _reindent(text: str, column: int, indent: str) -> list[str]:
    """`text` that began at `column` of its first line, re-indented to start at `indent`."""
    out = []
    for i, line in enumerate(text.splitlines()):
        if i:
            line = line[column:] if line[:column].isspace() else line.lstrip()
        out.append((indent + line).rstrip())
    return out


def _wanted_member(name: str) -> bool:
    return not name.startswith("_") or name in ("__init__", "__call__")


def _signature(node: Node, source: bytes, indent: str) -> list[str]:
    """A definition's header (decorators included), its docstring cut to a few lines, and
    `...` for the rest of its body; a class with its public methods' signatures."""
    definition = node
    if node.type == "decorated_definition":
        definition = node.child_by_field_name("definition") or node
    body = definition.child_by_field_name("body")
    end = body.start_byte if body is not None else definition.end_byte
    header = source[node.start_byte : end].decode("utf-8", errors="replace").rstrip()
    lines = _reindent(header, node.start_point.column, indent)
    inner = indent + "    "
    doc = _docstring(body)
    if doc is not None:
        doc_lines = _reindent(_text(doc), doc.start_point.column, inner)
        if len(doc_lines) > MAX_DOC_LINES:
            doc_lines = [*doc_lines[: MAX_DOC_LINES - 1], inner + '"""']
        lines += doc_lines
    members = []
    if definition.type == "class_definition" and body is not None:
        for child in body.named_children:
            if _defined_name(child) and _wanted_member(_defined_name(child)):
                kind = child
                if child.type == "decorated_definition":
                    kind = child.child_by_field_name("definition") or child
                if kind.type == "function_definition":
                    members += _signature(child, source, inner)
    return lines + (members or [inner + "..."])


def _defined_name(node: Node) -> str:
    definition = (
        node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    )
    if definition is None:
        return ""
    return _text(definition.child_by_field_name("name"))


def outline(text: str, names: tuple[str, ...] = ()) -> str:
    """The top-level functions and classes of Python `text` (with their methods) as
    signatures and docstrings, and its short top-level assignments; with `names`, only
    the definitions of those names."""
    p = parser("python")
    if p is None:
        return ""
    source = text.encode("utf-8")
    root = p.parse(source).root_node
    wanted = set(names)
    pieces: list[tuple[str, list[str]]] = []
    for node in root.named_children:
        if node.type in ("function_definition", "class_definition", "decorated_definition"):
            pieces.append((_defined_name(node), _signature(node, source, "")))
        elif node.type == "expression_statement" and node.named_child_count == 1:
            assignment = node.named_children[0]
            left = assignment.child_by_field_name("left")
            line = _text(node).split("\n", 1)[0]
            if (
                assignment.type == "assignment"
                and left is not None
                and left.type == "identifier"
                and len(line) <= MAX_VALUE_CHARS
                and "\n" not in _text(node)
            ):
                pieces.append((_text(left), [line]))
    if wanted:  # `from m import a, b`: a and b (none when they are not defined there)
        chosen = [lines for name, lines in pieces if name in wanted]
    else:
        chosen = [lines for name, lines in pieces if not name.startswith("_")]
    return "\n\n".join("\n".join(lines) for lines in chosen if lines)
