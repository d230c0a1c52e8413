"""Static matplotlib figures, for papers and slides.

Figures are made without pyplot, so a notebook's inline backend does not show them by itself:
``fig = output.rankings(plot=True); fig`` shows the figure once, as the cell's value (and
``fig.savefig(...)`` works as usual)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def rankings_figure(ranks: np.ndarray, layers: Sequence[int], columns: Sequence[str], title: str | None = None):
    """Heatmap of ranks (layers x tokens), darker = better, rank numbers in the cells."""
    ranks = np.asarray(ranks)
    height = max(2.5, 0.28 * len(layers) + 1.2)
    width = max(3.0, 0.75 * len(columns) + 1.5)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    shade = np.log10(ranks.astype(float))
    ax.imshow(shade, cmap="Blues_r", aspect="auto", vmin=0, vmax=max(4.0, float(shade.max())))
    for (row, col), rank in np.ndenumerate(ranks):
        ax.text(col, row, str(rank), ha="center", va="center", fontsize=7,
                color="white" if shade[row, col] < 1.5 else "black")
    ax.set_xticks(range(len(columns)), [repr(c)[1:-1] for c in columns], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=7)
    ax.set_ylabel("layer")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def trajectory_figure(layers: Sequence[int], series: dict[str, np.ndarray], labels: Sequence[str]):
    """One panel per series (layers on x), one line per token."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(series), 3.2))
    axes = fig.subplots(1, len(series), squeeze=False)
    for ax, (name, values) in zip(axes[0], series.items()):
        for column, label in enumerate(labels):
            ax.plot(layers, values[:, column], marker=".", linewidth=1, label=repr(label)[1:-1])
        ax.set_xlabel("layer")
        ax.set_title(name, fontsize=10)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def factors_figure(values: np.ndarray, labels: Sequence[str], tokens: Sequence[str]):
    """One row per factor (``values``: factors x tokens), its activation over the tokens."""
    count = len(values)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 0.18 * values.shape[1]), 0.7 * count + 1))
    axes = fig.subplots(count, 1, sharex=True, squeeze=False)
    for row, ax in enumerate(axes[:, 0]):
        ax.fill_between(range(values.shape[1]), values[row], step="mid", alpha=0.6)
        ax.set_ylabel(labels[row], rotation=0, ha="right", fontsize=8)
        ax.set_yticks([])
    axes[-1, 0].set_xticks(range(len(tokens)), [repr(t)[1:-1] for t in tokens], rotation=90, fontsize=7)
    fig.tight_layout()
    return fig


def _nan(v: float | None) -> float:
    return np.nan if v is None else v


def short(label: str, n: int = 24) -> str:
    """``label`` cut to ``n`` characters (an ellipsis ends a cut one), for the figure's tick labels."""
    return label if len(label) <= n else label[: n - 1] + "\u2026"


def _metric_panel(ax: Any, metric: dict, methods: list[dict], colours: list[str]) -> None:
    """Each method's mean and CI (filled dot when it beats random, hollow when not), its random
    baseline's CI as a grey band and mean as a grey tick; methods top to bottom."""
    key = metric["key"]
    for y, (m, colour) in enumerate(zip(methods, colours)):
        if m["error"] is not None:
            ax.text(0.02, y, "failed", transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="grey")
            continue
        s, r = m["metrics"][key], m["random"][key]
        if r["low"] is not None and r["high"] is not None:
            ax.fill_betweenx([y - 0.3, y + 0.3], r["low"], r["high"], color="grey", alpha=0.25, linewidth=0,
                             gid=f"band:{m['name']}")
        ax.plot([_nan(r["mean"])], [y], marker="|", markersize=12, color="grey", linestyle="none", gid=f"random:{m['name']}")
        if s["low"] is not None and s["high"] is not None:
            ax.plot([s["low"], s["high"]], [y, y], color=colour, linewidth=1.5, gid=f"ci:{m['name']}")
        filled = m["verdicts"].get(key) == "better"
        ax.plot([_nan(s["mean"])], [y], marker="o", markersize=5, linestyle="none", color=colour,
                markerfacecolor=colour if filled else "white", gid=f"mean:{m['name']}")
    ax.set_yticks(range(len(methods)), [short(m["label"]) for m in methods], fontsize=7)
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=7)
    arrow = "\u2191" if metric["better"] == "higher" else "\u2193"
    ax.set_title(f"{metric['label']} ({arrow} better)", fontsize=9)


