"""The direct logit attribution view: one bar per part of the residual stream, a layer's heads
and top neurons on click.

The numbers come from :func:`ecco.causal.logit_attribution` (a :class:`~ecco.causal.LogitAttribution`);
this module only lays them out as the view's data (the schema at the top of
``ecco/js/logit_attribution.js``) and picks each layer's ``top_neurons`` neurons that push the
logit up most and down most. The interactive view, its static rendering and
:func:`logit_attribution_figure` show the same numbers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..causal import LogitAttribution
from ..render import View, plots
from ..render.static.causal import logit_bars

__all__ = ["logit_attribution_data", "logit_attribution_view", "logit_attribution_figure"]

VIEW = "logit_attribution"


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _top(effects: np.ndarray, activations: np.ndarray, k: int, sign: int) -> list[dict]:
    """The ``k`` neurons with the largest share of sign ``sign`` (none of the other sign)."""
    order = np.argsort(-sign * effects, kind="stable")[:k]
    return [{"neuron": int(i), "value": _num(effects[i]), "activation": _num(activations[i])}
            for i in order if sign * effects[i] > 0]


def logit_attribution_data(result: LogitAttribution, prompt: Sequence[str], target: str, foil: str | None,
                           model: str, top_neurons: int = 10) -> dict[str, Any]:
    """The view's data for ``result``: ``prompt`` the prompt's token texts, ``target`` / ``foil``
    the explained tokens' texts, ``top_neurons`` per sign and layer."""
    layers = []
    for i in range(len(result.attention)):
        cross = result.cross_attention
        layers.append({
            "layer": i, "attention": _num(result.attention[i]), "mlp": _num(result.mlp[i]),
            "cross_attention": None if cross is None else _num(cross[i]),
            "heads": [_num(v) for v in result.heads[i]], "attention_bias": _num(result.attention_bias[i]),
            "cross_heads": None if cross is None else [_num(v) for v in result.cross_heads[i]],
            "cross_attention_bias": None if cross is None else _num(result.cross_attention_bias[i]),
            "mlp_bias": _num(result.mlp_bias[i]),
            "neurons_up": _top(result.neurons[i], result.activations[i], top_neurons, 1),
            "neurons_down": _top(result.neurons[i], result.activations[i], top_neurons, -1),
        })
    what = f"logit({target!r}) \u2212 logit({foil!r})" if foil is not None else f"logit({target!r})"
    return {
        "title": f"Direct logit attribution of {what}", "model": model, "prompt": list(prompt),
        "target": {"id": result.target, "text": target},
        "foil": None if foil is None else {"id": result.foil, "text": foil},
        "logit": _num(result.logit), "model_logit": _num(result.model_logit), "bias": _num(result.bias),
        "embeddings": _num(result.embeddings), "softcap": result.softcap, "norm_scale": _num(result.norm_scale),
        "layers": layers,
    }


def logit_attribution_view(data: dict[str, Any], printJson: bool = False) -> View | dict:
    """The view of ``data`` (from :func:`logit_attribution_data`), or the dict with ``printJson``."""
    return data if printJson else View(VIEW, data)


def logit_attribution_figure(data: dict[str, Any]):
    """A matplotlib figure of the bars (signed shares), the bias and the total in the title."""
    bars = [(label, value or 0.0) for label, value, _ in logit_bars(data)]
    return plots.logit_attribution_figure(bars, data.get("bias") or 0.0, data.get("logit") or 0.0,
                                          data.get("title") or "")
