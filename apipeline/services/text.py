"""Cutting streamed LLM text into clauses for speech synthesis (pure, no I/O).

Synthesis starts on the first *clause*, not the first sentence: a clause ends at ``, ; : . ! ?`` or a
line break followed by a space (so "3.5" and "e.g." in mid-word stay whole), or, when the model writes
no punctuation, after ``max_words`` words. The first clause of an answer may be cut after only
``first_max_words`` words, which is what bounds the time to the bot's first audio.
"""

from __future__ import annotations

import re

from apipeline.errors import ParameterError

_BOUNDARY = re.compile(r"[,;:.!?\n](?=\s)|\n")


class ClauseSplitter:
    """Accumulate streamed text and hand out complete clauses.

    Args:
        first_max_words: longest first clause (in words) before it is cut without punctuation.
        max_words: longest later clause before it is cut without punctuation.
    """

    def __init__(self, *, first_max_words: int = 6, max_words: int = 14) -> None:
        if first_max_words < 1 or max_words < 1:
            raise ParameterError(
                f"first_max_words and max_words must be >= 1, got {first_max_words} and {max_words}"
            )
        self.first_max_words = first_max_words
        self.max_words = max_words
        self._buffer = ""
        self._first = True

    def reset(self) -> None:
        """Forget buffered text; the next clause is a first clause again (a new answer)."""
        self._buffer = ""
        self._first = True

    @property
    def pending(self) -> str:
        return self._buffer

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the clauses it completed (stripped, non-empty)."""
        self._buffer += text
        out: list[str] = []
        while True:
            clause = self._next_clause()
            if clause is None:
                return out
            clause = clause.strip()
            if clause:
                out.append(clause)
                self._first = False

    def flush(self) -> str:
        """The rest of the text (end of the answer), stripped; the splitter is reset."""
        rest = self._buffer.strip()
        self.reset()
        return rest

    def _next_clause(self) -> str | None:
        buf = self._buffer
        match = _BOUNDARY.search(buf)
        limit = self.first_max_words if self._first else self.max_words
        # the word limit counts words followed by a space: the last word may still be growing
        words = [m.end() for m in re.finditer(r"\S+\s", buf)]
        cut: int | None = None
        if match is not None:
            cut = match.end()
        if len(words) >= limit and (cut is None or words[limit - 1] < cut):
            cut = words[limit - 1]
        if cut is None:
            return None
        self._buffer = buf[cut:]
        return buf[:cut]
