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
    assert factors.shape == (n_factors, len(output.sequences[0]))
    np.testing.assert_array_equal(factors, nmf.components)  # one column per token, in order
    assert [t["text"] for t in data["tokens"]] == output.tokens[0]


def test_smollm2_nmf_split_and_similarity(smollm2):
    output = smollm2.generate("The keys to the cabinet", generate=8)
    acts = output.activations["decoder"]
    assert (acts < 0).mean() > 0.2  # SiLU-gated activations: much of the signal is negative
    _check_explore(output, output.run_nmf(n_components=5), 5)
    split = output.run_nmf(n_components=5, nonneg="split", from_layer=10, to_layer=20)
    assert split.selection.layers == list(range(10, 20)) and split.loadings.shape == (5, 2 * 10 * 1536)
    matrix = output.layer_similarity("cka", printJson=True)
    assert matrix.shape == (30, 30)
    # Linear CKA by hand (Kornblith et al. 2019) for a few layer pairs: neurons x tokens, centred over tokens.
    n = len(output.sequences[0])
    centred = {i: acts[0, i, :, :n].astype(float) - acts[0, i, :, :n].astype(float).mean(1, keepdims=True)
               for i in (0, 14, 29)}
    for i, j in [(0, 14), (14, 29), (0, 29)]:
        x, y = centred[i], centred[j]
        expected = np.linalg.norm(y @ x.T) ** 2 / (np.linalg.norm(x @ x.T) * np.linalg.norm(y @ y.T))
        assert matrix[i, j] == pytest.approx(expected, rel=1e-4)


def test_minilm_nmf_on_the_dostoevsky_passage(minilm):
    output = minilm(DOSTOEVSKY)
    assert output.activations["encoder"].shape[:3] == (1, 6, 1536)
    _check_explore(output, output.run_nmf(n_components=8), 8)
    top = output.top_neurons(position=3, k=5, printJson=True)
    assert len(top) == 5 and top[0]["value"] >= top[-1]["value"]
