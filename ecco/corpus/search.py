"""Which neurons fire on X? Every captured neuron ranked by how well its activation separates the
tokens that match a predicate from the rest, over a whole corpus run.

The score is the AUROC (the probability that a matching token activates the neuron more than a
non-matching one, ties counting half), computed exactly from average ranks; the second column
is the precision of the neuron's top-k tokens (from the run's summaries). Activations are read
from the memory-mapped shards a block of neurons at a time, so memory holds one block of one
layer (tokens x ``block`` values), never the corpus's tokens x neurons matrix.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.stats import rankdata

Predicate = Iterable[str] | str | re.Pattern | Callable[[str, str], bool]
_BLOCK_BYTES = 256 * 2**20


@dataclass
class NeuronScore:
    """One neuron's separation of the matching tokens: AUROC and precision of its top-k."""

    column: str
    layer: int
    neuron: int
    auroc: float
    precision_at_k: float


def token_labels(tokens: Sequence[str], doc_ids: np.ndarray, positions: np.ndarray, predicate: Predicate) -> np.ndarray:
    """Whether each row's token matches ``predicate``: a collection of token strings (exact
    text), a regular expression (searched in the token text), or ``fn(token, before)`` where
    ``before`` is the text of the token's document before it."""
    if isinstance(predicate, re.Pattern | str):
        pattern = re.compile(predicate) if isinstance(predicate, str) else predicate
        return np.fromiter((pattern.search(t) is not None for t in tokens), bool, len(tokens))
    if callable(predicate):
        labels = np.zeros(len(tokens), bool)
        order = np.lexsort((positions, doc_ids))
        before, doc = "", None
        for row in order:
            if doc_ids[row] != doc:
                before, doc = "", doc_ids[row]
            labels[row] = bool(predicate(tokens[row], before))
            before += tokens[row]
        return labels
    wanted = set(predicate)
    if not wanted or not all(isinstance(t, str) for t in wanted):
        raise TypeError("predicate must be token strings, a regular expression, or a function (token, before) -> bool.")
    return np.fromiter((t in wanted for t in tokens), bool, len(tokens))


def auroc(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each column of (tokens, neurons) ``values`` for boolean ``labels`` (ties count
    half): the Mann-Whitney statistic from average ranks, as ``sklearn.metrics.roc_auc_score``."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    ranks = rankdata(values, axis=0, method="average")
    return (ranks[labels].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def layer_values(table: pa.Table, column: str, start: int, stop: int) -> np.ndarray:
    """Neurons ``start:stop`` of ``column`` for every row, as float32 (tokens, stop - start)."""
    parts = []
    for chunk in table.column(column).chunks:
        flat = chunk.values.to_numpy(zero_copy_only=False)[chunk.offset * chunk.type.list_size :]
        parts.append(flat[: len(chunk) * chunk.type.list_size].reshape(len(chunk), -1)[:, start:stop].astype(np.float32))
    return np.concatenate(parts)


def search(table: pa.Table, columns: Sequence[str], labels: np.ndarray, keys: np.ndarray,
           tops: dict[str, np.ndarray]) -> list[NeuronScore]:
    """AUROC and top-k precision of every neuron of ``columns`` for ``labels`` (one per row).

    ``keys`` are the rows' ``doc_id * 2**32 + position``; ``tops[column]`` the (neurons, k) keys of
    each neuron's top-k tokens from the summaries (-1 where empty). Best AUROC first."""
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise ValueError(
            f"The predicate matches {'no' if positives == 0 else 'every'} token of the {len(labels)} stored; "
            "AUROC needs both kinds. Loosen or tighten it (check the token texts with run.tokens(doc))."
        )
    matching = keys[labels]
    block = max(1, _BLOCK_BYTES // (4 * 3 * len(labels)))  # values, ranks and a temporary per neuron
    scores = []
    for column in columns:
        width = table.schema.field(column).type.list_size
        top = tops[column]
        valid = top >= 0
        hits = np.isin(top, matching) & valid
        precision = hits.sum(1) / np.maximum(valid.sum(1), 1)
        layer = int(column.rsplit(".", 1)[1])
        for start in range(0, width, block):
            stop = min(width, start + block)
            result = auroc(layer_values(table, column, start, stop), labels)
            scores.extend(NeuronScore(column, layer, start + i, float(v), float(precision[start + i]))
                          for i, v in enumerate(result))
    return sorted(scores, key=lambda s: (-s.auroc, s.layer, s.neuron))
