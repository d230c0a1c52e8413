"""NMF and layer similarity on real captures: SmolLM2 (gated SiLU FFN) and MiniLM (BERT)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

DOSTOEVSKY = (
    "Now I ask you: what can be expected of man since he is a being endowed with strange qualities? "
    "Shower upon him every earthly blessing, drown him in a sea of happiness, so that nothing but bubbles "
    "of bliss can be seen on the surface."
)


def _check_explore(output, nmf, n_factors):
    data = nmf.explore(printJson=True)
    factors = np.array(data["factors"])
    assert factors.shape == (n_factors, len(output.sequences[0])) and (factors >= 0).all()
    assert [t["text"] for t in data["tokens"]] == output.tokens[0]


def test_smollm2_nmf_split_and_similarity(smollm2):
    output = smollm2.generate("The keys to the cabinet", generate=8)
    acts = output.activations["decoder"]
    assert (acts < 0).mean() > 0.2  # SiLU-gated activations: much of the signal is negative
    _check_explore(output, output.run_nmf(n_components=5), 5)
    split = output.run_nmf(n_components=5, nonneg="split", from_layer=10, to_layer=20)
    assert split.selection.layers == list(range(10, 20)) and split.loadings.shape == (5, 2 * 10 * 1536)
    matrix = output.layer_similarity("cka", printJson=True)
    assert matrix.shape == (30, 30) and np.allclose(np.diag(matrix), 1) and np.allclose(matrix, matrix.T)
    assert ((matrix > 0) & (matrix <= 1)).all()


def test_minilm_nmf_on_the_dostoevsky_passage(minilm):
    output = minilm(DOSTOEVSKY)
    assert output.activations["encoder"].shape[:3] == (1, 6, 1536)
    _check_explore(output, output.run_nmf(n_components=8), 8)
    top = output.top_neurons(position=3, k=5, printJson=True)
    assert len(top) == 5 and top[0]["value"] >= top[-1]["value"]
