"""SVCCA with a fixed number of singular directions, as Google's SVCCA tutorials compute it,
against a covariance-based CCA written out here (Σxx^-1/2 Σxy Σyy^-1/2, like ``cca_core``)."""
from __future__ import annotations

import numpy as np
import pytest

import ecco
from ecco import analysis
from tests import tiny

RNG = np.random.default_rng(7)


def _inv_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    return v @ np.diag(1 / np.sqrt(w)) @ v.T


def reference_coefs(acts1: np.ndarray, acts2: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """Canonical correlations from the covariance matrices (neurons, datapoints inputs)."""
    c1, c2 = acts1 - acts1.mean(1, keepdims=True), acts2 - acts2.mean(1, keepdims=True)
    n = acts1.shape[1]
    sxx = c1 @ c1.T / (n - 1) + epsilon * np.eye(len(c1))
    syy = c2 @ c2.T / (n - 1) + epsilon * np.eye(len(c2))
    sxy = c1 @ c2.T / (n - 1)
    return np.linalg.svd(_inv_sqrt(sxx) @ sxy @ _inv_sqrt(syy), compute_uv=False)


def _top(acts: np.ndarray, dims: int) -> np.ndarray:
    """The tutorials' reduction: centre, SVD, keep s[:dims] * V[:dims]."""
    _, s, v = np.linalg.svd(acts - acts.mean(axis=1, keepdims=True), full_matrices=False)
    return (s[:dims] * np.eye(dims)) @ v[:dims]


def _keeping(acts: np.ndarray, share: float) -> int:
    """How many singular directions keep ``share`` of the variance."""
    s = np.linalg.svd(acts - acts.mean(axis=1, keepdims=True), compute_uv=False)
    return int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), share) + 1)


def reference_svcca(acts1: np.ndarray, acts2: np.ndarray, dims: int) -> np.ndarray:
    """The tutorials' recipe: the top ``dims`` directions of each, then CCA; all coefficients."""
    return reference_coefs(_top(acts1, dims), _top(acts2, dims))


def _pair(neurons=(60, 45), positions=500, shared=8):
    signal = RNG.standard_normal((shared, positions))
    x = RNG.standard_normal((neurons[0], shared)) @ signal + 0.5 * RNG.standard_normal((neurons[0], positions))
    y = RNG.standard_normal((neurons[1], shared)) @ signal + 0.5 * RNG.standard_normal((neurons[1], positions))
    return x, y


@pytest.mark.parametrize("dims", [1, 5, 20, 45])
def test_fixed_dims_equal_the_tutorial_recipe(dims):
    x, y = _pair()
    coefs = reference_svcca(x, y, dims)
    assert analysis.svcca(x, y, dims=dims) == pytest.approx(coefs.mean(), rel=1e-8)
    assert analysis.svcca(x, y, dims=np.int64(dims)) == analysis.svcca(x, y, dims=dims)


def test_the_mean_of_all_coefficients_not_the_thresholded_mean():
    """``cca_core``'s ``result['mean']`` averages the leading coefficients that make 98% of their
    sum; ecco returns the mean of all of them (what the tutorials print)."""
    x, y = _pair()
    coefs = np.sort(reference_svcca(x, y, 20))[::-1]
    leading = int(np.argmax(np.cumsum(coefs) / coefs.sum() > 0.98)) + 1
    ours = analysis.svcca(x, y, dims=20)
    assert ours == pytest.approx(coefs.mean(), rel=1e-8)
    assert coefs[:leading].mean() > ours + 1e-3
    assert analysis.cca(x, y) == pytest.approx(reference_coefs(x, y).mean(), rel=1e-8)


def test_dims_and_keep_choose_different_directions():
    x, y = _pair()
    coefs = reference_coefs(_top(x, _keeping(x, 0.5)), _top(y, _keeping(y, 0.5)))  # half of each variance
    assert analysis.svcca(x, y, keep=0.5) == pytest.approx(coefs.mean(), rel=1e-8)
    assert analysis.svcca(x, y, keep=0.5) != pytest.approx(analysis.svcca(x, y, dims=20))


@pytest.mark.parametrize("dims, message", [(0, "dims=0 is out of range"), (46, "at most 45 singular directions"),
                                           (True, "dims must be an integer"), (2.0, "dims must be an integer")])
def test_bad_dims(dims, message):
    x, y = _pair()
    with pytest.raises(ValueError, match=message):
        analysis.svcca(x, y, dims=dims)


def test_layer_similarity_with_fixed_dims(tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, verbose=False)
    output = lm.generate(["the quick brown fox jumps over the lazy dog", "a cat sat on the mat"], generate=6,
                         min_new_tokens=6)
    matrix = output.layer_similarity("svcca", dims=4, printJson=True)
    acts = output.activations["decoder"]  # (batch, layers, neurons, positions)
    per_layer = [np.concatenate([acts[s, layer, :, : n] for s, n in enumerate(output.lengths)], axis=1)
                 for layer in range(acts.shape[1])]
    for i in range(len(per_layer)):
        for j in range(len(per_layer)):
            if i != j:
                expected = reference_svcca(per_layer[i].astype(np.float64), per_layer[j].astype(np.float64), 4).mean()
                assert matrix[i, j] == pytest.approx(expected, rel=1e-5)
