"""The TopK sparse autoencoder: FVU and dead features against hand computations, recovery of a
known sparse dictionary, tied weights, unit-norm decoder rows, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.corpus.factors import fit_factors
from ecco.corpus.sae import TopKSAE, train_sae
from tests import tiny
from tests.test_corpus_run import TEXTS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.run_corpus(TEXTS, tmp_path_factory.mktemp("sae"), layers=[1, 2], max_tokens=48, overlap=8,
                         batch_tokens=160, shard_tokens=60, top_k=8, progress=False)


def _raw(run, layers) -> np.ndarray:
    return np.concatenate([run.activations(n).astype(np.float32) for n in layers], axis=1)


@pytest.fixture(scope="module")
def sae(run):
    return fit_factors(run, "sae", 48, layers=[1, 2], batch_size=100, passes=3, k=4, lr=3e-3, minibatch=64)


def test_fvu_and_dead_fraction_equal_hand_computations(run, sae):
    x = _raw(run, [1, 2]).astype(np.float64)
    with torch.no_grad():
        reconstruction, codes = sae.model(torch.from_numpy(x.astype(np.float32)))
    fvu = np.square(x - reconstruction.double().numpy()).sum() / np.square(x - x.mean(0)).sum()
    assert sae.stats["fvu"] == pytest.approx(fvu, rel=1e-5)
    dead = (~(codes > 0).any(0)).double().mean().item()
    assert sae.stats["dead_fraction"] == dead
    assert (codes > 0).sum(1).max() <= 4  # top-k: at most k active features per token
    assert sae.stats["passes"] == len(sae.stats["seconds_per_pass"]) == 3 and sae.stats["k"] == 4
    np.testing.assert_allclose(sae.transform(x[:9]), codes[:9].numpy(), rtol=1e-6)
    np.testing.assert_allclose(sae.loadings, sae.model.W_dec.detach().numpy())
    np.testing.assert_allclose(np.linalg.norm(sae.loadings, axis=1), 1.0, rtol=1e-5)  # unit-norm decoder rows


def test_recovers_a_known_sparse_dictionary():
    rng = np.random.default_rng(0)
    n_atoms, width, k, n = 32, 16, 3, 4096
    dictionary = rng.normal(size=(n_atoms, width))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    codes = np.zeros((n, n_atoms))
    for row in codes:
        row[rng.choice(n_atoms, k, replace=False)] = rng.uniform(0.5, 2.0, k)
    x = (codes @ dictionary + 0.3).astype(np.float32)

    def blocks(epoch: int):
        yield from (x[start : start + 1024] for start in range(0, n, 1024))

    sae, seconds = train_sae(blocks, width, n_atoms, k=k, lr=1e-2, epochs=20, minibatch=64, seed=0)
    assert len(seconds) == 20
    with torch.no_grad():
        reconstruction = sae(torch.from_numpy(x))[0].numpy()
    fvu = np.square(x - reconstruction).sum() / np.square(x - x.mean(0)).sum()
    centred = x - x.mean(0)
    best_linear = (np.linalg.svd(centred, compute_uv=False) ** 2)[k:].sum() / np.square(centred).sum()  # rank k
    assert fvu < 0.15 < best_linear
    cosines = np.abs(sae.decoder_weight.detach().numpy() @ dictionary.T).max(0)  # best match of each true atom
    assert np.median(cosines) > 0.9 and (cosines > 0.7).mean() >= 0.9


def test_tied_weights_are_one_parameter(run):
    sae = TopKSAE(8, 12, 3, tied=True)
    assert sae.decoder_weight is sae.W_enc and sae.W_dec is None
    assert sum(p.numel() for p in sae.parameters()) == 12 * 8 + 12 + 8
    x = torch.randn(5, 8)
    with torch.no_grad():
        sae.W_enc[0] += 1.0  # changes the decoder too
        z = sae.encode(x)
        np.testing.assert_allclose(sae.decode(z).numpy(), (z @ sae.W_enc + sae.b_dec).numpy())
    tied = fit_factors(run, "sae", 16, layers=[2], batch_size=100, passes=2, k=2, tied=True)
    assert tied.model.decoder_weight is tied.model.W_enc and tied.stats["tied"] is True
    np.testing.assert_array_equal(tied.loadings, tied.model.W_enc.detach().numpy())


def test_same_seed_same_weights(run):
    def fit(seed: int):
        return fit_factors(run, "sae", 16, layers=[1], batch_size=100, passes=2, k=3, seed=seed).model.state_dict()

    first, again, other = fit(0), fit(0), fit(1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["W_enc"], other["W_enc"])


def test_sae_bad_input():
    with pytest.raises(ValueError, match="k must be between 1 and n_features=4"):
        TopKSAE(8, 4, 5)
    with pytest.raises(ValueError, match="lr must be positive"):
        train_sae(lambda epoch: iter([np.zeros((4, 8), np.float32)]), 8, 4, k=2, lr=0)
