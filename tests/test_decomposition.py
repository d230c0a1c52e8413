"""NMF and friends over captured activations; neuron views' data; layer similarity."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import ecco
from ecco.access import select_activations
from ecco.decomposition import elbow
from tests import tiny


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2", n_layer=12), tiny.tokenizer(), activations=True, verbose=False,
                         activations_layer_nums=[10, 2, 1, 11])
    return lm.generate(["the quick brown fox", "hello"], generate=4, min_new_tokens=4)


def test_reshape_contract_in_numeric_layer_order(output):
    selection = select_activations(output, from_layer=1, to_layer=11)
    assert selection.layers == [1, 2, 10]
    acts = output.activations["decoder"]
    lengths = output.lengths
    assert selection.matrix.shape == (3 * acts.shape[2], sum(lengths))
    # Row block b is layer selection.layers[b]; column j is (sequence, position).
    expected = np.concatenate([acts[s, 0:3, :, :n].reshape(-1, n) for s, n in enumerate(lengths)], axis=1)
    np.testing.assert_array_equal(selection.matrix, expected)
    assert selection.positions[lengths[0]] == (1, 0)


def test_nmf_recovers_known_factors():
    rng = np.random.default_rng(0)
    true_factors = rng.gamma(0.5, 1.0, size=(4, 120))  # (factors, tokens)
    loadings = rng.gamma(0.5, 1.0, size=(300, 4))
    data = loadings @ true_factors
    from ecco.decomposition import _fit

    _, found, error = _fit("nmf", data, 4, seed=0)
    corr = np.corrcoef(np.vstack([true_factors, found]))[:4, 4:]
    rows, cols = linear_sum_assignment(-corr)
    assert corr[rows, cols].min() > 0.95 and error < 0.05


def _tokens_as_columns(output) -> np.ndarray:
    """(captured layers x neurons, tokens of every sequence), written out by hand."""
    acts = output.activations["decoder"]
    return np.concatenate([acts[s, :, :, :n].reshape(-1, n) for s, n in enumerate(output.lengths)], axis=1).astype(float)


def _relative_svd_error(data: np.ndarray, rank: int) -> float:
    """Eckart-Young: the smallest relative error of any rank-``rank`` approximation."""
    singular = np.linalg.svd(data, compute_uv=False)
    return float(np.sqrt((singular[rank:] ** 2).sum()) / np.linalg.norm(data))


def test_run_nmf_matches_ecco_shapes(output):
    nmf = output.run_nmf(n_components=3)
    n_tokens = sum(output.lengths)
    assert nmf.components.shape == (3, n_tokens)
    assert nmf.loadings.shape == (3, 4 * 128)  # 4 captured layers x 128 neurons
    # The factors reconstruct Ecco's clipped activations: no rank-3 matrix does better than the
    # SVD bound, and the NMF gets close to it (better than any rank-2 approximation).
    clipped = np.maximum(_tokens_as_columns(output), 0)
    error = np.linalg.norm(clipped - nmf.loadings.T @ nmf.components) / np.linalg.norm(clipped)
    assert _relative_svd_error(clipped, 3) - 1e-6 <= error < _relative_svd_error(clipped, 2)
    data = nmf.explore(printJson=True)
    assert len(data["tokens"]) == n_tokens and np.array(data["factors"]).shape == (3, n_tokens)
    assert [t["text"] for t in data["tokens"]] == output.tokens[0] + output.tokens[1]


def test_split_keeps_negative_activations(output):
    clip = output.run_nmf(n_components=2, nonneg="clip")
    split = output.run_nmf(n_components=2, nonneg="split")
    assert split.loadings.shape[1] == 2 * clip.loadings.shape[1]
    assert (output.activations["decoder"] < 0).any()


@pytest.mark.parametrize("method", ["pca", "ica", "svd"])
def test_other_decompositions(output, method):
    result = output.run_decomposition(method, n_components=3)
    assert result.components.shape == (3, sum(output.lengths))
    values, labels = result.display_factors()
    assert values.shape[0] == 6 and labels[:2] == ["0+", "0-"]
    # "k+" and "k-" are the two signs of component k.
    np.testing.assert_array_equal(values[0::2] - values[1::2], result.components)
    assert not (values[0::2] * values[1::2]).any()
    if method != "ica":  # PCA / SVD scores: projections on the top right singular vectors, by numpy
        data = _tokens_as_columns(output).T
        data = data - data.mean(axis=0) if method == "pca" else data
        directions = np.linalg.svd(data, full_matrices=False)[2][:3]
        expected = (data @ directions.T).T
        scale = np.abs(expected).max()
        np.testing.assert_allclose(np.abs(result.components), np.abs(expected), atol=1e-3 * scale)  # up to sign


def test_auto_components_picks_the_elbow():
    assert elbow([1.0, 0.5, 0.1, 0.08, 0.07, 0.06]) == 2
    rng = np.random.default_rng(1)
    data = rng.gamma(0.5, 1.0, size=(200, 3)) @ rng.gamma(0.5, 1.0, size=(3, 60))
    from ecco.decomposition import _fit

    errors = [_fit("nmf", data, k, 0)[2] for k in range(1, 8)]
    assert elbow(errors) + 1 == 3


def test_neuron_views_data(output):
    top = output.top_neurons(position=2, k=5, printJson=True)
    acts = output.activations["decoder"][0, :, :, 2]
    assert [t["value"] for t in top] == sorted(acts.ravel().tolist(), reverse=True)[:5]
    layers = output.activation_layers["decoder"]
    first = top[0]
    assert acts[layers.index(first["layer"]), first["neuron"]] == first["value"]
    values = output.neuron_view(layer=10, neuron=7, printJson=True)
    np.testing.assert_array_equal(values, output.activations["decoder"][0, 2, 7, : output.lengths[0]])


def test_layer_similarity(output):
    matrix = output.layer_similarity("cka", printJson=True)
    # Linear CKA (Kornblith et al. 2019) by hand: neurons x tokens per layer, centred over tokens.
    acts = output.activations["decoder"]
    layers = [np.concatenate([acts[s, i, :, :n] for s, n in enumerate(output.lengths)], axis=1).astype(float)
              for i in range(4)]
    centred = [x - x.mean(axis=1, keepdims=True) for x in layers]

    def cka(x, y):
        return np.linalg.norm(y @ x.T) ** 2 / (np.linalg.norm(x @ x.T) * np.linalg.norm(y @ y.T))

    expected = np.array([[cka(x, y) for y in centred] for x in centred])
    np.testing.assert_allclose(matrix, expected, rtol=1e-5)
    assert expected.min() < 0.95  # the layers differ, so the check is not of a constant matrix
    view = output.layer_similarity("svcca")
    assert view.data["labels"] == ["1", "2", "10", "11"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda o: o.run_nmf(from_layer=5, to_layer=5), "smaller than to_layer"),
        (lambda o: o.run_nmf(from_layer=0, to_layer=13), "out of range"),
        (lambda o: o.run_nmf(from_layer=3, to_layer=9), "No captured layer"),
        (lambda o: o.run_nmf(n_components=0), "n_components"),
        (lambda o: o.run_nmf(n_components=10**4), "n_components"),
        (lambda o: o.run_nmf(nonneg="abs"), "nonneg"),
        (lambda o: o.run_decomposition("lda"), "valid: nmf"),
        (lambda o: o.neuron_view(layer=3, neuron=0), "not captured"),
        (lambda o: o.neuron_view(layer=10, neuron=10**6), "neuron"),
        (lambda o: o.top_neurons(position=99), "out of range"),
        (lambda o: o.layer_similarity("mutual_info"), "Unknown similarity"),
    ],
)
def test_bad_decomposition_input(output, call, message):
    with pytest.raises(ValueError, match=message):
        call(output)


def test_no_activations_captured(tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, verbose=False)
    with pytest.raises(ValueError, match="activations=True"):
        lm.generate("the quick", generate=2).run_nmf()
