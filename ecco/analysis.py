"""Similarity of two sets of neuron activations, each (neurons, positions).

Positions are the data points: both arrays must cover the same tokens. Every function returns
one float in [0, 1]:

- ``cca``: the mean of *all* canonical correlations between the two neuron spaces (Hotelling
  1936), computed from orthonormal bases of the centred data (rank-revealing SVD, so collinear
  or redundant neurons are handled);
- ``svcca``: the same mean after reducing each space to its top singular directions (Raghu et
  al. 2017): a fixed number ``dims`` of them, as Google's SVCCA tutorials and most papers do
  (``dims=20``), or by default as many as keep ``keep`` of its variance;
- ``pwcca``: the projection-weighted mean of the canonical correlations, weights proportional
  to how much of ``x``'s neurons each canonical variate accounts for (Morcos et al. 2018);
- ``cka``: centred kernel alignment (Kornblith et al. 2019), linear kernel by default or an
  RBF kernel whose width is ``sigma`` times the median pairwise distance.

Comparing with Google's reference code (``cca_core.get_cca_similarity``): the CCA-family
numbers here are ``np.mean(result["cca_coef1"])``, the summary its tutorials print, *not*
``result["mean"]``, which averages only the leading correlations that add up to ``threshold``
(0.98) of their sum and so reads higher.

With more neurons than positions CCA is degenerate (any two spaces can be aligned
perfectly); use ``svcca`` or ``cka`` there, or more tokens. Neurons that never change (dead
units) carry no information and are left out by the rank-revealing bases; an input whose
neurons are all constant has no similarity to measure and is a ValueError, as is a single
position.
"""
from __future__ import annotations

import numbers

import numpy as np

from .checks import as_int


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected 2-d (neurons, positions) arrays, got shapes {x.shape} and {y.shape}.")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must cover the same positions: x has {x.shape[1]}, y has {y.shape[1]} (arrays are "
            "(neurons, positions))."
        )
    if x.shape[1] < 2:
        raise ValueError(
            f"Similarity needs at least two positions (tokens) to compare, got {x.shape[1]}: use a longer "
            "text or several sequences."
        )
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    for name, centred in (("x", xc), ("y", yc)):
        if not np.any(np.abs(centred) > 1e-12 * max(1.0, float(np.abs(x if name == "x" else y).max()))):
            raise ValueError(
                f"{name} has no variance across positions (every neuron is constant, e.g. dead units): there is "
                "nothing to compare. Leave that layer out (activations_layer_nums) or use a more varied text."
            )
    return xc, yc


def _basis(centred: np.ndarray, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal basis (positions, rank) of the neurons' span, with singular values and vectors."""
    u, s, vt = np.linalg.svd(centred.T, full_matrices=False)  # centred.T = u s vt, u: (positions, r)
    rank = int((s > tol * max(s[0], 1e-300)).sum()) if s.size else 0
    return u[:, :rank], s[:rank], vt[:rank]


def _canonical(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations and the canonical variates of x (positions, k), from centred data."""
    ux, _, _ = _basis(x)
    uy, _, _ = _basis(y)
    a, rho, _ = np.linalg.svd(ux.T @ uy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), ux @ a


def cca(x: np.ndarray, y: np.ndarray) -> float:
    """The mean of all canonical correlations between x and y (neurons, positions)."""
    rho, _ = _canonical(*_check(x, y))
    return float(rho.mean())


def _reduce(centred: np.ndarray, keep: float, dims: int | None) -> np.ndarray:
    """The data in its top singular directions, (k, positions): ``dims`` of them (fewer where the
    rest have no variance), else as many as keep ``keep`` of the variance."""
    u, s, _ = _basis(centred)
    if dims is None:
        energy = np.cumsum(s**2) / np.sum(s**2)
        dims = int(np.searchsorted(energy, keep - 1e-12) + 1)
    return s[:dims, None] * u[:, :dims].T


def svcca(x: np.ndarray, y: np.ndarray, keep: float = 0.99, dims: int | None = None) -> float:
    """SVCCA: the mean of all canonical correlations between the top singular directions of x and
    y (neurons, positions).

    ``dims`` keeps a fixed number of directions of each input (Google's tutorials: ``dims=20``);
    without it, as many as keep ``keep`` of each input's variance. The result equals
    ``np.mean(cca_core.get_cca_similarity(svx, svy)["cca_coef1"])`` on the reduced data.
    """
    xc, yc = _check(x, y)
    if dims is not None:
        most = min(xc.shape[0], yc.shape[0], xc.shape[1])
        wrong = (f"dims={dims} is out of range: these inputs have at most {most} singular directions "
                 f"(neurons {xc.shape[0]} and {yc.shape[0]}, positions {xc.shape[1]}).")
        dims = as_int(dims, "dims", 1, most, wrong)
    elif isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep!r}.")
    rho, _ = _canonical(_reduce(xc, keep, dims), _reduce(yc, keep, dims))
    return float(rho.mean())


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA: the mean of the canonical correlations weighted by how much of x each canonical
    variate explains (Morcos et al.'s ``compute_pwcca`` summary)."""
    xc, yc = _check(x, y)
    rho, variates = _canonical(xc, yc)
    weights = np.abs(xc @ variates).sum(axis=0)  # sum over x's neurons of |<neuron, variate>|
    weights = weights / weights.sum()
    return float(np.clip((weights * rho).sum(), 0.0, 1.0))


def _rbf(x: np.ndarray, sigma: float) -> np.ndarray:
    sq = np.sum(x**2, axis=0)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x.T @ x, 0)
    median = np.median(d2[np.triu_indices_from(d2, k=1)])
    return np.exp(-d2 / (2 * (sigma**2) * max(median, 1e-12)))


def _center(k: np.ndarray) -> np.ndarray:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ k @ h


def cka(x: np.ndarray, y: np.ndarray, kernel: str = "linear", sigma: float = 1.0) -> float:
    """Centred kernel alignment between x and y (neurons, positions): HSIC(K, L) / sqrt(HSIC(K, K)
    HSIC(L, L)) of their kernel matrices over positions."""
    xc, yc = _check(x, y)
    if kernel == "linear":
        cross = np.linalg.norm(yc @ xc.T) ** 2
        norm = np.linalg.norm(xc @ xc.T) * np.linalg.norm(yc @ yc.T)
        return float(np.clip(cross / max(norm, 1e-300), 0.0, 1.0))
    if kernel == "rbf":
        kx, ky = _center(_rbf(xc, sigma)), _center(_rbf(yc, sigma))
        return float(np.clip((kx * ky).sum() / max(np.linalg.norm(kx) * np.linalg.norm(ky), 1e-300), 0.0, 1.0))
    raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}.")


SIMILARITY = {"cca": cca, "svcca": svcca, "pwcca": pwcca, "cka": cka}


def similarity_matrix(per_layer: np.ndarray, method: str = "cka", **kwargs) -> np.ndarray:
    """Similarity of every pair of layers: ``per_layer`` is (layers, neurons, positions); the
    result is a symmetric (layers, layers) matrix with ones on the diagonal."""
    if method not in SIMILARITY:
        raise ValueError(f"Unknown similarity {method!r}; valid: {', '.join(SIMILARITY)}.")
    n = len(per_layer)
    matrix = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i, j] = matrix[j, i] = SIMILARITY[method](per_layer[i], per_layer[j], **kwargs)
    return matrix
