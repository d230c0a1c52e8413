"""Figures are made without pyplot: a notebook shows ``fig = nmf.plot(); fig`` once, not twice."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

import ecco
from tests import tiny


def test_figures_are_not_registered_with_pyplot(tmp_path):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, verbose=False)
    output = lm.generate("the quick brown fox", generate=3, min_new_tokens=3)
    plt.close("all")
    figures = [
        output.run_nmf(n_components=2).plot(),
        output.rankings(plot=True),
        output.rankings_watch(watch=[5, 6], plot=True),
        output.trajectories(plot=True),
    ]
    # The inline backend shows every pyplot figure at the end of a cell; these are shown only
    # when they are the cell's value.
    assert plt.get_fignums() == []
    for k, fig in enumerate(figures):
        assert isinstance(fig, Figure) and fig.axes
        fig.savefig(tmp_path / f"{k}.png")
        assert (tmp_path / f"{k}.png").stat().st_size > 1000
