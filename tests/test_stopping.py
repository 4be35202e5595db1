"""Stop rules on growing text: cut points and what may be streamed before them."""

from lsp_llm.generation.stopping import StopChecker
from lsp_llm.generation.types import StopRules


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


LOOP = StopRules(block_indent=4, max_line_repeats=3)


def test_a_repeated_line_stops_the_generation_and_keeps_one_copy():
    text = 'x = """Doc.\n\n    >>> f(0)\n    >>> f(0)\n    >>> f(0)\n    >>> f(0)\n'
    streamed, final = feed_all(LOOP, text)
    assert final == 'x = """Doc.\n\n    >>> f(0)'
    assert streamed == final


def test_a_repeated_block_of_lines_stops_too():
    body = "    a = f(x)\n    b = g(a)\n"
    streamed, final = feed_all(LOOP, "y = 1\n" + body * 3 + "    c = 3\n")
    assert final == "y = 1\n" + body.rstrip("\n")
    assert streamed == final


def test_two_copies_and_other_lines_are_kept():
    text = "    total = 0\n    total = 0\n    return total\n    }\n    }\n"
    assert feed_all(LOOP, text) == ("    total = 0\n    total = 0\n    return total\n    }", None)
    # at the end of the generation the last line counts as written
    checker = StopChecker(LOOP)
    assert checker.finish("p()\n    q()\n    q()\n    q()") == "p()\n    q()"
    assert checker.finish("p()\n    q()\n    q()") == "p()\n    q()\n    q()"


def test_repeats_are_held_back_while_they_may_still_be_cut():
    checker = StopChecker(LOOP)
    assert checker.feed("a\n    b").emit_upto == 1  # whole lines only
    assert checker.feed("a\n    b\n    b\n").emit_upto == len("a\n    b")
    assert checker.feed("a\n    b\n    b\n    c\n").emit_upto == len("a\n    b\n    b\n    c")


def test_without_the_rule_repeats_stream_on():
    text = "    x\n" * 5
    assert feed_all(StopRules(block_indent=4), text)[1] is None


def test_line_unless_the_first_line_opens_a_block():
    rules = StopRules(block_indent=4, line_unless_opens=(":", "{"))
    assert feed_all(rules, "x = 1\n    y = 2\n") == ("x = 1", "x = 1")
    # a line that opens a block goes on as a block, until the dedent rule ends it
    streamed, final = feed_all(rules, "if x:\n        y = 2\n    z = 3\nw = 4\n")
    assert final == "if x:\n        y = 2\n    z = 3" and final.startswith(streamed)
    # single_line wins over it
    assert feed_all(StopRules(single_line=True, line_unless_opens=(":",)), "if x:\n  y") == (
        "if x:",
        "if x:",
    )


LINE_LOOP = StopRules(single_line=True, max_line_cycle=48)
BLOCK_LOOP = StopRules(block_indent=4, max_line_cycle=48)


def test_a_line_caught_in_a_loop_ends_the_generation_before_the_loop():
    loop = "headers: " + "Dict[str, " * 12
    streamed, final = feed_all(LINE_LOOP, loop)
    assert final == "headers:" and streamed == final
    text = "return text.strip()" + ' + "\\n"' * 12
    assert feed_all(LINE_LOOP, text)[1] == "return text.strip()"
    # it ends as soon as the run covers 48 characters, not at the token budget
    checker = StopChecker(LINE_LOOP)
    cut_at = next(i for i in range(len(loop) + 1) if checker.feed(loop[:i]).stop_at is not None)
    assert cut_at <= len("headers: ") + 48 < len(loop)
    # on a later line of a block, that line goes: the block ends with the line before
    text = "x = 1\n    y = NAMESPACE" + "_NAMESPACE" * 8
    streamed, final = feed_all(BLOCK_LOOP, text)
    assert final == "x = 1" and streamed == "x = 1"


def test_repetition_that_is_code_or_a_separator_is_kept():
    for text in (
        "grid = [[0, 0, 0, 0], [0, 0, 0, 0]]",  # short runs
        "# " + "-" * 70,  # a separator
        "print('=' * 70)",
        "x = " + "a" * 30,  # under 48 characters of loop
    ):
        assert feed_all(LINE_LOOP, text) == ("", None), text
        assert StopChecker(LINE_LOOP).finish(text) == text


def test_the_loop_rule_holds_back_only_the_line_being_written():
    checker = StopChecker(BLOCK_LOOP)
    assert checker.feed("a = 1\n    b = 2\n    c").emit_upto == len("a = 1\n    b = 2")
    assert StopChecker(LINE_LOOP).finish("abc" + "xy" * 30) == "abc"


def test_a_loop_is_found_when_a_piece_brings_several_lines_at_once():
    checker = StopChecker(StopRules(max_line_cycle=48))
    assert checker.feed("x = 1\n").stop_at is None
    text = "x = 1\ny = " + "ab" * 30 + "\n\nz = 2"  # a remote engine's piece, or "\n\n"
    assert checker.feed(text).stop_at == len("x = 1")
    # a long separator is read once, and kept
    line = "# " + "-" * 5000
    assert StopChecker(LINE_LOOP).feed(line).stop_at is None


def test_a_block_that_brings_its_own_indentation_is_that_lines_block():
    # The prompt ended at the line's start: the first line sets the block's indentation
    # (a dedent to 4 from a cursor at 8), and the block ends where the code leaves it.
    rules = StopRules(block_indent=8, indent_from_first_line=True)
    text = "    if n:\n        return 1\n    return 0\nprint(f(2))\n"
    _, final = feed_all(rules, text)
    assert final == "    if n:\n        return 1\n    return 0"
    # without it, the cursor's 8 columns would have ended the block after its first line
    _, cut = feed_all(StopRules(block_indent=8), text)
    assert cut == "    if n:\n        return 1"
