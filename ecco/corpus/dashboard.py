"""Plain data of the corpus dashboards: a unit's (neuron's or factor's) top contexts with every
token's value, and its summary statistics, as JSON-ready numbers.

The contexts of many (unit, token) pairs are read in one batch: the token text of every window
with one ``take`` and the values with one call of ``values(rows)`` (one read of the stored column
at those rows, never the whole layer).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ..checks import as_int
from .reader import Corpus
from .summaries import NeuronSummary

ValueReader = Callable[[np.ndarray], np.ndarray]  # rows -> (len(rows), units) values


class Peak(NamedTuple):
    """One of a unit's top tokens: which unit, its value, where it is."""

    unit: int
    value: float
    doc: int
    position: int


def number(x: float) -> float | None:
    """``x`` as a Python float, None when it is not finite (JSON has no NaN or infinity)."""
    x = float(x)
    return x if math.isfinite(x) else None


def top_peaks(summary: NeuronSummary, unit: int, k: int | None = None) -> list[Peak]:
    """The first ``k`` (default: all kept) of ``unit``'s top tokens in ``summary``, in the summary's
    order (value descending, then doc id, then position); empty slots left out."""
    if k is not None:
        k = as_int(k, "k", 1, summary.k, f"k={k!r}: this run kept the top {summary.k} tokens per unit "
                   f"(top_k={summary.k}); ask for 1..{summary.k}, or run the corpus with a larger top_k.")
    docs, positions, values = summary.top_doc_ids[unit], summary.top_positions[unit], summary.top_values[unit]
    found = [Peak(unit, float(values[i]), int(docs[i]), int(positions[i])) for i in range(summary.k) if docs[i] >= 0]
    return found[:k]


def read_contexts(corpus: Corpus, peaks: Sequence[Peak], width: int, values: ValueReader) -> list[dict]:
    """The window of ``width`` tokens on each side of every peak (cut at its document's ends), with
    every token's text and its value of the peak's unit.

    Each context: ``doc``, ``document`` (its name), ``position`` (of the peak), ``first`` (position
    of the window's first token), ``peak`` (index of the peak in the window), ``value`` (the peak's
    value from the summary), ``tokens`` (text) and ``values`` (floats, None where not finite)."""
    width = as_int(width, "width", 0)
    spans, rows = [], []
    for peak in peaks:
        window, here = corpus.window(peak.doc, peak.position, width)
        spans.append((len(rows), len(window), here))
        rows.extend(window.tolist())
    if not rows:
        return []
    taken = np.asarray(rows, dtype=np.int64)
    texts = corpus.table.column("token").take(pa.array(taken)).to_pylist()
    table = np.asarray(values(taken))
    contexts = []
    for peak, (offset, n, here) in zip(peaks, spans):
        shown = table[offset : offset + n, peak.unit].astype(np.float64)
        contexts.append({
            "doc": peak.doc, "document": corpus.document_name(peak.doc), "position": peak.position,
            "first": peak.position - here, "peak": here, "value": number(peak.value),
            "tokens": texts[offset : offset + n], "values": [number(v) for v in shown],
        })
    return contexts


def unit_stats(summary: NeuronSummary, unit: int) -> dict:
    """``unit``'s corpus statistics: ``count`` (tokens), ``mean``, ``std``, ``fraction_positive`` and
    ``histogram``: ``counts`` (len(edges) + 1: bin 0 counts ``x < edges[0]``, bin ``i`` counts
    ``edges[i-1] <= x < edges[i]``, the last bin ``x >= edges[-1]``) and the finite ``edges``."""
    return {
        "count": int(summary.count),
        "mean": number(summary.mean[unit]),
        "std": number(summary.std[unit]),
        "fraction_positive": number(summary.fraction_positive[unit]),
        "histogram": {"counts": [int(c) for c in summary.counts[unit]], "edges": [float(e) for e in summary.edges]},
    }
