"""From raw model text to the suggestion applied at the cursor: brackets, the rest of the
line, repeats of what follows, and a suggestion the token budget cut off."""

import pytest

from lsp_llm.context.postprocess import Suggestion, balance_brackets, clean_suggestion


@pytest.mark.parametrize(
    ("line_before", "raw", "expected"),
    [
        ("print(len(", "items))", "items))"),  # both closers close the cursor line's openers
        ("x = f(", "a, b))", "a, b)"),  # the second ")" closes nothing: the editor has it
        ("x = ", "[1, 2]]", "[1, 2]"),
        ("s = ", "'(' + t)", "'(' + t"),  # brackets inside strings do not count
        ("d = {", "'a': (1, 2)}\nprint(d)", "'a': (1, 2)}\nprint(d)"),
    ],
)
def test_closers_that_close_nothing_are_cut(line_before, raw, expected):
    assert balance_brackets(line_before, raw) == expected


def test_auto_closed_brackets_after_the_cursor_are_replaced_not_doubled():
    # the editor auto-closed "()" and the cursor sits between them
    assert clean_suggestion("x, y)", "f = g(", ")\n", False) == Suggestion("x, y)", 1)
    # the suggestion stops short of the closer: nothing after the cursor is replaced
    assert clean_suggestion("x, y", "f = g(", ")\n", False) == Suggestion("x, y", 0)
    # the whole rest of the line repeated at the end of the suggestion
    assert clean_suggestion('"a", 1)', "d.get(", '"a", 1)\n', False) is None
    assert clean_suggestion("key, 1)", "d.get(", "1)\n", False) == Suggestion("key, 1)", 2)


def test_a_single_line_suggestion_keeps_its_first_line_only():
    sug = clean_suggestion("total + 1  \n    return x\n", "    y = ", "\n", False)
    assert sug == Suggestion("total + 1", 0)


def test_suggestions_that_repeat_what_follows_are_dropped():
    after = "\n    return total\n"
    assert clean_suggestion("    return total", "def f():\n", after, True) is None
    assert clean_suggestion("   \n  ", "x = ", "\n", True) is None
    kept = clean_suggestion("    total = 0", "def f():\n", after, True)
    assert kept == Suggestion("    total = 0", 0)


def test_a_block_cut_by_the_token_budget_keeps_only_whole_lines():
    raw = '"""Check n.\n\n    >>> is_prime(7)\n    >>> is_p'
    sug = clean_suggestion(raw, "def is_prime(n):\n    ", "\n", True, truncated=True)
    assert sug == Suggestion('"""Check n.\n\n    >>> is_prime(7)', 0)
    # ended by a stop rule, the last line is whole and stays
    assert clean_suggestion(raw, "def f():\n    ", "\n", True) == Suggestion(raw, 0)
    # one line cut by the budget is all there is: it stays (single line or block)
    assert clean_suggestion("return n % ", "    ", "\n", True, truncated=True) == Suggestion(
        "return n %", 0
    )
    assert clean_suggestion("n % 2", "x = ", "\n", False, truncated=True) == Suggestion("n % 2", 0)


def test_a_block_is_cut_where_it_starts_repeating_the_code_below():
    before = "def f(x):\n    "
    after = "\n    return total\n"
    raw = "total = x * 2\n    return total"
    assert clean_suggestion(raw, before, after, True) == Suggestion("total = x * 2", 0)
    # a first line equal to the code below is the model retyping it: nothing to show
    assert clean_suggestion("return total", before, after, True) is None
    # with nothing below, the block is kept whole
    assert clean_suggestion(raw, before, "\n", True) == Suggestion(raw, 0)


def test_a_line_at_the_cursors_indentation_is_inserted_after_it() -> None:
    before, after = "def f(n):\n    ", "\n"
    sug = clean_suggestion("    return n\n", before, after, multiline=True, indent="    ")
    assert sug == Suggestion("return n", 0, 0)


def test_a_line_at_another_indentation_replaces_the_cursors() -> None:
    before = "def f(xs):\n    for x in xs:\n        print(x)\n        "
    sug = clean_suggestion("    return xs\n", before, "\n", multiline=True, indent=" " * 8)
    assert sug == Suggestion("    return xs", 0, 8)
    # a block keeps every line's own indentation
    raw = "    if xs:\n        return xs[0]\n"
    block = clean_suggestion(raw, before, "\n", multiline=True, indent=" " * 8)
    assert block == Suggestion("    if xs:\n        return xs[0]", 0, 8)
