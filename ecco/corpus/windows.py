"""Documents -> token windows -> length-bucketed batches.

Each document is tokenized once, whole, without special tokens; a document longer than a
window is cut into windows of ``max_tokens`` tokens (the tokenizer's special tokens, e.g.
``[CLS] ... [SEP]`` or a BOS, included and added to every window) that overlap by ``overlap``
content tokens. The first window stores all its tokens; a later one stores only the tokens
after the overlap, which it reads as context. So every document token is stored exactly once,
with at least ``overlap`` tokens of left context (or the whole document before it).
"""
from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from ..checks import as_int
from ..tokens import token_pieces
from .sources import Document

_PROBE = "Hello world, 42"  # any text that tokenizes to ordinary tokens


@dataclass
class Window:
    """One model input cut from document ``doc_id``.

    ``ids`` = ``special_prefix`` special tokens, the content tokens (document positions
    ``start .. start + n_content - 1``), ``special_suffix`` special tokens. The first ``keep``
    content tokens are context only; the rest are stored. ``text_pieces`` holds the document
    text of each content token.
    """

    doc_id: int
    start: int
    ids: list[int]
    keep: int
    special_prefix: int
    special_suffix: int
    text_pieces: list[str]

    @property
    def n_content(self) -> int:
        """Number of content (document) tokens in the window."""
        return len(self.ids) - self.special_prefix - self.special_suffix

    @property
    def n_stored(self) -> int:
        """Number of tokens this window stores."""
        return self.n_content - self.keep

    @property
    def content_ids(self) -> list[int]:
        """The content token ids (no special tokens)."""
        return self.ids[self.special_prefix : len(self.ids) - self.special_suffix]

    @property
    def stored_span(self) -> tuple[int, int]:
        """``(first, stop)``: the stored tokens are ``ids[first:stop]``."""
        return self.special_prefix + self.keep, len(self.ids) - self.special_suffix

    @property
    def stored_positions(self) -> range:
        """Document positions of the stored tokens."""
        return range(self.start + self.keep, self.start + self.n_content)

    @property
    def stored_ids(self) -> list[int]:
        """Token ids of the stored tokens."""
        first, stop = self.stored_span
        return self.ids[first:stop]

    @property
    def stored_pieces(self) -> list[str]:
        """Document text of the stored tokens."""
        return self.text_pieces[self.keep :]


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one sequence, e.g.
    ``([CLS], [SEP])`` for BERT, ``([BOS], [])`` for Llama, ``([], [])`` for GPT-2.

    Found by encoding a probe text with and without special tokens and locating the plain
    encoding inside the full one; if it is not found there, the full encoding's leading and
    trailing special ids are taken.
    """
    plain = list(tokenizer(_PROBE, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(_PROBE, add_special_tokens=True)["input_ids"])
    n = len(plain)
    for i in range(len(full) - n + 1):
        if full[i : i + n] == plain:
            return full[:i], full[i + n :]
    special = set(tokenizer.all_special_ids)
    lead = next((i for i, t in enumerate(full) if t not in special), len(full))
    tail = next((i for i, t in enumerate(reversed(full)) if t not in special), 0)
    return full[:lead], full[len(full) - tail :]


def window_spans(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, stop, keep)`` of the windows over ``n_tokens`` content tokens: windows of
    ``size`` tokens, each after the first starting ``size - overlap`` after the previous one and
    keeping its first ``overlap`` tokens as context. None for an empty document."""
    if size <= overlap:
        raise ValueError(f"A window of {size} content tokens cannot overlap by {overlap}.")
    if n_tokens <= 0:
        return []
    spans, start = [(0, min(n_tokens, size), 0)], 0
    while start + size < n_tokens:
        start += size - overlap
        spans.append((start, min(start + size, n_tokens), overlap))
    return spans


