"""Token predicates for ``run.search`` on code: Karpathy's bracket, indentation and string neurons.

Each is a predicate ``run.search`` takes: a regular expression over the token text, or a
function ``(token, before) -> bool`` where ``before`` is the text of the document before the
token. :func:`code_queries` gives the three that ``ecco report --corpus`` runs by default.
"""
from __future__ import annotations

import re
from collections.abc import Callable

OPENING_BRACKET = re.compile(r"[(\[{]")
"""A token holding an opening bracket: ``(``, ``[`` or ``{`` (``(``, `` [``, ``({`` ...)."""


def line_indentation(token: str, before: str) -> bool:
    """Whether the token is indentation at the start of a line: only spaces and tabs (after an
    optional newline), with nothing but indentation between the line's start and the token's end."""
    text = token.lstrip("\r\n")
    if not text or text.strip(" \t"):
        return False
    line = (before + token).rsplit("\n", 1)[-1]
    return line.strip(" \t") == "" and line != ""


class InStringLiteral:
    """Whether a token starts inside a Python string literal, its quotes and prefix included
    (``'``, ``"``, ``\'\'\'``, ``\"\"\"``; backslash escapes; ``#`` comments are not strings;
    an f-string's ``{...}`` counts as inside).

    A small lexer over the characters, needing no look-ahead: called in document order (as
    ``run.search`` does) it continues from the previous token, so a document is lexed once;
    called with any other text it lexes ``before`` again. A string prefix that is a token of its own
    (``f`` then ``"``) cannot be known as such and counts as outside."""

    _PREFIX = re.compile(r"(?i)(?:rb|br|fr|rf|[rbfu])['\"]")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._length = 0
        self._before = self._token = ""
        self._quote = ""  # the open literal's quotes, "" outside strings
        self._comment = self._escape = False
        self._run, self._run_char = 0, ""  # quotes just seen: opening (outside) or closing (in a triple)

    def __call__(self, token: str, before: str) -> bool:
        """Whether ``token``, after the document text ``before``, starts inside a literal."""
        follows = len(before) == self._length and before.startswith(self._before) and before.endswith(self._token)
        if not follows:  # not the text read so far plus the last token: read it again
            self._reset()
            self._feed(before)
        inside = self._starts_inside(token)
        self._feed(token)
        self._before, self._token = before, token
        return inside

    def _starts_inside(self, token: str) -> bool:
        if not token or self._comment:
            return False
        if self._quote:
            return True
        if self._run == 1:  # one opening quote: whatever follows is in a literal
            return True
        if self._run == 2:  # '' is an empty literal unless a third quote follows
            return token[0] in "'\""
        return token[0] in "'\"" or self._PREFIX.match(token) is not None

    def _feed(self, text: str) -> None:
        for char in text:
            self._length += 1
            self._step(char)

    def _step(self, char: str) -> None:
        if self._comment:
            self._comment = char != "\n"
        elif self._quote:
            self._in_string(char)
        elif self._run:
            self._opening(char)
        elif char == "#":
            self._comment = True
        elif char in "'\"":
            self._run, self._run_char = 1, char

    def _opening(self, char: str) -> None:
        if char == self._run_char:
            self._run += 1
            if self._run == 3:
                self._quote, self._run = char * 3, 0
            return
        run, self._run = self._run, 0
        if run == 1:
            self._quote = self._run_char
            self._in_string(char)
        else:  # an empty literal closed; the char is code
            self._step(char)

    def _in_string(self, char: str) -> None:
        if self._escape:
            self._escape, self._run = False, 0
        elif char == "\\":
            self._escape, self._run = True, 0
        elif len(self._quote) == 1:
            if char == self._quote or char == "\n":  # closed (or unterminated at the line's end)
                self._quote = ""
        elif char == self._quote[0]:
            self._run += 1
            if self._run == 3:
                self._quote, self._run = "", 0
        else:
            self._run = 0


def code_queries() -> dict[str, re.Pattern | Callable[[str, str], bool]]:
    """Karpathy's three queries on code, fresh (the string lexer keeps state): name -> predicate.
    ``ecco report --corpus`` runs them by default."""
    return {
        "opening bracket": OPENING_BRACKET,
        "indentation at the start of a line": line_indentation,
        "inside a string literal": InStringLiteral(),
    }
