"""Following the user's typing without asking the model again (what Copilot does): when
the only change since a suggestion was shown is that the user typed its first characters,
the rest of it is the answer; coming back to an earlier state gets that state's suggestion.

Each document keeps its last few suggestions, with the text just around the cursor they
were made for (a window, not the whole document) and the document's size: a suggestion
answers only when the document is the same but for what was typed at the cursor. A
suggestion typed past (or to its end), or contradicted, answers nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from lsp_llm.context.postprocess import Suggestion

WINDOW = 4096
"""Characters either side of the cursor a suggestion is matched by."""
PER_DOCUMENT = 8
DOCUMENTS = 64


@dataclass(frozen=True)
class _Shown:
    before_tail: str
    before_len: int
    after_head: str
    after_len: int
    suggestion: Suggestion


class TypeAhead:
    def __init__(self) -> None:
        self._docs: OrderedDict[str, list[_Shown]] = OrderedDict()

    def answer(self, uri: str, before: str, after: str) -> Suggestion | None:
        """The rest of a suggestion this state continues, or None (ask the model)."""
        for shown in reversed(self._docs.get(uri, [])):
            typed_len = len(before) - shown.before_len
            if typed_len < 0 or len(after) != shown.after_len:
                continue
            typed = before[len(before) - typed_len :] if typed_len else ""
            text = shown.suggestion.text
            if (
                len(typed) < len(text)
                and text.startswith(typed)
                and before.endswith(shown.before_tail + typed)
                and after.startswith(shown.after_head)
            ):
                self._docs.move_to_end(uri)
                return Suggestion(text[len(typed) :], shown.suggestion.replace_chars)
        return None

    def remember(self, uri: str, before: str, after: str, suggestion: Suggestion) -> None:
        shown = _Shown(before[-WINDOW:], len(before), after[:WINDOW], len(after), suggestion)
        recent = [s for s in self._docs.pop(uri, []) if s != shown][-(PER_DOCUMENT - 1) :]
        self._docs[uri] = [*recent, shown]
        while len(self._docs) > DOCUMENTS:
            self._docs.popitem(last=False)

    def forget(self, uri: str | None = None) -> None:
        """Drop one document's suggestions (closed), or all (settings or model changed)."""
        if uri is None:
            self._docs.clear()
        else:
            self._docs.pop(uri, None)
