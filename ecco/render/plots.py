"""Static matplotlib figures, for papers and slides.

Figures are made without pyplot, so a notebook's inline backend does not show them by itself:
``fig = output.rankings(plot=True); fig`` shows the figure once, as the cell's value (and
``fig.savefig(...)`` works as usual)."""
from __future__ import annotations

from collections.abc import Sequence

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
