"""Corpus-fitted factors: a streamed fit equals scikit-learn's own fit of the full matrix, the
transform and ``values`` against brute force, the factor summary against a scan of every token,
``run_nmf(factors=...)`` on prompts, and the errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls
from sklearn.decomposition import PCA, IncrementalPCA, MiniBatchNMF
from sklearn.decomposition._nmf import _initialize_nmf

import ecco
from ecco.corpus.factors import fit_factors
from ecco.decomposition import nonnegative
from tests import tiny
from tests.test_corpus_run import TEXTS


@pytest.fixture(scope="module")
def lm():
    return ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, verbose=False)


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    return lm.run_corpus(TEXTS, tmp_path_factory.mktemp("factors"), layers=[0, 1, 2], max_tokens=48, overlap=8,
                         batch_tokens=160, shard_tokens=60, top_k=8, progress=False)


def _raw(run, layers) -> np.ndarray:
    """Every stored token's activations of ``layers`` side by side, float32 (brute force)."""
    return np.concatenate([run.activations(n).astype(np.float32) for n in layers], axis=1)


@pytest.mark.parametrize("nonneg", ["clip", "split"])
def test_streamed_nmf_equals_in_memory_fit(run, nonneg):
    layers = [1, 2]
    x = np.ascontiguousarray(nonnegative(_raw(run, layers).T, nonneg).T)
    factors = fit_factors(run, "nmf", 4, layers=layers, nonneg=nonneg, batch_size=64, passes=2, tol=0.0)
    assert factors.loadings.shape == (4, x.shape[1]) and factors.stats["tokens"] == len(x) > 8 * 64
    # MiniBatchNMF.fit reads the rows in order, in blocks of batch_size, without shuffling: the
    # same blocks as the stream (across shard boundaries). It differs from partial_fit in three
    # ways, matched here: (1) it initialises H from the whole matrix, partial_fit from the first
    # block -> give fit that initial H (init='custom'); (2) fit updates W from its initial value,
    # partial_fit solves W afresh for every block -> fresh_restarts=True; (3) fit may stop early
    # -> tol=0 and max_no_improvement=None. fit's per-batch forget factor (forget_factor **
    # (batch / tokens)) is what fit_factors gives partial_fit.
    _, h0 = _initialize_nmf(x[:64], 4, init=None, random_state=0)
    reference = MiniBatchNMF(4, init="custom", batch_size=64, max_iter=2, tol=0.0, max_no_improvement=None,
                             fresh_restarts=True, forget_factor=0.7, random_state=0)
    reference.fit(x, W=np.ones((len(x), 4), np.float32), H=h0)
    assert reference.n_steps_ == factors.model.n_steps_ == 2 * int(np.ceil(len(x) / 64))
    np.testing.assert_allclose(factors.loadings, reference.components_, rtol=1e-4, atol=1e-6)


