"""Static renderings of the top_neurons list and the layer similarity matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup

from .html import BLUE, ORANGE, at, chip, css, el, finite, fmt, legend, note, table, text_on, tint, viridis, viridis_rgb
from .images import png_image

MAX_TABLE = 48   # similarity matrices larger than this are drawn as an image
PIXELS = 8       # image pixels per cell then


def render_top_neurons(data: dict) -> Markup:
    """The most active neurons for one token, as a ranked table with bars (negative values blue)."""
    token = data.get("token") if isinstance(data.get("token"), dict) else None
    neurons = [n for n in data.get("neurons") or [] if isinstance(n, dict)]
    values = [finite(n.get("value")) for n in neurons]
    max_abs = max((abs(v) for v in values if v is not None), default=0.0)
    diverging = any(v is not None and v < 0 for v in values)

    def track(v: float | None) -> Markup:
        width = 0.0 if v is None or max_abs <= 0 else 100 * abs(v) / max_abs
        fill = el("span", {"style": css(display="inline-block", height="10px", width=f"{width:.2f}%",
                                        background_color=tint(BLUE if v is not None and v < 0 else ORANGE, 1))})
        half = css(display="inline-block", width="110px", vertical_align="middle")
        if not diverging:
            return el("span", {"style": half}, fill)
        neg, pos = (fill, None) if v is not None and v < 0 else (None, fill)
        return Markup("").join((el("span", {"style": half + ";" + css(text_align="right")}, neg),
                                el("span", {"style": half + ";" + css(border_left="1px solid rgb(128,128,128)")}, pos)))

    def name(n: dict) -> str:
        layer, neuron = n.get("layer"), n.get("neuron")
        return f"L{'?' if layer is None else layer} \u00b7 n{'?' if neuron is None else neuron}"

    rows = [(str(r + 1), name(n), (track(v), css(text_align="left"), None), fmt(v))
            for r, (n, v) in enumerate(zip(neurons, values))]
    header = None
    if token:
        header = note(["most active neurons for ", chip(token.get("text", "")),
                       f" position {token['position']}" if token.get("position") is not None else ""])
    if not rows:
        return Markup("").join((header or Markup(""), note("no neurons to show")))
    scale = f"bar length = |value| / {fmt(max_abs)}" + (" \u00b7 negative values to the left" if diverging else "")
    return Markup("").join((header or Markup(""), table(("#", "neuron", "", "value"), rows, "ecco-s-top-neurons", numeric_from=3),
                            legend(scale)))


def _matrix(data: dict) -> tuple[list[str], list[list[float | None]]]:
    matrix = data.get("matrix") if isinstance(data.get("matrix"), list) else []
    labels = data.get("labels") if isinstance(data.get("labels"), list) else []
    n = max(len(matrix), len(labels))
    names = [str(labels[i]) if i < len(labels) and labels[i] is not None else str(i) for i in range(n)]
    return names, [[at(matrix, r, c) for c in range(n)] for r in range(n)]


def _heatmap(values: list[list[float | None]]) -> np.ndarray:
    """RGBA pixels of a viridis heat map, ``PIXELS`` per cell, transparent where a value is missing."""
    n = len(values)
    grid = np.zeros((n, n, 4), np.uint8)
    for r, row in enumerate(values):
        for c, v in enumerate(row):
            if v is not None:
                grid[r, c] = [*viridis_rgb(v), 255]
    return np.repeat(np.repeat(grid, PIXELS, axis=0), PIXELS, axis=1)


def render_similarity(data: dict) -> Markup:
    """Layer-by-layer similarity: a table with the value in every cell (viridis over [0, 1]), or an
    image when there are more than ``MAX_TABLE`` layers."""
    labels, values = _matrix(data)
    method = str(data.get("method") or "")

    def cell(r: int, c: int) -> Any:
        v = values[r][c]
        if v is None:
            return "\u2013"
        return (f"{v:.2f}", css(background_color=viridis(v), color=text_on(v)), f"{labels[r]} vs {labels[c]}: {fmt(v, 6)}")

    if not labels:
        body = note("nothing to show")
    elif len(labels) <= MAX_TABLE:
        body = table([""] + labels, [[label] + [cell(r, c) for c in range(len(labels))] for r, label in enumerate(labels)],
                     "ecco-s-similarity")
    else:
        body = Markup("").join((
            note(f"{len(labels)} layers: drawn as an image (rows and columns {labels[0]} to {labels[-1]}, in order)"),
            png_image(_heatmap(values), f"{method} similarity between {len(labels)} layers")))
    return Markup("").join((
        note([el("span", {"style": css(font_weight="600")}, method), " similarity between layers"]) if method else Markup(""),
        body, legend(f"{method + ' ' if method else ''}similarity, viridis from 0 (dark) to 1 (light); 1 = identical"),
    ))
