"""Hidden states of every layer for training and evaluating a lens, in batches of tokens: read
from a corpus run that stored them, or computed on the fly from a source (one batched forward
pass at a time, so the hidden states of a whole corpus are never in memory).

Documents are split into a training and a held-out part by a hash of their ``doc_id`` and a
seed: the same documents are held out on every run, whether they come from a corpus run or
straight from its source.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..corpus.engine import CaptureSpec, Engine
from ..corpus.reader import Corpus, next_ids
from ..corpus.run import TOKENIZE_GROUP
from ..corpus.sources import Source
from ..corpus.windows import Window, batches, windows_for
from ..runner import Runner


@dataclass(frozen=True)
class Split:
    """Documents whose hash with ``seed`` falls below ``held_out`` (a fraction) are held out."""

    held_out: float = 0.1
    seed: int = 0

    def is_held_out(self, doc_id: int) -> bool:
        """Whether document ``doc_id`` is in the held-out part."""
        digest = hashlib.blake2b(f"{self.seed}:{int(doc_id)}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64 < self.held_out

    def keeps(self, doc_id: int, part: str) -> bool:
        """Whether document ``doc_id`` belongs to ``part`` ('train', 'held_out' or 'all')."""
        return part == "all" or self.is_held_out(doc_id) == (part == "held_out")


@dataclass
class HiddenBatch:
    """Some tokens' hidden states at every layer and the token that follows each."""

    hidden: torch.Tensor  # (layers, tokens, hidden) float32; the last layer is the final (normed) one
    next_ids: torch.Tensor  # (tokens,) int64; -1 where the next token is not known (a window's or document's end)

    @property
    def n_tokens(self) -> int:
        """Tokens in the batch."""
        return self.hidden.shape[1]


def _pieces(hidden: torch.Tensor, next_ids: torch.Tensor, rows: int, rng: np.random.Generator | None,
            budget: list[int]) -> Iterator[HiddenBatch]:
    """``hidden`` (layers, tokens, d) cut into batches of ``rows`` tokens (shuffled with ``rng``),
    until ``budget[0]`` tokens (None: all) have been given."""
    order = np.arange(hidden.shape[1]) if rng is None else rng.permutation(hidden.shape[1])
    for start in range(0, len(order), rows):
        if budget[0] is not None and budget[0] <= 0:
            return
        take = order[start : start + rows]
        if budget[0] is not None:
            take = take[: budget[0]]
            budget[0] -= len(take)
        index = torch.from_numpy(np.sort(take))
        yield HiddenBatch(hidden[:, index], next_ids[index])


# ------------------------------------------------------------------ a corpus run
def run_hidden_columns(corpus: Corpus, n_layers: int) -> list[str]:
    """The run's hidden-state columns of layers 0..n_layers-1, or a ValueError saying what is missing."""
    capture = corpus.settings["capture"]
    stack = capture["stack"]
    if not capture["hidden_states"]:
        raise ValueError(
            f"The corpus run in {corpus.path} stored no hidden states (hidden_states=False): a lens trains on them. "
            "Run lm.run_corpus(source, out_dir, hidden_states=True), or pass the source itself to stream it."
        )
    missing = sorted(set(range(n_layers)) - set(capture["layers"]))
    if missing:
        raise ValueError(
            f"The corpus run in {corpus.path} stored the hidden states of layers {capture['layers']}, but a lens needs "
            f"every layer's (missing: {missing}). Run it with layers=None and hidden_states=True, or pass the source."
        )
    return [f"hidden.{stack}.{layer}" for layer in range(n_layers)]


def run_batches(corpus: Corpus, n_layers: int, split: Split, part: str, rows: int, seed: int | None,
                limit: int | None) -> Iterator[HiddenBatch]:
    """The run's tokens of ``part`` in batches of ``rows`` (shuffled when ``seed`` is not None),
    at most ``limit`` of them; the stored float16/float32 states come back as float32."""
    columns = run_hidden_columns(corpus, n_layers)
    docs = corpus.table.column("doc_id").to_numpy()
    following = corpus.following_ids()
    chosen = np.flatnonzero(np.isin(docs, _part_docs(docs, split, part)))
    if seed is not None:
        chosen = np.random.default_rng(seed).permutation(chosen)
    if limit is not None:
        chosen = chosen[:limit]
    for start in range(0, len(chosen), rows):
        take = np.sort(chosen[start : start + rows])
        hidden = torch.stack([torch.from_numpy(corpus.array(c, take)).float() for c in columns])
        yield HiddenBatch(hidden, torch.from_numpy(following[take]))


def _part_docs(docs: np.ndarray, split: Split, part: str) -> np.ndarray:
    unique = np.unique(docs)
    return unique[np.fromiter((split.keeps(d, part) for d in unique), dtype=bool, count=len(unique))]


def count_tokens(corpus: Corpus, split: Split, part: str) -> int:
    """Stored tokens of ``part`` in a corpus run."""
    docs = corpus.table.column("doc_id").to_numpy()
    return int(np.isin(docs, _part_docs(docs, split, part)).sum())


# ------------------------------------------------------------------ a source, streamed
def stream_engine(runner: Runner, tokenizer: PreTrainedTokenizerBase, stack: str) -> Engine:
    """An engine that captures every layer's hidden state of ``stack`` in float32, and nothing else."""
    n_layers = runner.spec.stacks[stack].n_layers
    return Engine(runner, tokenizer, CaptureSpec(stack, tuple(range(n_layers)), False, True, "float32", False))


def source_batches(engine: Engine, tokenizer: PreTrainedTokenizerBase, source: Source, split: Split, part: str,
                   rows: int, seed: int | None, limit: int | None, max_tokens: int, overlap: int,
                   batch_tokens: int) -> Iterator[HiddenBatch]:
    """The tokens of ``part`` of ``source``'s documents, through the model ``batch_tokens`` at a time,
    in batches of ``rows`` (shuffled within each forward pass when ``seed`` is not None), at most
    ``limit`` of them."""
    rng = None if seed is None else np.random.default_rng(seed)
    budget = [limit]
    group: list = []
    columns = [f"hidden.{engine.capture.stack}.{layer}" for layer in engine.capture.layers]

    def flush() -> Iterator[HiddenBatch]:
        by_doc, _ = windows_for(tokenizer, group, max_tokens, overlap)
        windows: list[Window] = [w for d in group for w in by_doc.get(d.doc_id, [])]
        group.clear()
        for batch in batches(windows, batch_tokens):
            out = engine.run(batch)
            if not out.n_rows:
                continue
            order = np.lexsort((out.positions, out.doc_ids))
            following = np.empty(out.n_rows, dtype=np.int64)
            following[order] = next_ids(out.doc_ids[order], out.positions[order], out.token_ids[order])
            hidden = torch.stack([out.arrays.pop(c) for c in columns]).float()  # one copy: the batch's own go
            yield from _pieces(hidden, torch.from_numpy(following), rows, rng, budget)
            if budget[0] is not None and budget[0] <= 0:
                return

    for doc in source.documents():
        if split.keeps(doc.doc_id, part):
            group.append(doc)
        if len(group) == TOKENIZE_GROUP:
            yield from flush()
            if budget[0] is not None and budget[0] <= 0:
                return
    yield from flush()