def test_streamed_pca_equals_incremental_pca(run):
    x = _raw(run, [0, 1, 2])
    factors = fit_factors(run, "pca", 5, batch_size=50)
    reference = IncrementalPCA(5, batch_size=50).fit(x)  # same blocks (the last short one joined to the one before)
    np.testing.assert_allclose(factors.loadings, reference.components_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(factors.model.explained_variance_, reference.explained_variance_, rtol=1e-4)
    # IncrementalPCA approximates PCA (each block keeps only 5 directions): nearly the same subspace.
    pca = PCA(5).fit(x)
    assert factors.model.explained_variance_.sum() >= 0.93 * pca.explained_variance_.sum()
    overlap = np.linalg.svd(factors.loadings @ pca.components_.T, compute_uv=False)  # cosines of principal angles
    assert overlap[:3].min() > 0.98  # the leading directions agree
    new = x[:40] + np.random.default_rng(0).normal(0, 0.1, (40, x.shape[1])).astype(np.float32)
    np.testing.assert_allclose(factors.transform(new), reference.transform(new), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def nmf(run):
    return fit_factors(run, "nmf", 6, batch_size=64, passes=2, top_k=8)


def test_nmf_transform_is_each_tokens_nnls(run, nmf):
    x = _raw(run, [0, 1, 2])
    codes = nmf.transform(x)
    assert codes.shape == (len(x), 6) and codes.dtype == np.float32 and (codes >= 0).all()
    # Each token's own non-negative least squares (MiniBatchNMF.transform would depend on the
    # other rows of the block: it starts from their mean and stops when the block converges).
    features, h = nmf.features(x), nmf.loadings.astype(np.float64)
    for row in (0, 17, 200, len(x) - 1):
        expected, _ = nnls(h.T, features[row].astype(np.float64))
        np.testing.assert_allclose(codes[row], expected, rtol=1e-3, atol=1e-4 * max(1.0, expected.max()))
    np.testing.assert_allclose(nmf.transform(x[[200, 3, 17]]), codes[[200, 3, 17]], rtol=1e-5, atol=1e-7)
    sklearn_codes = nmf.model.transform(features)  # the estimator's own, iterative transform: close
    assert np.linalg.norm(features - codes @ h) <= np.linalg.norm(features - sklearn_codes @ h) * (1 + 1e-4)


@pytest.mark.parametrize("method", ["nmf", "pca", "sae"])
def test_values_and_summary_equal_brute_force(run, nmf, method):
    factors = nmf if method == "nmf" else fit_factors(run, method, 6, layers=[2, 0], batch_size=64, top_k=8)
    x = _raw(run, factors.layers)
    codes = factors.transform(x)
    rows = np.array([5, 300, 0, 77, run.table.num_rows - 1])
    np.testing.assert_allclose(factors.values(run, rows), codes[rows], rtol=1e-5, atol=1e-6)
    summary = factors.summary
    docs = run.table.column("doc_id").to_numpy()
    positions = run.table.column("position").to_numpy()
    for i in range(6):
        order = np.lexsort((positions, docs, -codes[:, i]))[:8]  # the summary's rule: value, doc, position
        np.testing.assert_allclose(summary.top_values[i], codes[order, i], rtol=1e-5, atol=1e-6)
        assert summary.top_doc_ids[i].tolist() == docs[order].tolist()
        assert summary.top_positions[i].tolist() == positions[order].tolist()
    np.testing.assert_allclose(summary.mean, codes.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(summary.fraction_positive, (codes > 0).mean(0))
    assert (summary.histogram.sum(1) == len(x)).all() and summary.histogram[:, 0].sum() == (codes < summary.edges[0]).sum()
    assert summary.histogram[:, -1].sum() == 0  # the edges reach above every value
    error = np.linalg.norm(factors.features(x) - factors.reconstruct(codes)) / np.linalg.norm(factors.features(x))
    assert factors.stats["reconstruction_error"] == pytest.approx(error, rel=1e-4)


def test_run_nmf_applies_the_corpus_factors(lm, run, nmf):
    outputs = [lm("def add(a, b): return a + b"), lm("the quick brown fox jumps over the lazy dog")]
    explorers = [out.run_nmf(factors=nmf) for out in outputs]
    for out, found in zip(outputs, explorers):
        acts = out.activations["decoder"][0]  # (layers, neurons, tokens)
        raw = acts[:, :, : out.lengths[0]].reshape(-1, out.lengths[0]).T.astype(np.float32)
        np.testing.assert_allclose(found.components, nmf.transform(raw).T, rtol=1e-6)
        np.testing.assert_array_equal(found.loadings, nmf.loadings)
        assert found.components.shape == (6, out.lengths[0]) and found.n_components == 6
        assert found.explore(printJson=True)["factors"] and found.explore().view == "nmf" and "<" in found.explore().html
        assert found.plot() is not None
    assert outputs[1].run_decomposition(factors=nmf).components.tolist() == explorers[1].components.tolist()
    first = outputs[0].run_nmf(factors=nmf, exclude="first")
    assert first.components.shape[1] == outputs[0].lengths[0] - 1


def test_run_nmf_with_factors_bad_input(lm, run, nmf):
    output = lm("hello world")
    sae = fit_factors(run, "sae", 4, layers=[1], batch_size=64, passes=1)
    other = ecco.from_model(tiny.model("gpt2", seed=1, n_inner=64), tiny.tokenizer(), activations=True, verbose=False)
    fewer = ecco.from_model(lm.model, tiny.tokenizer(), activations=True, activations_layer_nums=[0, 1], verbose=False)
    cases = [
        (lambda: output.run_nmf(factors=sae), "method='nmf' contradicts"),
        (lambda: output.run_decomposition(factors=sae, method="pca"), "contradicts"),
        (lambda: output.run_nmf(factors=nmf, n_components=3), "n_components=3 contradicts"),
        (lambda: output.run_nmf(factors=nmf, nonneg="split"), "nonneg='split' contradicts"),
        (lambda: output.run_nmf(factors=nmf, from_layer=1), "leave out layers"),
        (lambda: output.run_nmf(factors=nmf, to_layer=2), "leave out layers"),
        (lambda: output.run_nmf(factors=nmf, max_iter=5), "nothing is fitted"),
        (lambda: output.run_nmf(factors=nmf, stack="encoder"), "stack='encoder'"),
        (lambda: fewer("hello world").run_nmf(factors=nmf), r"did not capture \[2\]"),
        (lambda: other("hello world").run_nmf(factors=nmf), "128 neurons per layer"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert output.run_decomposition(factors=sae).display_factors()[1] == ["0", "1", "2", "3"]  # codes are >= 0
    output.model_name = "another-model"
    with pytest.raises(ValueError, match="another-model"):
        output.run_nmf(factors=nmf)


def test_fit_factors_bad_input(run, tmp_path):
    cases = [
        (dict(method="lda"), "Unknown method 'lda'"),
        (dict(nonneg="abs"), "nonneg must be 'clip' or 'split'"),
        (dict(layers=[5]), r"layers \[5\] were not captured"),
        (dict(layers=[1, 1]), "give each layer once"),
        (dict(n_components=0), "n_components must be an integer from 1 to 384"),
        (dict(n_components=385), "from 1 to 384"),
        (dict(method="pca", n_components=384), "from 1 to 383"),
        (dict(method="pca", batch_size=4), "batch_size=4 is smaller than n_components=5"),
        (dict(method="pca", passes=2), "passes=2"),
        (dict(method="sae", bogus=1), "Unknown SAE options"),
        (dict(method="sae", epochs=2, passes=3), "disagree"),
        (dict(batch_size=0), "batch_size"),
    ]
    for change, message in cases:
        arguments = dict(method="nmf", n_components=5) | change
        with pytest.raises(ValueError, match=message):
            fit_factors(run, **arguments)
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    no_acts = lm.run_corpus(TEXTS[:2], tmp_path / "plain", activations=False, hidden_states=True, progress=False)
    with pytest.raises(ValueError, match="stored no FFN activations"):
        fit_factors(no_acts, "nmf", 2)
    tokens = run.table.num_rows
    small = lm.run_corpus(TEXTS[4:5], tmp_path / "small", progress=False)
    n = small.table.num_rows
    assert n < tokens
    with pytest.raises(ValueError, match=f"from 1 to {n} for nmf on {n} tokens"):
        fit_factors(small, "nmf", n + 1)
    with pytest.raises(ValueError, match="rows must be row numbers"):
        fit_factors(small, "nmf", 2).values(small, [n])


def test_nmf_transform_equals_scikit_learns_coordinate_descent():
    from sklearn.decomposition import non_negative_factorization

    from ecco.corpus.factors import _nnls_cd

    rng = np.random.default_rng(3)
    h = np.abs(rng.standard_normal((6, 300))).astype(np.float32)
    x = np.abs(rng.standard_normal((400, 300))).astype(np.float32)
    x[:5] = 0  # all-zero rows
    expected, _, _ = non_negative_factorization(x, H=h, n_components=6, init=None, update_H=False, solver="cd",
                                                tol=0.0, max_iter=50)
    np.testing.assert_allclose(_nnls_cd(x, h, 50), expected, rtol=1e-4, atol=1e-6)
