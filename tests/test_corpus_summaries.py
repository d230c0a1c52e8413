"""Corpus summaries against brute force over the whole data (NumPy), and mergeability: any split
into batches or parts, merged in any order, gives the summary of the whole."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecco.corpus.summaries import DEFAULT_EDGES, LensSummary, NeuronSummary, Summaries

EDGES = np.asarray(DEFAULT_EDGES, np.float32)


def _corpus(rng: np.random.Generator, tokens: int, neurons: int, dtype=np.float16):
    """(tokens, neurons) values with what makes summaries hard, and a shuffled (doc_id, position) per token.

    Columns: smooth values with outliers past the edges; ReLU-like (half exact zeros); values on
    a coarse grid (many exact ties, on the histogram edges too); a constant; all zeros; float16
    neighbours of large values.
    """
    x = rng.standard_normal((tokens, neurons)) * rng.uniform(0.01, 3, neurons)
    x[rng.random((tokens, neurons)) < 0.01] *= 400  # outliers, some beyond +-128
    x[:, 1::5] = np.maximum(x[:, 1::5], 0)
    x[:, 2::5] = np.round(x[:, 2::5] * 2) / 2  # ..., -0.5, 0, 0.5, 1, ...: ties, values on the edges
    x[:, 3] = 0.25
    x[:, 4] = 0.0
    x[:, 9::10] = 1000 + rng.integers(0, 4, (tokens, len(range(9, neurons, 10))))
    docs = np.repeat(np.arange(tokens // 7 + 1), 7)[:tokens] * 3 + 5
    positions = np.tile(np.arange(7), tokens // 7 + 1)[:tokens] * 2
    order = rng.permutation(tokens)  # rows are not in (doc, position) order, as in length-sorted batches
    return x.astype(dtype)[order], docs[order].astype(np.int64), positions[order].astype(np.int64)


def _brute(x: np.ndarray, docs: np.ndarray, positions: np.ndarray, k: int, edges: np.ndarray = EDGES) -> dict:
    """Every summary computed over all the data at once, by the definitions."""
    v32 = x.astype(np.float32)
    v = x.astype(np.float64)
    top_values = np.full((x.shape[1], k), np.nan, np.float32)
    top_docs = np.full((x.shape[1], k), -1)
    top_positions = np.full((x.shape[1], k), -1)
    hist = np.zeros((x.shape[1], len(edges) + 1), np.int64)
    for j in range(x.shape[1]):
        order = np.lexsort((positions, docs, -v32[:, j]))[:k]  # larger value, smaller doc, smaller position
        top_values[j, : len(order)] = v32[order, j]
        top_docs[j, : len(order)], top_positions[j, : len(order)] = docs[order], positions[order]
        hist[j] = np.bincount(np.searchsorted(edges, v32[:, j], side="right"), minlength=len(edges) + 1)
    return {
        "mean": v.mean(0), "std": v.std(0), "fraction_positive": (v > 0).mean(0), "histogram": hist,
        "top_values": top_values, "top_doc_ids": top_docs, "top_positions": top_positions,
    }


def _summarise(x, docs, positions, cuts=(), k: int = 32, edges=DEFAULT_EDGES) -> NeuronSummary:
    summary = NeuronSummary.empty(x.shape[1], k=k, edges=edges)
    for rows in np.split(np.arange(len(x)), list(cuts)):
        summary.update(torch.from_numpy(x[rows]), torch.from_numpy(docs[rows]), torch.from_numpy(positions[rows]))
    return summary


def _close(actual: np.ndarray, expected: np.ndarray, scale: np.ndarray, eps: float = 1e-13) -> None:
    """Equal to float64 rounding: within ``eps`` times the magnitude of the values summarised."""
    np.testing.assert_array_less(np.abs(actual - expected), eps * np.maximum(scale, 1e-300))


def _assert_equal(summary: NeuronSummary, expected: dict, scale: np.ndarray) -> None:
    for name in ("histogram", "top_values", "top_doc_ids", "top_positions", "fraction_positive"):
        np.testing.assert_array_equal(getattr(summary, name), expected[name], err_msg=name)
    _close(summary.mean, expected["mean"], scale)
    _close(summary.std, expected["std"], scale)


def _scale(x: np.ndarray) -> np.ndarray:
    return np.abs(x.astype(np.float64)).max(0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5, 32])
def test_one_update_equals_brute_force(dtype, k):
    x, docs, positions = _corpus(np.random.default_rng(0), 400, 40, dtype)
    summary = _summarise(x, docs, positions, k=k)
    _assert_equal(summary, _brute(x, docs, positions, k), _scale(x))
    assert summary.count == 400 and (summary.histogram.sum(1) == 400).all()
    assert summary.top_values.dtype == np.float32 and summary.histogram.shape == (40, len(DEFAULT_EDGES) + 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_uneven_batches_and_merged_parts_equal_the_whole(dtype):
    rng = np.random.default_rng(1)
    x, docs, positions = _corpus(rng, 3000, 60, dtype)
    expected = _brute(x, docs, positions, 32)
    whole = _summarise(x, docs, positions)
    _assert_equal(whole, expected, _scale(x))
    cuts = np.sort(rng.choice(np.arange(1, 3000), 12, replace=False))
    batched = _summarise(x, docs, positions, cuts=[0, 1, 1, *cuts])  # an empty batch, a batch of one token
    _assert_equal(batched, expected, _scale(x))
    halves = [_summarise(x[a:b], docs[a:b], positions[a:b], cuts=[97]) for a, b in ((0, 1234), (1234, 3000))]
    for merged in (halves[0].merge(halves[1]), halves[1].merge(halves[0])):
        for name in ("histogram", "top_values", "top_doc_ids", "top_positions", "fraction_positive"):
            np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name), err_msg=name)
        _close(merged.mean, whole.mean, _scale(x))
        _close(merged.std, whole.std, _scale(x))
    assert halves[0].count == 1234  # merge changed neither part


def test_ties_are_broken_by_doc_then_position_whatever_the_batches():
    rng = np.random.default_rng(2)
    tokens = 2000
    x = rng.choice(np.array([0, 0, 0, 0.5, 1, 1.0009765625], np.float16), size=(tokens, 24))  # float16 neighbours
    x[:, 0] = 0  # a dead ReLU neuron: every token ties
    x[:, 1] = np.where(rng.random(tokens) < 0.005, 2, 0)  # fewer than k non-zero values
    docs = rng.integers(0, 50, tokens).astype(np.int64)
    positions = rng.permutation(tokens).astype(np.int64)  # unique, so (doc, position) is unique
    expected = _brute(x, docs, positions, 32)
    for cuts in ([], [5, 500, 1999], list(range(100, tokens, 100))):
        summary = _summarise(x, docs, positions, cuts=cuts)
        _assert_equal(summary, expected, _scale(x))
    dead = _summarise(x, docs, positions, cuts=[700]).top_doc_ids[0]
    assert (np.diff(dead) >= 0).all() and (dead == np.sort(docs)[:32]).all()


def test_fewer_tokens_than_k_pads_with_nan_and_minus_one():
    x, docs, positions = _corpus(np.random.default_rng(3), 5, 12)
    summary = _summarise(x, docs, positions, cuts=[2], k=8)
    _assert_equal(summary, _brute(x, docs, positions, 8), _scale(x))
    assert np.isnan(summary.top_values[:, 5:]).all() and (summary.top_doc_ids[:, 5:] == -1).all()
    assert (summary.top_positions[:, 5:] == -1).all() and (summary.top_doc_ids[:, :5] >= 0).all()
    empty = NeuronSummary.empty(3, k=2)
    assert np.isnan(empty.mean).all() and np.isnan(empty.std).all() and np.isnan(empty.fraction_positive).all()
    assert np.isnan(empty.top_values).all() and (empty.histogram == 0).all()
    merged = empty.merge(NeuronSummary.empty(3, k=2))
    assert merged.count == 0 and (merged.top_doc_ids == -1).all()


def test_float32_values_on_custom_edges_zeros_and_denormals():
    # edges that are not float32 numbers with 16 significant bits: the look-up's cells are cut
    edges = [-0.3, -1e-3, 0.0, 1e-40, 0.1, 0.7, 3.0]
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((500, 16)) * 0.5).astype(np.float32)
    x[::3] = np.float32(0.1)  # exactly on an edge (as float32)
    x[1::7] = -0.0
    x[2::7, :4] = np.float32(1e-41)  # positive denormals: > 0, below the edge 1e-40
    x[3::7, :4] = np.float32(2e-40)
    docs, positions = np.arange(500, dtype=np.int64), np.zeros(500, np.int64)
    summary = _summarise(x, docs, positions, cuts=[123], k=4, edges=edges)
    _assert_equal(summary, _brute(x, docs, positions, 4, np.asarray(edges, np.float32)), _scale(x))
    assert summary.histogram.shape == (16, 8) and summary.bins.shape == (8, 2)
    assert summary.bins[0, 0] == -np.inf and summary.bins[2].tolist() == [float(np.float32(-1e-3)), 0.0]
    nan = _summarise(np.full((3, 2), np.nan, np.float16), docs[:3], positions[:3], k=2)
    assert (nan.histogram[:, -1] == 3).all() and (nan.fraction_positive == 0).all()  # NaN: the overflow bin


def test_default_edges_and_invalid_edges():
    assert EDGES[0] < -100 and EDGES[-1] > 100 and 0.0 in EDGES and (np.diff(EDGES) > 0).all()
    np.testing.assert_array_equal(EDGES, -EDGES[::-1])  # symmetric
    positive = EDGES[EDGES > 0]
    assert positive[0] <= 1e-3 and np.allclose(positive[1:] / positive[:-1], 2)  # one bin per power of two
    for bad in ([], [1.0, 1.0], [2.0, 1.0], [0.0, np.inf], [np.nan]):
        with pytest.raises(ValueError, match="edges"):
            NeuronSummary.empty(4, edges=bad)
    with pytest.raises(ValueError, match="positive"):
        NeuronSummary.empty(4, k=0)


def test_update_checks_its_inputs():
    summary = NeuronSummary.empty(4)
    ids = torch.arange(3)
    with pytest.raises(ValueError, match=r"\(tokens, 4\)"):
        summary.update(torch.zeros(3, 5), ids, ids)
    with pytest.raises(ValueError, match="one doc id and position per token"):
        summary.update(torch.zeros(3, 4), ids[:2], ids)
    with pytest.raises(TypeError, match="floating point"):
        summary.update(torch.zeros(3, 4, dtype=torch.int64), ids, ids)
    with pytest.raises(ValueError, match="doc_ids"):
        summary.update(torch.zeros(3, 4), -ids - 1, ids)
    with pytest.raises(ValueError, match="positions"):
        summary.update(torch.zeros(3, 4), ids, ids + 2**32)
    summary.update(torch.zeros(0, 4), ids[:0], ids[:0])
    assert summary.count == 0


def test_incompatible_merges_raise():
    base = NeuronSummary.empty(4, k=3)
    for other in (NeuronSummary.empty(4, k=4), NeuronSummary.empty(5, k=3), NeuronSummary.empty(4, k=3, edges=[0.0])):
        with pytest.raises(ValueError, match="different settings"):
            base.merge(other)
    a = Summaries({"ffn.decoder.0": base}, LensSummary.empty(2))
    for other in (Summaries({"ffn.decoder.1": base}, LensSummary.empty(2)), Summaries({"ffn.decoder.0": base})):
        with pytest.raises(ValueError, match="different captures"):
            a.merge(other)
    with pytest.raises(ValueError, match="2 and 3 layers"):
        LensSummary.empty(2).merge(LensSummary.empty(3))
    with pytest.raises(ValueError, match="Nothing to merge"):
        Summaries.merge_all([])


def _entropy_kl(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(layers, tokens) entropy of each layer's softmax and KL(final || layer), in nats."""
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    p = np.exp(logp)
    return -(p * logp).sum(-1), (p[-1] * (logp[-1] - logp)).sum(-1)


