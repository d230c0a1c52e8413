"""Streaming summaries of a corpus run, computed in the capture pass and mergeable.

Per captured neuron: the top-k activating tokens with their (document, position), count, mean
and M2 (Chan et al.'s parallel update, float64), the number of positive values and a histogram
by sign and power of two. Per logit-lens layer: sums of entropy and KL. Two summaries of disjoint parts of
a corpus merge into the summary of the whole: counts and histograms add, moments combine, and
the top-k keeps the k largest values with a fixed tie-break (larger value first, then smaller
document id, then smaller position), so the result does not depend on how the corpus was cut.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

# Histogram: 64 bins by sign and binary exponent of the value in float16, bin = 32 * sign +
# exponent field: bin e (e = 1..30) holds positive values in [2**(e - 15), 2**(e - 14)), bin 32 + e
# the negative values of those magnitudes; bins 0 and 32 hold zeros and magnitudes below 2**-14,
# bins 31 and 63 magnitudes from 65520 up (float16 infinity). Read from the bits: two integer
# operations per value. :func:`histogram_bins` gives each bin's bounds.
N_BINS = 64


def histogram_bins() -> np.ndarray:
    """(64, 2) bounds of each histogram bin: (low, high) for bins 0..31 (values >= 0), (-high, -low)
    for bins 32..63 (negative values); a value is in the bin whose magnitude range [low, high) holds it."""
    low = np.concatenate([[0.0], 2.0 ** (np.arange(1, 31) - 15), [65520.0]])
    high = np.concatenate([[2.0**-14], 2.0 ** (np.arange(1, 31) - 14), [np.inf]])
    high[-2] = 65520.0
    return np.concatenate([np.stack([low, high], 1), np.stack([-high, -low], 1)])


_EMPTY_KEY = np.iinfo(np.int64).max


def _keys(doc_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """One int64 per token that orders tokens by (document, position)."""
    return doc_ids.long() * 2**32 + positions.long()


def _best(values: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best (value, key) per row of (rows, candidates): larger value, then smaller key."""
    by_key = torch.argsort(keys, dim=1, stable=True)
    values, keys = values.gather(1, by_key), keys.gather(1, by_key)
    order = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, order), keys.gather(1, order)


