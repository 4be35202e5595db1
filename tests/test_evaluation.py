"""The evaluation: holes that put the file back together, metrics with known values, the
n-gram baseline, and a whole `evaluate` run on the tiny model."""

from __future__ import annotations

import dataclasses

import pytest

from lsp_llm.config import CompletionSettings, Settings
from lsp_llm.evaluation.holes import KINDS, punch_holes
from lsp_llm.evaluation.metrics import (
    edit_similarity,
    exact_line,
    exact_text,
    levenshtein,
    stray_whitespace,
)
from lsp_llm.evaluation.ngram import NGramModel
from lsp_llm.evaluation.run import CONTINUATION_TOKENS, evaluate, markdown, previous_line
from lsp_llm.generation.types import StopRules

SOURCE = '''\
import math


def area(r):
    """Area of a circle."""
    value = math.pi * r ** 2
    return round(value, 2)


class Box:
    def volume(self, w, h, d):
        total = w * h * d
        if total < 0:
            raise ValueError("negative")
        return total
'''


def test_holes_put_back_give_the_original_file() -> None:
    holes = punch_holes([("shapes.py", SOURCE)], per_kind=50, seed=1)
    assert {h.kind for h in holes} == set(KINDS)
    for h in holes:
        # a reindent hole's line replaces the auto-indent before the cursor
        start = h.text.rfind("\n", 0, h.offset) + 1 if h.kind == "reindent" else h.offset
        assert h.text[:start] + h.expected + h.text[h.offset :] == SOURCE
        assert h.expected.strip()
        assert "Area of a circle" not in h.expected  # docstrings stay as the user wrote them
    body = [h.expected for h in holes if h.kind == "body"]
    assert "value = math.pi * r ** 2\n    return round(value, 2)" in body
    mid = [h for h in holes if h.kind == "midline"]
    assert all(h.text[h.offset - 1] in " (.,[=:" for h in mid)


def test_hole_sampling_is_deterministic() -> None:
    a = punch_holes([("shapes.py", SOURCE)], per_kind=2, seed=7)
    b = punch_holes([("shapes.py", SOURCE)], per_kind=2, seed=7)
    assert a == b and len(a) == 2 * len(KINDS) - 1  # SOURCE has one reindent hole


def test_metrics() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abc", "xyz") == 0.0
    assert edit_similarity("return x  \n", "return x") == 1.0
    assert exact_line("  return x\n  y = 2", "return x")
    assert not exact_line("return y", "return x")
    # the indent kind scores the whole inserted text: a block where a line was wanted fails
    assert exact_text("return x  ", "return x")
    assert not exact_text("return x\n    y = 2", "return x")
    assert stray_whitespace(" return x") and stray_whitespace("\nreturn x")
    assert not stray_whitespace("return x") and not stray_whitespace("")


def test_indent_holes_sit_where_the_editor_auto_indents() -> None:
    holes = [h for h in punch_holes([("shapes.py", SOURCE)], 50, 1) if h.kind == "indent"]
    assert holes
    for h in holes:
        line_start = h.text.rfind("\n", 0, h.offset) + 1
        previous = h.text[:line_start].rstrip("\n").rsplit("\n", 1)[-1]
        width = len(previous) - len(previous.lstrip())
        assert h.offset - line_start == width + (4 if previous.rstrip().endswith(":") else 0)


def test_previous_line_baseline() -> None:
    holes = punch_holes([("shapes.py", SOURCE)], per_kind=50, seed=1)
    line = next(h for h in holes if h.kind == "line" and h.expected.startswith("return round"))
    assert previous_line(line) == "value = math.pi * r ** 2"


def test_ngram_continues_what_it_counted(tiny) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny.target)
    text = "for item in items:\n    print(item)\n"
    ids = list(tok.encode(text * 5, add_special_tokens=False))
    model = NGramModel(len(tok)).fit([ids])
    prompt = list(tok.encode(text * 2 + "for item in", add_special_tokens=False))
    line = model.complete(tok, prompt, StopRules(single_line=True), max_new_tokens=20)
    assert line == (" items:", "stop")
    looping = model.complete(tok, prompt, StopRules(), max_new_tokens=6)
    assert looping[1] == "length"
    unseen = next(t for t in range(len(tok)) if t not in ids)
    assert model.next_token([unseen]) is None  # nothing counted after it: the baseline stops