def _curve_panel(ax: Any, kind: str, fractions: list[float | None], methods: list[dict], colours: list[str]) -> None:
    """Every method's mean ``kind`` curve; the random baselines' mean curves dashed grey (each
    distinct one once)."""
    xs = [_nan(x) for x in fractions]
    randoms: list[list[float | None]] = []
    for m, colour in zip(methods, colours):
        if m["error"] is not None:
            continue
        ax.plot(xs, [_nan(v) for v in m["curves"][kind]["mean"]], color=colour, linewidth=1.4, label=short(m["label"]),
                gid=f"curve:{m['name']}")
        random = m["random_curves"][kind]["mean"]
        if random not in randoms:
            ax.plot(xs, [_nan(v) for v in random], color="grey", linestyle="--", linewidth=1.2,
                    label=None if randoms else "random", gid=f"random_curve:{m['name']}")
            randoms.append(random)
    ax.set_xlabel("fraction of tokens " + ("removed" if kind == "deletion" else "restored"), fontsize=8)
    ax.set_ylabel("score", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{kind.capitalize()} curve", fontsize=9)


def faithfulness_figure(data: dict, keys: Sequence[str]):
    """The faithfulness comparison (checked view data, with each method's ``verdicts``): one panel
    per metric in ``keys`` (each method's mean and interval, filled when it beats random, the
    random baseline grey), then the deletion and insertion curves of every method."""
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    by_key = {m["key"]: m for m in data["metrics"]}
    methods = data["methods"]
    colours = [f"C{i % 10}" for i in range(len(methods))]
    per_row = min(3, max(1, len(keys)))
    rows = math.ceil(len(keys) / per_row)
    panel_h = 0.3 * len(methods) + 1.0
    fig = Figure(figsize=(3.4 * per_row + 1.2, rows * panel_h + 3.2))
    grid = GridSpec(rows + 1, 2 * per_row, figure=fig, height_ratios=[panel_h] * rows + [3.0])
    for i, key in enumerate(keys):
        row, col = divmod(i, per_row)
        _metric_panel(fig.add_subplot(grid[row, 2 * col: 2 * col + 2]), by_key[key], methods, colours)
    for j, kind in enumerate(("deletion", "insertion")):
        ax = fig.add_subplot(grid[rows, j * per_row: (j + 1) * per_row])
        _curve_panel(ax, kind, data["fractions"], methods, colours)
        if j == 0 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(str(data["title"]), fontsize=10)
    fig.tight_layout()
    return fig


def logit_attribution_figure(bars: Sequence[tuple[str, float]], bias: float, logit: float, title: str):
    """Direct logit attribution: one horizontal signed bar per part (``bars``: label, share), top to
    bottom in model order; the bias and the total logit in the title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 0.8 + 0.22 * len(bars)))
    ax = fig.subplots()
    values = [v for _, v in bars]
    ax.barh(range(len(bars)), values, color=["#2d70e6" if v >= 0 else "#f07814" for v in values])
    ax.set_yticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("share of the logit")
    ax.set_title(f"{short(title, 70)}\ntotal {logit:.4g} = parts + bias {bias:.4g}", fontsize=9)
    fig.tight_layout()
    return fig


def trace_figure(panels: Sequence[tuple[str, np.ndarray, str]], rows: Sequence[str], title: str, value: str):
    """Causal tracing heatmaps side by side: per panel (title, values of positions x layers,
    colormap), positions as rows labelled ``rows``, layers as columns, colour from 0 to the panel's
    max (NaN cells blank)."""
    from matplotlib.figure import Figure

    layers = max([values.shape[1] for _, values, _ in panels] + [1])
    fig = Figure(figsize=(len(panels) * max(3.0, 0.12 * layers + 2.2), max(2.4, 0.26 * len(rows) + 1.4)))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, values, cmap) in zip(axes[0], panels):
        shown = values[np.isfinite(values)]
        peak = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
        image = ax.imshow(values, cmap=cmap, vmin=0, vmax=peak, aspect="auto", interpolation="nearest")
        image.set_gid(f"heatmap:{name}")
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_xlabel("layer", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(name, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.08).set_label(value, fontsize=7)
    fig.suptitle(short(title, 90), fontsize=10)
    fig.tight_layout()
    return fig


def intervention_diff_figure(labels: Sequence[str], changes: Sequence[float | None], changed: Sequence[bool], title: str):
    """One bar per intervened token: its probability change (blue up, orange down); the changed
    tokens' bars outlined in black and their labels bold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.38 * len(labels) + 1.6), 3.2))
    ax = fig.subplots()
    values = [_nan(v) for v in changes]
    ax.bar(range(len(values)), values, color=["#2d70e6" if not v < 0 else "#f07814" for v in values],
           edgecolor=["black" if c else "none" for c in changed], linewidth=[1.5 if c else 0.0 for c in changed])
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(labels)), [short(label, 16) for label in labels], rotation=60, ha="right", fontsize=7)
    for tick, c in zip(ax.get_xticklabels(), changed):
        tick.set_fontweight("bold" if c else "normal")
    ax.set_ylabel("p(intervened) \u2212 p(clean)", fontsize=8)
    ax.set_title(short(title, 56), fontsize=9)
    fig.tight_layout()
    return fig
