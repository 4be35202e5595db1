"""Typing ahead: the rest of a suggestion answers while the user types it (no model call),
an earlier state gets its suggestion back, and a suggestion typed past, contradicted, or
made for another document state answers nothing."""

from __future__ import annotations

from lsp_llm.context.postprocess import Suggestion
from lsp_llm.context.typeahead import TypeAhead

URI = "file:///a.py"
BEFORE = "def add(a, b):\n    "
AFTER = "\n\nprint(add(1, 2))\n"


def test_typing_the_suggestion_answers_its_rest():
    cache = TypeAhead()
    cache.remember(URI, BEFORE, AFTER, Suggestion("return a + b", 0))
    assert cache.answer(URI, BEFORE + "ret", AFTER) == Suggestion("urn a + b", 0)
    assert cache.answer(URI, BEFORE + "return a + ", AFTER) == Suggestion("b", 0)
    assert cache.answer(URI, BEFORE, AFTER) == Suggestion("return a + b", 0)  # back again


def test_typed_past_contradicted_or_changed_elsewhere_answers_nothing():
    cache = TypeAhead()
    cache.remember(URI, BEFORE, AFTER, Suggestion("return a + b", 0))
    assert cache.answer(URI, BEFORE + "return a + b", AFTER) is None  # typed to its end
    assert cache.answer(URI, BEFORE + "return a - ", AFTER) is None  # contradicted
    assert cache.answer(URI, BEFORE + "ret", AFTER + "x = 1\n") is None  # changed below
    assert cache.answer(URI, "# note\n" + BEFORE + "ret", AFTER) is None  # changed above
    assert cache.answer("file:///b.py", BEFORE + "ret", AFTER) is None  # another document
    cache.forget()
    assert cache.answer(URI, BEFORE + "ret", AFTER) is None


def test_a_big_document_keeps_only_a_window_and_a_bounded_number_of_states():
    cache = TypeAhead()
    big = "x = 1\n" * 200_000
    for i in range(20):
        cache.remember(URI, big + f"y{i} = ", AFTER, Suggestion(f"{i} + 1", 0))
    assert cache.answer(URI, big + "y19 = 1", AFTER) == Suggestion("9 + 1", 0)
    assert cache.answer(URI, big + "y0 = ", AFTER) is None  # only the last few are kept
    shown = cache._docs[URI]
    assert len(shown) <= 8 and all(len(s.before_tail) <= 4096 for s in shown)