def _offset_pieces(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """Token texts from character offsets: each token's piece runs from where the previous one
    ended to its own end (so a leading space trimmed from an offset stays with its token, and
    pieces of one character split over several tokens go to the first); the last piece takes
    any text after it. The pieces join to ``text``."""
    if not offsets:
        return []
    ends = list(map(operator.itemgetter(1), offsets))
    if any(map(operator.gt, ends, ends[1:])):  # an end before the previous one: keep the pieces in order
        ends = list(itertools.accumulate(ends, max))
    ends[-1] = len(text)
    return list(map(text.__getitem__, map(slice, [0, *ends[:-1]], ends)))  # C loops: ~0.4 us per token


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[tuple[list[int], list[str]]]:
    """``(ids, pieces)`` per text: its tokens without special tokens (one batched call) and each
    token's text (from a fast tokenizer's offsets; else :func:`ecco.tokens.token_pieces`)."""
    texts = list(texts)
    if not texts:
        return []
    options = {"add_special_tokens": False, "return_attention_mask": False, "return_token_type_ids": False,
               "verbose": False}
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(texts, return_offsets_mapping=True, **options)
        return [
            (list(ids), _offset_pieces(text, offsets))
            for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"])
        ]
    encoded = tokenizer(texts, **options)
    return [(list(ids), token_pieces(tokenizer, ids)) for ids in encoded["input_ids"]]


def _layout(tokenizer: PreTrainedTokenizerBase, max_tokens: int, overlap: int) -> tuple[list[int], list[int], int, int]:
    """(special prefix, special suffix, content tokens per window, overlap), checked."""
    max_tokens = as_int(max_tokens, "max_tokens", 1)
    overlap = as_int(overlap, "overlap", 0)
    prefix, suffix = special_tokens(tokenizer)
    specials = len(prefix) + len(suffix)
    size = max_tokens - specials
    if size <= overlap:
        raise ValueError(
            f"max_tokens={max_tokens} leaves {size} document tokens per window (the tokenizer adds {specials} "
            f"special tokens), which must be more than overlap={overlap}: raise max_tokens to at least "
            f"{specials + overlap + 1} or lower overlap."
        )
    return prefix, suffix, size, overlap


def content_size(tokenizer: PreTrainedTokenizerBase, max_tokens: int, overlap: int) -> int:
    """Document tokens per window: ``max_tokens`` less the tokenizer's special tokens, checked to
    exceed ``overlap`` (a ValueError that says what to change otherwise)."""
    return _layout(tokenizer, max_tokens, overlap)[2]


def windows_for(
    tokenizer: PreTrainedTokenizerBase, docs: Sequence[Document], max_tokens: int, overlap: int
) -> tuple[dict[int, list[Window]], list[int]]:
    """Windows of many documents, tokenized in one batched call.

    Returns ``({doc_id: windows}, skipped)``: documents that tokenize to nothing (empty text)
    have no windows and are listed in ``skipped``, in the order given.
    """
    prefix, suffix, size, overlap = _layout(tokenizer, max_tokens, overlap)
    by_doc: dict[int, list[Window]] = {}
    skipped: list[int] = []
    for doc, (ids, pieces) in zip(docs, encode_texts(tokenizer, [d.text for d in docs])):
        if not ids:
            skipped.append(doc.doc_id)
            continue
        by_doc[doc.doc_id] = [
            Window(doc.doc_id, start, [*prefix, *ids[start:stop], *suffix], keep, len(prefix), len(suffix),
                   pieces[start:stop])
            for start, stop, keep in window_spans(len(ids), size, overlap)
        ]
    return by_doc, skipped


def document_windows(tokenizer: PreTrainedTokenizerBase, doc: Document, max_tokens: int, overlap: int) -> list[Window]:
    """The windows of one document (none when it tokenizes to nothing)."""
    by_doc, _ = windows_for(tokenizer, [doc], max_tokens, overlap)
    return by_doc.get(doc.doc_id, [])


def batches(windows: Sequence[Window], batch_tokens: int) -> list[list[Window]]:
    """Windows grouped into batches of similar length, each within ``batch_tokens`` padded tokens
    (``len(batch) * longest <= batch_tokens``).

    Windows are sorted longest first (ties by ``doc_id``, then ``start``), so the largest batch
    comes first and a batch too big for the device fails at once; batches are cut greedily.
    """
    batch_tokens = as_int(batch_tokens, "batch_tokens", 1)
    out: list[list[Window]] = []
    current: list[Window] = []
    width = 0
    for window in sorted(windows, key=lambda w: (-len(w.ids), w.doc_id, w.start)):
        if len(window.ids) > batch_tokens:
            raise ValueError(
                f"batch_tokens={batch_tokens} is less than a window of {len(window.ids)} tokens: make batch_tokens "
                "at least max_tokens."
            )
        if current and (len(current) + 1) * width > batch_tokens:
            out.append(current)
            current = []
        if not current:
            width = len(window.ids)
        current.append(window)
    if current:
        out.append(current)
    return out


def padding_fraction(batches: Sequence[Sequence[Window]]) -> float:
    """Share of padding in right-padded ``batches``: 1 - real tokens / (rows x longest), over all."""
    padded = sum(len(batch) * max(len(w.ids) for w in batch) for batch in batches if batch)
    real = sum(len(w.ids) for batch in batches for w in batch)
    return 1.0 - real / padded if padded else 0.0
