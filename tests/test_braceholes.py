"""The eval's language slice: holes in the brace languages that put the file back
together, found inside function bodies only, and an eval over a folder of mixed languages
scored per language."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lsp_llm.evaluation.braceholes import BRACE_KINDS, any_candidates
from lsp_llm.evaluation.holes import punch_holes

SOURCES = {
    "sum.go": """package main

import "fmt"

// Sum adds.
func Sum(xs []int) int {
\ttotal := 0
\tfor _, x := range xs {
\t\ttotal += x
\t}
\treturn total
}

var names = []string{"a", "b"}
""",
    "sum.rs": """/// Adds.
pub fn sum(xs: &[i64]) -> i64 {
    let mut total = 0;
    for x in xs {
        total += x;
    }
    total
}

const LIMIT: i64 = 10;
""",
    "Sum.java": """class Sum {
    int limit = 10;

    /** Adds. */
    static int sum(int[] xs) {
        int total = 0;
        for (int x : xs) {
            total += x;
        }
        return total;
    }
}
""",
    "sum.c": """#include <stddef.h>

static int limit = 10;

/* Adds. */
int sum(const int *xs, size_t n) {
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        total += xs[i];
    }
    return total;
}
""",
    "sum.hpp": """#include <vector>

template <typename T>
T sum(const std::vector<T>& xs) {
    T total{};
    for (const auto& x : xs) {
        total += x;
    }
    return total;
}
""",
    "sum.js": """const limit = 10;

/** Adds. */
export function sum(xs) {
  let total = 0;
  for (const x of xs) {
    total += x;
  }
  return total;
}
""",
    "sum.ts": """const limit: number = 10;

export const sum = (xs: number[]): number => {
  let total = 0;
  for (const x of xs) {
    total += x;
  }
  return total;
};
""",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_brace_holes_put_back_give_the_original_file(name: str) -> None:
    source = SOURCES[name]
    found = any_candidates(name, source)
    assert set(found) == set(BRACE_KINDS) and all(found[k] for k in BRACE_KINDS), found
    for kind, holes in found.items():
        for h in holes:
            assert h.kind == kind and h.language != "python"
            assert h.text[: h.offset] + h.expected + h.text[h.offset :] == source
            assert h.expected.strip()
            assert kind == "body" or "\n" not in h.expected
            # inside a function body only: never the top-level declarations
            assert "limit" not in h.expected.lower() and "names" not in h.expected
            assert not h.expected.lstrip().startswith(("//", "/*", "}"))
    line = {h.expected for h in found["line"]}
    assert any("total" in e and "+=" in e for e in line)
    for h in found["midline"]:  # after a token boundary, never inside `:=`, `==`, `::`
        assert h.text[h.offset - 1] in " (.,[=:" and h.expected[0] not in " =:>"
    body = found["body"][0]
    assert body.expected.split("\n")[-1].strip().startswith("return total") or (
        body.expected.split("\n")[-1].strip() == "total"  # Rust's tail expression
    )


def test_a_language_without_a_grammar_has_no_holes_and_python_keeps_its_kinds() -> None:
    assert any_candidates("notes.txt", "func f() {\n  return 1\n}\n") == {}
    python = any_candidates("a.py", "def f(x):\n    y = x + 1\n    return y\n")
    assert python["line"] and python["body"]
    holes = punch_holes(list(SOURCES.items()), per_kind=1, seed=0, candidates=any_candidates)
    assert {h.kind for h in holes} == set(BRACE_KINDS)


def test_the_eval_over_a_folder_scores_each_language(loaded, tmp_path: Path) -> None:
    """`lsp-llm eval --sources DIR`, its parts on the tiny model: half the files hold the
    holes, the other half fit the n-gram; the report has a row per language."""
    from lsp_llm.config import CompletionSettings, Settings
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine
    from lsp_llm.evaluation.run import evaluate, language_markdown, markdown, source_files

    for i in range(4):  # copies under other names, so both halves of the split hold some
        for name, text in SOURCES.items():
            (tmp_path / f"{i}_{name}").write_text(text)
    (tmp_path / "notes.txt").write_text("not code\n")
    files, training = source_files(tmp_path)
    assert files and training and len(files) + len(training) == 4 * len(SOURCES)
    holes = punch_holes([f for f in files if f[0].endswith((".go", ".rs"))], 1, 0, any_candidates)
    engine = LocalBackend(Engine(dataclasses.replace(loaded)))
    try:
        settings = Settings(completion=CompletionSettings(max_new_tokens=8))
        report = evaluate(
            engine, settings, training, holes, modes=("off",), progress=lambda _: None,
            continuation=False,
        )  # fmt: skip
    finally:
        engine.close()
    assert set(report["languages"]) == {"go", "rust"}
    assert sum(s["all"]["n"] for s in report["languages"].values()) == len(holes)
    assert "| go |" in language_markdown(report["languages"]) and "| rust |" in markdown(report)
