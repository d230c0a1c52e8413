"""Which neurons fire on X? Every captured neuron ranked by how well its activation separates the
tokens that match a predicate from the rest, over a whole corpus run.

The score is the AUROC (the probability that a matching token activates the neuron more than a
non-matching one, ties counting half), computed exactly; the second column is the precision of
the neuron's top-k tokens (from the run's summaries). Activations are read from the
memory-mapped shards a block of neurons at a time, so memory holds one block of one layer
(tokens x ``block`` values per thread), never the corpus's tokens x neurons matrix.

Stored float16 values take only 65,536 values, so the AUROC of a float16 column is counted
instead of sorted: per neuron, the matching and the other tokens are counted at each value, and
each matching token scores the other tokens below it plus half those equal (the Mann-Whitney
statistic, exactly). float32 runs use average ranks (slower).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.stats import rankdata

Predicate = Iterable[str] | str | re.Pattern | Callable[[str, str], bool]
_BLOCK_BYTES = 256 * 2**20
_THREADS = max(1, min(4, os.cpu_count() or 1))


def _half_keys() -> np.ndarray:
    """For each float16 bit pattern, an integer in the floats' order (-0 and +0 equal)."""
    bits = np.arange(2**16, dtype=np.uint32)
    keys = np.where(bits & 0x8000, 0xFFFF - bits, bits | 0x8000).astype(np.int32)
    keys[0x8000] = keys[0]
    return keys


_HALF_KEYS = _half_keys()


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


def half_auroc(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each column of float16 (tokens, neurons) ``values``, exactly as :func:`auroc`,
    by counting the tokens at each of the 65,536 float16 values instead of ranking them."""
    keys = _HALF_KEYS[np.ascontiguousarray(values.T).view(np.uint16)]  # (neurons, tokens): one neuron at a time
    low, n = int(keys.min()), values.shape[1]
    span = int(keys.max()) - low + 1
    keys += (np.arange(n, dtype=np.int32) * span - low)[:, None]  # one range of bins per neuron
    other = np.bincount(keys[:, ~labels].ravel(), minlength=span * n)
    below_or_equal = np.cumsum(other)
    matching = keys[:, labels]
    before = np.concatenate([[0], below_or_equal[np.arange(1, n) * span - 1]])  # counts of earlier neurons
    wins = (below_or_equal[matching] - other[matching] / 2).sum(1) - before * matching.shape[1]
    positives = int(labels.sum())
    return wins / (positives * (len(labels) - positives))


def layer_values(table: pa.Table, column: str, start: int, stop: int, dtype: type = np.float32) -> np.ndarray:
    """Neurons ``start:stop`` of ``column`` for every row (tokens, stop - start), as ``dtype``
    (``None``: the stored dtype)."""
    parts = []
    for chunk in table.column(column).chunks:
        flat = chunk.values.to_numpy(zero_copy_only=False)[chunk.offset * chunk.type.list_size :]
        block = flat[: len(chunk) * chunk.type.list_size].reshape(len(chunk), -1)[:, start:stop]
        parts.append(block.astype(dtype or block.dtype))
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
    scores = []
    with ThreadPoolExecutor(_THREADS) as pool:  # numpy releases the GIL: blocks of a layer side by side
        for column in columns:
            half = table.schema.field(column).type.value_type == pa.float16()
            # values with their keys (half) or ranks and a temporary (float32), per neuron and thread
            block = max(1, _BLOCK_BYTES // ((2 + 4 * 4 if half else 4 * 3) * len(labels) * _THREADS))
            if half:  # and the counts: up to 65,536 bins per neuron (bincount and cumsum, int64)
                block = max(1, min(block, _BLOCK_BYTES // (2**16 * 8 * 2 * _THREADS)))
            width = table.schema.field(column).type.list_size

            def score(start: int, column: str = column, half: bool = half, block: int = block) -> np.ndarray:
                stop = min(width, start + block)
                if half:
                    return half_auroc(layer_values(table, column, start, stop, None), labels)
                return auroc(layer_values(table, column, start, stop), labels)

            result = np.concatenate(list(pool.map(score, range(0, width, block))))
            top = tops[column]
            valid = top >= 0
            precision = (np.isin(top, matching) & valid).sum(1) / np.maximum(valid.sum(1), 1)
            layer = int(column.rsplit(".", 1)[1])
            scores.extend(NeuronScore(column, layer, i, float(v), float(precision[i])) for i, v in enumerate(result))
    return sorted(scores, key=lambda s: (-s.auroc, s.layer, s.neuron))
