"""The document's language: the client's id when it is known, else its alias or major-mode
name, else the file's extension."""

from __future__ import annotations

import pytest

from lsp_llm.context.languages import language_id


@pytest.mark.parametrize(
    ("given", "path", "expected"),
    [
        ("python", "/a/b.txt", "python"),  # a known id wins over the extension
        ("", "file:///a/b.py", "python"),
        ("", "/a/b.GO", "go"),
        ("", "/a/b.rs", "rust"),
        ("", "/a/b.java", "java"),
        ("", "/a/b.hpp", "cpp"),
        ("", "/a/b.h", "c"),
        ("", "/a/b.tsx", "typescriptreact"),
        ("python-ts", "/a/b", "python"),
        ("rust-mode", "/a/b", "rust"),
        ("c++", "/a/b", "cpp"),
        ("typescript-tsx", "/a/x", "typescriptreact"),
        ("Elixir", "/a/b.ex", "elixir"),  # unknown id, unknown extension: the id, lower case
        ("", "/a/Makefile", "text"),
    ],
)
def test_language_id(given: str, path: str, expected: str):
    assert language_id(given, path) == expected
