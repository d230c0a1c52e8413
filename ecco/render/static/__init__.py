"""Static renderings of the views, made in Python: what a view shows where scripts do not run.

An untrusted notebook in JupyterLab, a notebook on GitHub or nbviewer, or an HTML export with its
scripts stripped shows a view's HTML but runs none of its JavaScript. Each view's fragment
therefore carries, inside its root element, a static rendering of the same data (HTML with inline
styles; charts as images with a ``data:`` source) with a note on how to get the interactive view.
The view's script empties the root before drawing, so where scripts run the static rendering is
replaced by the interactive view.

Each renderer takes the view's data dict (the schema at the top of ``ecco/js/{view}.js``) and
nothing else; token text is data, always escaped.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import Markup

from .attention import render_attention_head, render_attention_model, render_attention_neuron
from .causal import render_logit_attribution
from .corpus import render_neuron_dashboard
from .faithfulness import render_faithfulness
from .html import MUTED, css, el
from .interventions import render_intervention_diff
from .lens import render_layer_predictions, render_rankings, render_trajectory
from .neurons import render_similarity, render_top_neurons
from .text import render_attribution, render_neuron, render_nmf, render_tokens
from .tracing import render_trace

__all__ = ["RENDERERS", "NOTE", "static_html", "render_body"]

RENDERERS: dict[str, Callable[[dict], Markup]] = {
    "tokens": render_tokens,
    "attribution": render_attribution,
    "neuron": render_neuron,
    "nmf": render_nmf,
    "layer_predictions": render_layer_predictions,
    "rankings": render_rankings,
    "trajectory": render_trajectory,
    "top_neurons": render_top_neurons,
    "similarity": render_similarity,
    "attention_head": render_attention_head,
    "attention_model": render_attention_model,
    "attention_neuron": render_attention_neuron,
    "neuron_dashboard": render_neuron_dashboard,
    "faithfulness": render_faithfulness,
    "logit_attribution": render_logit_attribution,
    "causal_trace": render_trace,
    "intervention_diff": render_intervention_diff,
}

NOTE = ("Static preview: scripts did not run here, so this view is not interactive. "
        "To explore it, use File \u2192 Trust Notebook (JupyterLab) or re-run the cell; "
        "in a saved page, open it with JavaScript enabled.")

# What a renderer may raise on data it cannot read (the interactive view then still shows it).
_DATA_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, binascii.Error)


def render_body(view: str, data: Mapping[str, Any]) -> Markup:
    """The static rendering of ``view`` for ``data``, without title or note; raises on unreadable data."""
    return RENDERERS[view](dict(data))


def static_html(view: str, data: Mapping[str, Any]) -> Markup:
    """The block shown where scripts do not run: the view's title, the note on how to get the
    interactive view, and the static rendering (just the note when ``data`` cannot be read)."""
    try:
        body = render_body(view, data) if view in RENDERERS else Markup("")
    except _DATA_ERRORS:
        body = Markup("")
    title = data.get("title") if isinstance(data, Mapping) else None
    note_style = css(color=MUTED, font_size="12px", font_style="italic", margin="0 0 0.5em")
    title_style = css(font_weight="600", margin="0 0 0.2em")
    return el("div", {"class": "ecco-static", "style": css(font_size="13px", line_height="1.5")}, [
        el("div", {"class": "ecco-static-title", "style": title_style}, str(title)) if title else None,
        el("div", {"class": "ecco-static-note", "style": note_style}, NOTE),
        body,
    ])