@dataclass
class NeuronSummary:
    """Summary of ``n_neurons`` neurons over the tokens seen so far."""

    k: int
    count: int
    mean_: np.ndarray  # (neurons,) float64
    m2: np.ndarray  # (neurons,) float64, sum of squared deviations
    n_positive: np.ndarray  # (neurons,) int64
    hist: np.ndarray  # (neurons, 64) int64
    top_v: np.ndarray  # (neurons, k) float32, -inf where empty
    top_key: np.ndarray  # (neurons, k) int64, max int64 where empty

    @classmethod
    def empty(cls, n_neurons: int, k: int = 32) -> NeuronSummary:
        """A summary that has seen nothing."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}.")
        return cls(k, 0, np.zeros(n_neurons), np.zeros(n_neurons), np.zeros(n_neurons, np.int64),
                   np.zeros((n_neurons, N_BINS), np.int64), np.full((n_neurons, k), -np.inf, np.float32),
                   np.full((n_neurons, k), _EMPTY_KEY, np.int64))

    @property
    def n_neurons(self) -> int:
        """Number of neurons."""
        return len(self.mean_)

    def update(self, values: torch.Tensor, doc_ids: torch.Tensor, positions: torch.Tensor) -> None:
        """Add (tokens, neurons) ``values`` of the tokens at (``doc_ids``, ``positions``)."""
        if values.ndim != 2 or values.shape[1] != self.n_neurons or len(doc_ids) != len(values) != len(positions):
            raise ValueError(f"values must be (tokens, {self.n_neurons}) with one doc id and position per token.")
        n = values.shape[0]
        if not n:
            return
        half = values.to(torch.float16)
        x = values.float()
        total = x.sum(0)
        batch_mean = total / n
        batch_m2 = (x * x).sum(0) - total * batch_mean  # float32 within a batch, float64 across batches
        self._combine_moments(n, batch_mean.double().numpy(), batch_m2.double().clamp(min=0).numpy())
        bits = half.view(torch.int16)
        self.n_positive += (bits > 0).sum(0, dtype=torch.int64).numpy()  # positive floats: sign 0, not zero
        bins = ((bits >> 10) & 63).int() + torch.arange(0, self.n_neurons * N_BINS, N_BINS, dtype=torch.int32)
        self.hist += torch.bincount(bins.reshape(-1), minlength=self.hist.size).reshape(self.hist.shape).numpy()
        self._merge_top(*self._batch_top(x, _keys(doc_ids, positions)))

    def _batch_top(self, x: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's best ``k`` (value, key) per neuron, ties at the k-th value broken by key."""
        k = min(self.k, x.shape[0])
        top = torch.topk(x, k, dim=0)  # (k, neurons)
        values, index = top.values.T.contiguous(), top.indices.T
        chosen = keys[index]
        tied = (x >= values[:, -1][None, :]).sum(0) > k  # tokens beyond the k share the k-th value
        values, chosen = _best(values, chosen, k)
        if tied.any():  # pick the tied tokens with the smallest keys, from all of the batch
            columns = tied.nonzero().squeeze(1)
            redo_v, redo_k = _best(x[:, columns].T, keys.expand(len(columns), -1), k)
            values[columns], chosen[columns] = redo_v, redo_k
        return values, chosen

    def _merge_top(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        v = torch.cat([torch.from_numpy(self.top_v), values], dim=1)
        key = torch.cat([torch.from_numpy(self.top_key), keys], dim=1)
        v, key = _best(v, key, self.k)
        self.top_v, self.top_key = v.numpy().copy(), key.numpy().copy()

    def _combine_moments(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + n
        delta = mean - self.mean_
        self.mean_ = self.mean_ + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def merge(self, other: NeuronSummary) -> NeuronSummary:
        """The summary of both parts (neither is changed)."""
        if (self.k, self.n_neurons) != (other.k, other.n_neurons):
            raise ValueError(
                f"Cannot merge summaries with different k or neurons ({self.k}, {self.n_neurons} and "
                f"{other.k}, {other.n_neurons}); summarise both parts with the same settings."
            )
        out = NeuronSummary(self.k, self.count, self.mean_.copy(), self.m2.copy(), self.n_positive + other.n_positive,
                            self.hist + other.hist, self.top_v, self.top_key)
        if other.count:
            out._combine_moments(other.count, other.mean_, other.m2)
        out._merge_top(torch.from_numpy(other.top_v), torch.from_numpy(other.top_key))
        return out

    @property
    def mean(self) -> np.ndarray:
        """Mean activation per neuron."""
        return self.mean_

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0) per neuron."""
        return np.sqrt(self.m2 / max(self.count, 1))

    @property
    def fraction_positive(self) -> np.ndarray:
        """Fraction of tokens where the neuron is above zero."""
        return self.n_positive / max(self.count, 1)

    @property
    def histogram(self) -> np.ndarray:
        """(neurons, 64) counts by sign and power of two (see :func:`histogram_bins`)."""
        return self.hist

    @property
    def top_values(self) -> np.ndarray:
        """(neurons, k) largest activations, best first; NaN where fewer than k tokens were seen."""
        return np.where(self.top_key == _EMPTY_KEY, np.nan, self.top_v).astype(np.float32)

    @property
    def top_doc_ids(self) -> np.ndarray:
        """(neurons, k) document of each top activation (-1 where empty)."""
        return np.where(self.top_key == _EMPTY_KEY, -1, self.top_key >> 32)

    @property
    def top_positions(self) -> np.ndarray:
        """(neurons, k) position in its document of each top activation (-1 where empty)."""
        return np.where(self.top_key == _EMPTY_KEY, -1, self.top_key & (2**32 - 1))


@dataclass
class LensSummary:
    """Per layer, sums of the logit lens's entropy and KL(final || layer) over the tokens seen."""

    entropy_sum: np.ndarray
    kl_sum: np.ndarray
    count: int = 0

    @classmethod
    def empty(cls, n_layers: int) -> LensSummary:
        """A lens summary that has seen nothing."""
        return cls(np.zeros(n_layers), np.zeros(n_layers))

    def update(self, entropy: torch.Tensor, kl: torch.Tensor) -> None:
        """Add (layers, tokens) entropies and KL divergences."""
        self.entropy_sum = self.entropy_sum + entropy.double().sum(1).numpy()
        self.kl_sum = self.kl_sum + kl.double().sum(1).numpy()
        self.count += entropy.shape[1]

    def merge(self, other: LensSummary) -> LensSummary:
        """The summary of both parts."""
        return LensSummary(self.entropy_sum + other.entropy_sum, self.kl_sum + other.kl_sum, self.count + other.count)

    @property
    def mean_entropy(self) -> np.ndarray:
        """Mean entropy (nats) of each layer's next-token distribution."""
        return self.entropy_sum / max(self.count, 1)

    @property
    def mean_kl(self) -> np.ndarray:
        """Mean KL(final || layer) in nats."""
        return self.kl_sum / max(self.count, 1)


_NEURON_FIELDS = ("mean_", "m2", "n_positive", "hist", "top_v", "top_key")


@dataclass
class Summaries:
    """All of a run's summaries: neurons by column name (``ffn.decoder.12``) and the lens."""

    neurons: dict[str, NeuronSummary]
    lens: LensSummary | None = None

    def merge(self, other: Summaries) -> Summaries:
        """The summaries of both parts."""
        if set(self.neurons) != set(other.neurons) or (self.lens is None) != (other.lens is None):
            raise ValueError("Cannot merge summaries of different captures.")
        lens = self.lens.merge(other.lens) if self.lens is not None else None
        return Summaries({name: s.merge(other.neurons[name]) for name, s in self.neurons.items()}, lens)

    @staticmethod
    def merge_all(parts: Sequence[Summaries]) -> Summaries:
        """Merge ``parts`` in order."""
        if not parts:
            raise ValueError("Nothing to merge.")
        out = parts[0]
        for part in parts[1:]:
            out = out.merge(part)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file, atomically (temporary file, then rename)."""
        path = Path(path)
        arrays, meta = {}, {"neurons": {}, "lens": None}
        for name, s in self.neurons.items():
            meta["neurons"][name] = {"k": s.k, "count": s.count}
            arrays.update({f"{name}/{f}": np.ascontiguousarray(getattr(s, f)) for f in _NEURON_FIELDS})
        if self.lens is not None:
            meta["lens"] = {"count": self.lens.count}
            arrays.update({"lens/entropy_sum": self.lens.entropy_sum, "lens/kl_sum": self.lens.kl_sum})
        tmp = path.with_name(path.name + ".tmp")
        try:
            save_file(arrays, str(tmp), metadata={"ecco": json.dumps(meta)})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Summaries:
        """Read summaries written by :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads(f.metadata()["ecco"])
        arrays = load_file(str(path))
        neurons = {
            name: NeuronSummary(m["k"], m["count"], *(arrays[f"{name}/{f}"] for f in _NEURON_FIELDS))
            for name, m in meta["neurons"].items()
        }
        lens = None
        if meta["lens"] is not None:
            lens = LensSummary(arrays["lens/entropy_sum"], arrays["lens/kl_sum"], meta["lens"]["count"])
        return cls(neurons, lens)
