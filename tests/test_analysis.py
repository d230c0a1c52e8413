"""cca / svcca / pwcca / cka against their defining properties and direct paper formulas."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from ecco import analysis

RNG = np.random.default_rng(0)


def _data(neurons=20, positions=200):
    return RNG.standard_normal((neurons, positions))


def _orthogonal(n):
    q, _ = np.linalg.qr(RNG.standard_normal((n, n)))
    return q


def test_cka_identity_and_invariances():
    x = _data()
    assert analysis.cka(x, x) == pytest.approx(1.0)
    y = _orthogonal(20) @ x * 3.7
    assert analysis.cka(x, y) == pytest.approx(1.0, abs=1e-9)
    assert analysis.cka(x, x * 0.01) == pytest.approx(1.0)
    assert analysis.cka(x, _data()) < 0.3
    assert analysis.cka(x, x, kernel="rbf") == pytest.approx(1.0)
    assert analysis.cka(x, _orthogonal(20) @ x, kernel="rbf") == pytest.approx(1.0, abs=1e-9)


def test_cka_matches_hsic_formula():
    x, y = _data(15, 60), _data(25, 60)
    n = x.shape[1]
    h = np.eye(n) - 1 / n
    kx, ky = x.T @ x, y.T @ y

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    expected = hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))
    assert analysis.cka(x, y) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("fn", [analysis.cca, analysis.svcca, analysis.pwcca])
def test_cca_family_invariant_to_invertible_maps(fn):
    x = _data()
    transform = RNG.standard_normal((20, 20)) + 5 * np.eye(20)
    assert fn(x, transform @ x) == pytest.approx(1.0, abs=1e-6)
    assert fn(x, _data()) < 0.5


def test_cca_matches_covariance_formula():
    x, y = _data(8, 300), _data(6, 300)
    y[:3] += 0.8 * x[:3]
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    sxx, syy, sxy = xc @ xc.T, yc @ yc.T, xc @ yc.T
    m = np.linalg.inv(sqrtm(sxx)) @ sxy @ np.linalg.inv(sqrtm(syy))
    rho = np.linalg.svd(np.real(m), compute_uv=False)
    assert analysis.cca(x, y) == pytest.approx(rho.mean(), rel=1e-6)


def test_svcca_keeps_the_top_directions():
    signal = _data(4, 300)
    x = np.vstack([signal, 1e-4 * _data(16, 300)])  # 4 strong directions, 16 tiny ones
    y = np.vstack([RNG.standard_normal((4, 4)) @ signal, 1e-4 * _data(16, 300)])
    assert analysis.svcca(x, y, keep=0.99) == pytest.approx(1.0, abs=1e-3)
    assert analysis.cca(x, y) < 0.6  # the unrelated noise directions drag plain CCA down


def test_pwcca_matches_morcos_weights():
    x, y = _data(6, 200), _data(5, 200)
    y[:2] += x[:2]
    xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    sxx, syy, sxy = xc @ xc.T, yc @ yc.T, xc @ yc.T
    wx = np.linalg.inv(np.real(sqrtm(sxx)))
    u, rho, _ = np.linalg.svd(wx @ sxy @ np.linalg.inv(np.real(sqrtm(syy))))
    k = min(x.shape[0], y.shape[0])
    variates = (u[:, :k].T @ wx @ xc)  # canonical variates of x, (k, positions), unit norm
    alpha = np.abs(variates @ xc.T).sum(axis=1)
    expected = (alpha / alpha.sum() * rho[:k]).sum()
    assert analysis.pwcca(x, y) == pytest.approx(expected, rel=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError, match="same positions"):
        analysis.cka(_data(4, 10), _data(4, 11))
    with pytest.raises(ValueError, match="2-d"):
        analysis.cca(np.zeros(5), np.zeros(5))
