"""Stop rules on growing text: cut points and what may be streamed before them."""

from lsp_llm.engine.stopping import StopChecker
from lsp_llm.engine.types import StopRules


def feed_all(rules: StopRules, text: str) -> tuple[str, str | None]:
    """Feed one character at a time; return (streamed text, final text if stopped)."""
    checker = StopChecker(rules)
    emitted = 0
    for i in range(1, len(text) + 1):
        verdict = checker.feed(text[:i])
        assert verdict.emit_upto >= emitted, "never takes back streamed text"
        emitted = verdict.emit_upto
        if verdict.stop_at is not None:
            return text[:emitted], text[: verdict.stop_at]
    return text[:emitted], None


def test_single_line_stops_at_newline():
    streamed, final = feed_all(StopRules(single_line=True), "x + 1)\n    return y")
    assert final == "x + 1)"
    assert streamed == final


def test_stop_string_is_held_back_until_decided():
    checker = StopChecker(StopRules(stop_strings=("\n\n\n",)))
    assert checker.feed("a\n\n").emit_upto == 1
    assert checker.feed("a\n\nb").emit_upto == 4
    streamed, final = feed_all(StopRules(stop_strings=("END",)), "abcENDdef")
    assert final == "abc" and streamed == "abc"


def test_dedent_ends_block_but_not_first_line():
    rules = StopRules(block_indent=4)
    text = "x = 1\n    y = 2\n\n    return y\ndef other():\n    pass\n"
    streamed, final = feed_all(rules, text)
    assert final == "x = 1\n    y = 2\n\n    return y"
    assert streamed == final


def test_blank_tail_dropped_at_finish():
    checker = StopChecker(StopRules(block_indent=4))
    assert checker.finish("    return 1\n    ") == "    return 1"
    assert checker.finish("abc\n") == "abc"
    assert StopChecker(StopRules(stop_strings=("\n\n",))).finish("abc\n") == "abc\n"


def test_no_rules_streams_everything():
    assert feed_all(StopRules(), "anything\n  at all") == ("anything\n  at all", None)
