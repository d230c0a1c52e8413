"""The causal tracing view (Meng et al. 2022, Fig. 1): which internal states carry a prediction.

For each traced component (residual stream, MLP, attention) a heatmap of the traced stack's
positions (rows, labelled by their token text, the corrupted tokens starred) by layers (columns).
A cell is what restoring that component's clean state at that (layer, position) in the corrupted
run does to the target's probability: the indirect effect (restored − corrupted probability), the
normalised effect (the indirect effect over clean − corrupted) or the restored probability itself.

The numbers come from :class:`ecco.causal.trace.Trace`; this module only lays them out as the
view's data (the schema at the top of ``ecco/js/causal_trace.js``). The interactive view, its
static rendering and :func:`trace_figure` show the same numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..causal.trace import Trace
from ..render import View, plots
from ..render.static.html import finite
from ..render.static.tracing import LABELS, VALUES, token_label

__all__ = ["trace_data", "trace_view", "trace_figure"]

VIEW = "causal_trace"
CMAPS = {"residual": "Purples", "mlp": "Greens", "attention": "Reds"}


def _grid(values: np.ndarray) -> list[list[float | None]]:
    """A (layers, positions) array as nested lists, NaN and inf as None."""
    return [[finite(float(v)) for v in row] for row in np.asarray(values, dtype=float)]


def _check(trace: Trace, tokens: Sequence[str], counterfactual: Sequence[str] | None) -> int:
    """The number of layers, after checking that the texts fit the trace's arrays."""
    if not trace.probs:
        raise ValueError("The trace has no components: trace at least one of 'residual', 'mlp', 'attention'.")
    unknown = sorted(set(trace.probs) - set(LABELS))
    if unknown:
        raise ValueError(f"The trace has unknown components {unknown}; the view shows {sorted(LABELS)}.")
    shapes = {name: np.shape(p) for name, p in trace.probs.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise ValueError(f"Every component's probabilities must be a (layers, positions) array, all of one shape; got {shapes}.")
    layers, positions = next(iter(shapes.values()))
    if len(tokens) != positions:
        raise ValueError(f"tokens has {len(tokens)} texts but the trace has {positions} positions: give one text per "
                         "position of the traced stack.")
    if (counterfactual is None) != (trace.counterfactual is None):
        raise ValueError("counterfactual (the counterfactual prompt's token texts) must be given exactly when the trace "
                         "ran a counterfactual prompt (trace.counterfactual is not None).")
    if counterfactual is not None and len(counterfactual) != positions:
        raise ValueError(f"counterfactual has {len(counterfactual)} texts but the trace has {positions} positions.")
    bad = [p for p in trace.corrupted if not 0 <= p < positions]
    if bad:
        raise ValueError(f"Corrupted positions {bad} are outside the traced stack's {positions} positions.")
    return layers


def trace_data(trace: Trace, tokens: Sequence[str], target: str, model: str,
               counterfactual: Sequence[str] | None = None) -> dict[str, Any]:
    """The view's data for ``trace``: ``tokens`` the traced stack's token texts, ``target`` the
    target token's text, ``counterfactual`` the counterfactual prompt's token texts (activation
    patching; None for noise). Raises ValueError when the texts do not fit the trace."""
    layers = _check(trace, tokens, counterfactual)
    what = "Activation patching" if trace.counterfactual is not None else "Causal tracing"
    return {
        "title": f"{what} of p({target!r})", "model": model, "stack": trace.stack,
        "tokens": [str(t) for t in tokens], "corrupted": [int(p) for p in trace.corrupted],
        "counterfactual": None if counterfactual is None else [str(t) for t in counterfactual],
        "target": {"id": int(trace.target), "text": target},
        "clean_prob": finite(float(trace.clean_prob)), "corrupt_prob": finite(float(trace.corrupt_prob)),
        "noise": None if trace.noise is None else finite(float(trace.noise)), "seeds": int(trace.seeds),
        "window": int(trace.window), "layers": int(layers),
        "components": [{"name": name, "label": LABELS[name], "prob": _grid(trace.probs[name]),
                        "indirect": _grid(trace.indirect(name)), "normalised": _grid(trace.normalised(name))}
                       for name in trace.probs],
    }


def trace_view(data: dict[str, Any], printJson: bool = False) -> View | dict:
    """The view of ``data`` (from :func:`trace_data`), or the dict with ``printJson``."""
    return data if printJson else View(VIEW, data)


def trace_figure(data: dict[str, Any], value: str = "indirect"):
    """A matplotlib figure of the heatmaps side by side (positions x layers, colour from 0 to each
    panel's max) of ``value``: 'indirect', 'normalised' or 'prob'."""
    if value not in VALUES:
        raise ValueError(f"value must be one of {sorted(VALUES)}, got {value!r}.")
    corrupted = set(data["corrupted"])
    rows = [token_label(plots.short(str(t)), p in corrupted) for p, t in enumerate(data["tokens"])]
    panels = [(c["label"], np.array([[np.nan if v is None else v for v in row] for row in c[value]], dtype=float).T,
               CMAPS[c["name"]]) for c in data["components"]]
    return plots.trace_figure(panels, rows, str(data["title"]), VALUES[value])