@pytest.mark.parametrize("trained_spm", [False, True])
def test_evaluate_reports_every_predictor_and_mode(loaded, trained_spm) -> None:
    """A model trained on SPM is scored in the order the server sends it (SPM), and in PSM
    beside it."""
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine

    engine = LocalBackend(Engine(dataclasses.replace(loaded, trained_spm=trained_spm)))
    try:
        holes = punch_holes([("shapes.py", SOURCE)], per_kind=2, seed=3)
        settings = Settings(completion=CompletionSettings(max_new_tokens=8))
        report = evaluate(
            engine, settings, [SOURCE], holes, modes=("off", "draft"), progress=lambda _: None
        )
    finally:
        engine.close()
    predictors = {"model (fim)", "empty", "previous line", "n-gram"}
    assert set(report["scores"]) == predictors | ({"model, PSM order"} if trained_spm else set())
    n = len(holes)
    assert report["scores"]["empty"]["all"] == {
        "n": n,
        "exact": 0.0,
        "similarity": 0.0,
        "stray_whitespace": 0.0,
    }
    for key in ("speculation", "continuation"):
        for mode in ("off", "draft"):
            s = report[key][mode]
            assert s["identical"] == 1.0  # greedy text is the same in every mode
            assert s["tokens_per_target_forward"] > 0
        assert report[key]["off"]["tokens_per_target_forward"] <= 1.0
    # continuations run the full length, free of the completions' stop rules
    assert report["continuation"]["off"]["completion_tokens"] == n * CONTINUATION_TOKENS
    table = markdown(report)
    assert "| n-gram |" in table and "| draft |" in table
    assert ("| model, PSM order |" in table) is trained_spm
    assert f"{CONTINUATION_TOKENS}-token continuations" in table


def test_styles_and_ablations_are_scored_beside_the_served_style(loaded) -> None:
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine

    engine = LocalBackend(Engine(loaded))
    try:
        holes = punch_holes([("shapes.py", SOURCE)], per_kind=1, seed=3)
        settings = Settings(completion=CompletionSettings(max_new_tokens=6))
        report = evaluate(
            engine,
            settings,
            [SOURCE],
            holes,
            modes=("off",),
            progress=lambda _: None,
            continuation=False,
            compare_styles=True,
            ablations=True,
        )
    finally:
        engine.close()
    assert "continuation" not in report and list(report["speculation"]) == ["off"]
    assert {
        "model (fim)",
        "model (prefix)",
        "model (chat)",
        "model (fim), no token healing",
        "model (fim), code below the line unread",
    } <= set(report["scores"])
    assert all(s["all"]["n"] == len(holes) for s in report["scores"].values())


def test_reindent_holes_put_the_cursor_at_the_wrong_indentation() -> None:
    from lsp_llm.evaluation.holes import auto_indent
    from lsp_llm.evaluation.metrics import score

    holes = [h for h in punch_holes([("shapes.py", SOURCE)], 50, 1) if h.kind == "reindent"]
    wanted = next(h for h in holes if h.expected == "        return total")
    line_start = wanted.text.rfind("\n", 0, wanted.offset) + 1
    cursor = wanted.text[line_start : wanted.offset]
    assert cursor == " " * 12 and wanted.text[wanted.offset] == "\n"  # after the raise
    for h in holes:
        start = h.text.rfind("\n", 0, h.offset) + 1
        previous = h.text[:start].rstrip("\n").rsplit("\n", 1)[-1]
        assert (
            h.offset - start == auto_indent(previous) != len(h.expected) - len(h.expected.lstrip())
        )
    # Only a suggestion that re-indents the line is right: inserted at the cursor, the same
    # text lands 4 columns too deep.
    assert score("reindent", "return total", wanted.expected, cursor) == (False, 20 / 24)
    assert score("reindent", "        return total", wanted.expected, cursor, 12)[0]
    assert not score("reindent", "    return total", wanted.expected, cursor, 12)[0]