def test_lens_summary_is_the_mean_over_tokens():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 300, 50)) * rng.uniform(0.5, 4, (4, 1, 1))
    entropy, kl = _entropy_kl(logits)
    lens = LensSummary.empty(4)
    for rows in np.split(np.arange(300), [10, 11, 200]):
        lens.update(torch.from_numpy(entropy[:, rows]).float(), torch.from_numpy(kl[:, rows]).float())
    np.testing.assert_allclose(lens.mean_entropy, entropy.mean(1), rtol=1e-6)
    np.testing.assert_allclose(lens.mean_kl, kl.mean(1), rtol=1e-6, atol=1e-9)
    assert lens.count == 300 and lens.mean_kl[-1] == 0
    a, b = LensSummary.empty(4), LensSummary.empty(4)
    a.update(entropy[:, :100], kl[:, :100])
    b.update(entropy[:, 100:], kl[:, 100:])
    np.testing.assert_allclose(a.merge(b).mean_entropy, entropy.mean(1), rtol=1e-13)
    assert np.isnan(LensSummary.empty(2).mean_kl).all()
    with pytest.raises(ValueError, match="4 layers"):
        lens.update(torch.zeros(3, 5), torch.zeros(3, 5))


def _bundle(rng, tokens: int, first_doc: int) -> Summaries:
    neurons = {}
    for layer in (0, 3):
        x, docs, positions = _corpus(rng, tokens, 20)
        neurons[f"ffn.decoder.{layer}"] = _summarise(x, docs + first_doc, positions, k=4)
    lens = LensSummary.empty(3)
    lens.update(torch.from_numpy(rng.random((3, tokens))), torch.from_numpy(rng.random((3, tokens))))
    return Summaries(neurons, lens)


