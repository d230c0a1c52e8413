"""Readable token strings and word boundaries, derived from the tokenizer itself."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

# Tokens decoded together with a few predecessors, so that pieces of one multi-byte
# character or a sentencepiece leading space come out right.
_CONTEXT = 4


@dataclass
class TokenText:
    """Display data of one sequence: one entry per token."""

    text: list[str]
    continues_word: list[bool]
    special: list[bool]


def token_pieces(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[str]:
    """The text each token adds to the decoded sequence (leading spaces included)."""
    pieces = []
    for i in range(len(ids)):
        start = max(0, i - _CONTEXT)
        before = tokenizer.decode(ids[start:i], clean_up_tokenization_spaces=False)
        upto = tokenizer.decode(ids[start : i + 1], clean_up_tokenization_spaces=False)
        piece = upto[len(before) :] if upto.startswith(before) else tokenizer.decode([ids[i]])
        pieces.append(piece)
    return pieces


def _word_ids(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], pieces: list[str]) -> list[int | None] | None:
    """Word index per token from a fast tokenizer's offsets, if re-encoding reproduces ``ids``."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    encoding = tokenizer("".join(pieces), add_special_tokens=False)
    if list(encoding["input_ids"]) != list(ids):
        return None
    return encoding.word_ids()


def _looks_continued(previous: str, piece: str) -> bool:
    return bool(previous) and bool(piece) and previous[-1].isalnum() and piece[0].isalnum()


def describe_tokens(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> TokenText:
    """Readable text, "continues the previous word" and "special" flags for ``ids``.

    Word boundaries come from the tokenizer's pre-tokenisation (``word_ids`` of the
    re-encoded text) for each run of ordinary tokens that re-encodes to the same ids; a run
    that does not (a generated, non-canonical split) falls back to the decoded text: a piece
    continues a word when it and its predecessor meet letter to letter.
    """
    ids = [int(i) for i in ids]
    special_ids = set(tokenizer.all_special_ids)
    special = [i in special_ids for i in ids]
    pieces = token_pieces(tokenizer, ids)
    continues = [False] * len(ids)
    start = 0
    while start < len(ids):
        if special[start]:
            start += 1
            continue
        end = start
        while end < len(ids) and not special[end]:
            end += 1
        words = _word_ids(tokenizer, ids[start:end], pieces[start:end])
        for k in range(start + 1, end):
            if words is not None and words[k - start] is not None:
                continues[k] = words[k - start] == words[k - start - 1] and not pieces[k][:1].isspace()
            else:
                continues[k] = _looks_continued(pieces[k - 1], pieces[k])
        start = end
    return TokenText(pieces, continues, special)
