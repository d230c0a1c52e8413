"""The code predicates against independent computations: Python's own tokenizer for string
literals (on real standard-library files), and the lines' leading whitespace for indentation."""
from __future__ import annotations

import io
import random
import re
import tokenize

import numpy as np
import pytest

from ecco.corpus.predicates import OPENING_BRACKET, InStringLiteral, line_indentation
from ecco.corpus.search import token_labels
from ecco.corpus.sources import python_stdlib

PIECES = re.compile(r"\w+|[ \t]+|\n+[ \t]*|[^\w\s]")


def _split(text: str, seed: int) -> list[str]:
    """Word-like pieces, some merged with their neighbour at random (so quotes, escapes and
    indentation fall across token boundaries in every way)."""
    pieces = PIECES.findall(text)
    rng = random.Random(seed)
    tokens: list[str] = []
    for piece in pieces:
        if tokens and rng.random() < 0.3:
            tokens[-1] += piece
        else:
            tokens.append(piece)
    assert "".join(tokens) == text
    return tokens


def _string_spans(text: str) -> np.ndarray:
    """For each character: inside a STRING token of Python's tokenizer (prefix and quotes included)."""
    lines = text.splitlines(keepends=True)
    starts = np.cumsum([0] + [len(line) for line in lines])
    inside = np.zeros(len(text), bool)
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING:
            (l1, c1), (l2, c2) = tok.start, tok.end
            inside[starts[l1 - 1] + c1 : starts[l2 - 1] + c2] = True
    return inside


def _offsets(tokens: list[str]) -> np.ndarray:
    return np.cumsum([0] + [len(t) for t in tokens])[:-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_string_literal_lexer_agrees_with_pythons_tokenizer(seed):
    files = [p for p in python_stdlib(max_bytes=60_000).paths if p.name in {"_pydecimal.py", "textwrap.py", "shlex.py",
                                                                            "string.py", "tokenize.py", "json/decoder.py"}]
    files = files or python_stdlib(max_files=8).paths
    checked = 0
    for path in files[:4]:
        text = path.read_text(encoding="utf-8")
        tokens = _split(text, seed)
        expected = _string_spans(text)[_offsets(tokens)]
        labels = token_labels(tokens, np.zeros(len(tokens), np.int64), np.arange(len(tokens)), InStringLiteral())
        prefix_alone = np.array([bool(re.fullmatch(r"(?i)rb|br|fr|rf|[rbfu]", t)) and nxt[:1] in "'\""
                                 for t, nxt in zip(tokens, tokens[1:] + [""])])
        wrong = np.flatnonzero((labels != expected) & ~prefix_alone)
        assert not len(wrong), [(tokens[i - 2 : i + 2], labels[i], expected[i]) for i in wrong[:5]]
        assert expected.sum() > 20
        checked += len(tokens)
    assert checked > 1000


def test_string_literal_cases():
    def labels(tokens: list[str]) -> list[bool]:
        lexer = InStringLiteral()
        return [lexer(t, "".join(tokens[:i])) for i, t in enumerate(tokens)]

    assert labels(["x", " =", " '", "a", "'", " +", " b"]) == [False, False, False, True, True, False, False]
    assert labels(["s", '=', '"', '""', "doc", '"', '""', "y"]) == [False, False, True, True, True, True, True, False]
    assert labels(["a", "''", "b"]) == [False, True, False]  # an empty literal
    assert labels(["'", "\\", "'", "x", "'", "y"]) == [True, True, True, True, True, False]  # an escaped quote
    assert labels(["#", " 'no", "\n", "f'", "{", "x", "}'"]) == [False, False, False, True, True, True, True]
    lexer = InStringLiteral()  # out of order: reads `before` again
    assert lexer("y", "x = 'a") and not lexer("y", "x = 'a'")


def test_indentation_is_the_leading_whitespace_of_a_line():
    text = "def f(x):\n    if x:\n\treturn [x,  y]\n  \n    pass\n"
    tokens = PIECES.findall(text) + ["\n", "   ", "# c", "\n", "  x", " ", "\n\n  "]
    text = "".join(tokens)
    leading = np.zeros(len(text), bool)  # characters of each line's leading spaces and tabs
    start = 0
    for line in text.split("\n"):
        width = len(line) - len(line.lstrip(" \t"))
        leading[start : start + width] = True
        start += len(line) + 1
    offsets = _offsets(tokens)
    expected = []
    for token, offset in zip(tokens, offsets):
        body = offset + len(token) - len(token.lstrip("\n"))
        expected.append(body < offset + len(token) and bool(leading[body : offset + len(token)].all()))
    got = [line_indentation(t, text[:o]) for t, o in zip(tokens, offsets)]
    assert got == expected and sum(expected) >= 4


def test_opening_bracket():
    assert [bool(OPENING_BRACKET.search(t)) for t in ["(", " [", "({", ")", "x", "]:"]] == [1, 1, 1, 0, 0, 0]