def test_save_load_round_trip_and_merge_all(tmp_path):
    rng = np.random.default_rng(6)
    parts = [_bundle(rng, n, first) for n, first in ((50, 0), (70, 1000), (3, 2000))]
    path = tmp_path / "shard.summary.safetensors"
    parts[0].save(path)
    parts[0].save(path)  # replaces the file
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    loaded = Summaries.load(path)
    assert list(loaded.neurons) == list(parts[0].neurons)
    for name, summary in parts[0].neurons.items():
        other = loaded.neurons[name]
        assert (other.k, other.count) == (summary.k, summary.count)
        for field in ("edges", "avg", "m2", "n_positive", "counts", "top_v", "top_key"):
            np.testing.assert_array_equal(getattr(other, field), getattr(summary, field), err_msg=field)
    np.testing.assert_array_equal(loaded.lens.kl_sum, parts[0].lens.kl_sum)
    assert loaded.lens.count == 50
    merged = Summaries.merge_all(parts)
    again = Summaries.load(path).merge(parts[1]).merge(parts[2])  # loaded summaries merge (and update) too
    for name in merged.neurons:
        np.testing.assert_array_equal(again.neurons[name].top_values, merged.neurons[name].top_values)
        np.testing.assert_array_equal(again.neurons[name].histogram, merged.neurons[name].histogram)
    assert merged.lens.count == 123 and merged.neurons["ffn.decoder.0"].count == 123
    loaded.neurons["ffn.decoder.0"].update(torch.zeros(2, 20), torch.tensor([9, 9]), torch.tensor([0, 1]))
    Summaries({"ffn.decoder.0": parts[0].neurons["ffn.decoder.0"]}).save(tmp_path / "no_lens.safetensors")
    assert Summaries.load(tmp_path / "no_lens.safetensors").lens is None


def test_load_refuses_other_files(tmp_path):
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an ecco summaries file"):
        Summaries.load(tmp_path / "other.safetensors")


def test_same_result_with_one_or_two_threads():
    x, docs, positions = _corpus(np.random.default_rng(7), 600, 30)
    threads = torch.get_num_threads()
    results = []
    for n in (1, 2):
        torch.set_num_threads(n)
        try:
            results.append(_summarise(x, docs, positions, cuts=[300]))
        finally:
            torch.set_num_threads(threads)
    for name in ("histogram", "top_values", "top_doc_ids", "top_positions", "mean", "std", "fraction_positive"):
        np.testing.assert_array_equal(getattr(results[0], name), getattr(results[1], name), err_msg=name)
