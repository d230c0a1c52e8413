"""Streaming summaries of a corpus run, computed in the capture pass and mergeable.

Per captured neuron (:class:`NeuronSummary`): the top-k activating tokens with their
(document, position), the mean and population standard deviation, the fraction of tokens where
the neuron is positive and a histogram on fixed edges. Per logit-lens layer (:class:`LensSummary`):
the mean entropy and mean KL(final || layer). :class:`Summaries` bundles a run's summaries and
saves them to one safetensors file.

Every summary is mergeable: two parts of a corpus summarised apart and merged equal the whole
summarised at once, whatever the batches and however the corpus was cut. Counts, histograms and
top-k are exact (the top-k breaks ties by a fixed rule: larger value first, then smaller document
id, then smaller position); means and standard deviations agree to float64 rounding (float64
sums per batch, combined with Chan et al.'s parallel formula).

Values are summarised as given: float16 activations are read exactly (top-k values are stored
as float32, so they equal the stored activations); other dtypes are compared and ranked as
float32, and their moments are taken in float64.
"""
from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

#: Default histogram edges: 0 and ±2**e for e = -10..7 (±0.00098 .. ±128), one bin per binary order of
#: magnitude on each side of zero, plus an underflow (< -128) and an overflow (>= 128) bin: 38 bins.
DEFAULT_EDGES: tuple[float, ...] = tuple([-(2.0**e) for e in range(7, -11, -1)] + [0.0] + [2.0**e for e in range(-10, 8)])

_EMPTY_KEY = np.iinfo(np.int64).max  # the key of an empty top-k slot: after every real token
_FORMAT = 1


def _keys(doc_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """One int64 per token, ordered like (doc_id, position): ``doc_id * 2**32 + position``."""
    if len(doc_ids) and (int(doc_ids.min()) < 0 or int(doc_ids.max()) >= 2**31):
        raise ValueError("doc_ids must be in [0, 2**31).")
    if len(positions) and (int(positions.min()) < 0 or int(positions.max()) >= 2**32):
        raise ValueError("positions must be in [0, 2**32).")
    return doc_ids.long() * 2**32 + positions.long()


def _check_edges(edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Edges as float32, strictly increasing and finite (a clear error otherwise)."""
    out = np.asarray(edges, dtype=np.float32).reshape(-1)
    if not len(out) or not np.isfinite(out).all() or (np.diff(out) <= 0).any():
        raise ValueError(f"Histogram edges must be finite and strictly increasing in float32, got {list(edges)}.")
    return out


@functools.lru_cache(maxsize=8)
def _tables(edges_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Look-up tables from 16 bits to ``2 * bin + (value > 0)``.

    For float16, indexed by the value's bits (exact). For float32, indexed by the upper 16 bits
    (sign, exponent, 7 mantissa bits); a cell whose values do not all share one bin and sign
    (an edge inside it, or +0 with the positive denormals) holds -1 and is resolved exactly.
    """
    edges = np.frombuffer(edges_bytes, np.float32)

    def code(v: np.ndarray) -> np.ndarray:
        return 2 * np.searchsorted(edges, v, side="right") + (v > 0)

    cells = np.arange(65536, dtype=np.uint32)
    half = cells.astype(np.uint16).view(np.float16).astype(np.float32)
    low, high = (cells << 16).view(np.float32), ((cells << 16) | 0xFFFF).view(np.float32)
    with np.errstate(invalid="ignore"):
        lut16, lo, hi = code(half), code(low), code(high)
    return lut16.astype(np.int32), np.where(lo == hi, lo, -1).astype(np.int32)


def _best(values: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best (value, key) of each row: larger value first, then smaller key."""
    by_key = torch.argsort(keys, dim=1, stable=True)
    values, keys = values.gather(1, by_key), keys.gather(1, by_key)
    order = torch.argsort(values, dim=1, descending=True, stable=True)[:, :k]
    return values.gather(1, order), keys.gather(1, order)


def _batch_top(xt: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``min(k, tokens)`` (value, key) of each row of (neurons, tokens) ``xt``, unsorted.

    ``torch.topk`` finds the values; only rows where the k-th value has a tie just past the
    k-th place pick their tied tokens by key (smallest first) from the whole batch.
    """
    kk = min(k, xt.shape[1])
    if kk == xt.shape[1]:
        return xt, keys.expand_as(xt)
    values, index = xt.topk(kk + 1, dim=1)  # sorted, largest first
    tied = (values[:, kk] == values[:, kk - 1]).nonzero().squeeze(1)
    values, chosen = values[:, :kk].contiguous(), keys[index[:, :kk]]
    if len(tied):
        top = values[tied]
        threshold = top[:, -1:]
        above = (top > threshold).sum(1, keepdim=True)  # all of these are in the top kk
        candidates = torch.where(xt[tied] == threshold, keys, _EMPTY_KEY)
        smallest = candidates.topk(kk, dim=1, largest=False).values  # sorted, smallest first
        slot = torch.arange(kk)
        from_ties = slot >= above
        picked = smallest.gather(1, (slot - above).clamp(min=0))
        values[tied] = torch.where(from_ties, threshold, top)
        chosen[tied] = torch.where(from_ties, picked, chosen[tied])
    return values, chosen


@dataclass
class NeuronSummary:
    """Summary of ``n_neurons`` neurons over the tokens seen so far (see the module docstring).

    Build with :meth:`empty`, feed with :meth:`update`, combine with :meth:`merge`; read
    :attr:`mean`, :attr:`std`, :attr:`fraction_positive`, :attr:`histogram` and the top-k
    (:attr:`top_values`, :attr:`top_doc_ids`, :attr:`top_positions`).
    """

    k: int
    edges: np.ndarray  # (edges,) float32, strictly increasing
    count: int  # tokens seen
    avg: np.ndarray  # (neurons,) float64 mean
    m2: np.ndarray  # (neurons,) float64 sum of squared deviations from the mean
    n_positive: np.ndarray  # (neurons,) int64
    counts: np.ndarray  # (neurons, edges + 1) int64
    top_v: np.ndarray  # (neurons, k) float32, best first; -inf in empty slots
    top_key: np.ndarray  # (neurons, k) int64 doc_id * 2**32 + position; max int64 in empty slots

    @classmethod
    def empty(cls, n_neurons: int, k: int = 32, edges: Sequence[float] | np.ndarray = DEFAULT_EDGES) -> NeuronSummary:
        """A summary of ``n_neurons`` neurons that has seen nothing: ``k`` top tokens per neuron,
        a histogram on ``edges`` (strictly increasing; fixed before the run)."""
        if k < 1 or n_neurons < 1:
            raise ValueError(f"k and n_neurons must be positive, got k={k}, n_neurons={n_neurons}.")
        edges = _check_edges(edges)
        return cls(int(k), edges, 0, np.zeros(n_neurons), np.zeros(n_neurons), np.zeros(n_neurons, np.int64),
                   np.zeros((n_neurons, len(edges) + 1), np.int64), np.full((n_neurons, k), -np.inf, np.float32),
                   np.full((n_neurons, k), _EMPTY_KEY, np.int64))

    @property
    def n_neurons(self) -> int:
        """Number of neurons."""
        return len(self.avg)

    def update(self, values: torch.Tensor, doc_ids: torch.Tensor, positions: torch.Tensor) -> None:
        """Add (tokens, neurons) ``values`` of the tokens at (``doc_ids``, ``positions``), in place.

        Each token must be added once over the whole run (its (doc_id, position) identifies it).
        """
        values, doc_ids, positions = (torch.as_tensor(a).detach().cpu() for a in (values, doc_ids, positions))
        n = values.shape[0] if values.ndim == 2 else -1
        if values.ndim != 2 or values.shape[1] != self.n_neurons or doc_ids.shape != (n,) or positions.shape != (n,):
            raise ValueError(
                f"values must be (tokens, {self.n_neurons}) with one doc id and position per token; got values "
                f"{tuple(values.shape)}, doc_ids {tuple(doc_ids.shape)}, positions {tuple(positions.shape)}."
            )
        if not values.is_floating_point():
            raise TypeError(f"values must be floating point, got {values.dtype}.")
        if not n:
            return
        keys = _keys(doc_ids, positions)
        values = values.contiguous()
        x = values.to(torch.float16 if values.dtype == torch.float16 else torch.float32)
        self._add_histogram(x.numpy())
        xt = torch.empty(self.n_neurons, n).copy_(x.T)  # (neurons, tokens) float32
        exact = xt.double() if values.dtype != torch.float64 else values.T.contiguous()
        total = exact @ torch.ones(n, dtype=torch.float64)
        batch_mean = total / n
        batch_m2 = (torch.einsum("ij,ij->i", exact, exact) - total * batch_mean).clamp(min=0)
        self._add_moments(n, batch_mean.numpy(), batch_m2.numpy())
        self._add_top(*_batch_top(xt, keys, self.k))

    def _add_histogram(self, x: np.ndarray) -> None:
        """Histogram and positive counts of (tokens, neurons) float16 or float32 ``x``."""
        lut16, lut32 = _tables(self.edges.tobytes())
        width = 2 * self.counts.shape[1]
        if x.dtype == np.float16:
            code = np.take(lut16, x.view(np.uint16))
        else:
            code = np.take(lut32, x.view(np.uint32) >> 16)
            unsure = np.flatnonzero(code < 0)
            if len(unsure):  # cells an edge (or zero) cuts through: compare exactly
                v = x.reshape(-1)[unsure]
                code.reshape(-1)[unsure] = 2 * np.searchsorted(self.edges, v, side="right") + (v > 0)
        code += np.arange(0, self.n_neurons * width, width, dtype=np.int32)
        both = np.bincount(code.reshape(-1), minlength=self.n_neurons * width).reshape(self.n_neurons, -1, 2)
        self.counts += both.sum(2)
        self.n_positive += both[:, :, 1].sum(1)

    def _add_moments(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Chan et al.'s parallel combination of (count, mean, M2)."""
        total = self.count + n
        delta = mean - self.avg
        self.avg = self.avg + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def _add_top(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        v = torch.cat([torch.from_numpy(self.top_v), values], dim=1)
        key = torch.cat([torch.from_numpy(self.top_key), keys], dim=1)
        v, key = _best(v, key, self.k)
        self.top_v, self.top_key = v.numpy(), key.numpy()

    def merge(self, other: NeuronSummary) -> NeuronSummary:
        """The summary of both parts (neither is changed). They must share ``k``, edges and neurons."""
        same_edges = np.array_equal(self.edges, other.edges)
        if self.k != other.k or self.n_neurons != other.n_neurons or not same_edges:
            raise ValueError(
                f"Cannot merge neuron summaries with different settings: k {self.k} and {other.k}, neurons "
                f"{self.n_neurons} and {other.n_neurons}, histogram edges {'equal' if same_edges else 'differ'}. "
                "Summarise both parts with the same k, edges and layer."
            )
        out = NeuronSummary(self.k, self.edges, self.count, self.avg.copy(), self.m2.copy(),
                            self.n_positive + other.n_positive, self.counts + other.counts, self.top_v, self.top_key)
        if other.count:
            out._add_moments(other.count, other.avg, other.m2)
        out._add_top(torch.from_numpy(other.top_v), torch.from_numpy(other.top_key))
        return out

    def _per_token(self, total: np.ndarray) -> np.ndarray:
        return total / self.count if self.count else np.full(self.n_neurons, np.nan)

    @property
    def mean(self) -> np.ndarray:
        """(neurons,) mean activation, float64 (NaN before any token)."""
        return self.avg.copy() if self.count else np.full(self.n_neurons, np.nan)

    @property
    def std(self) -> np.ndarray:
        """(neurons,) population standard deviation (ddof=0, as ``np.std``), float64 (NaN before any token)."""
        return np.sqrt(self._per_token(self.m2))

    @property
    def fraction_positive(self) -> np.ndarray:
        """(neurons,) fraction of tokens where the neuron is > 0 (NaN before any token)."""
        return self._per_token(self.n_positive)

    @property
    def histogram(self) -> np.ndarray:
        """(neurons, len(edges) + 1) int64 counts. Bin ``i`` counts ``edges[i-1] <= x < edges[i]``:
        bin 0 is the underflow (``x < edges[0]``), the last bin the overflow (``x >= edges[-1]``, NaN
        too), so every token is counted once and the rows sum to the token count."""
        return self.counts.copy()

    @property
    def top_values(self) -> np.ndarray:
        """(neurons, k) float32 largest activations, best first (ties: smaller doc id, then smaller
        position first). With fewer than k tokens seen, the empty slots at the end hold NaN."""
        return np.where(self.top_key == _EMPTY_KEY, np.float32(np.nan), self.top_v)

    @property
    def top_doc_ids(self) -> np.ndarray:
        """(neurons, k) int64 document id of each top activation (-1 in empty slots)."""
        return np.where(self.top_key == _EMPTY_KEY, -1, self.top_key >> 32)

    @property
    def top_positions(self) -> np.ndarray:
        """(neurons, k) int64 position in its document of each top activation (-1 in empty slots)."""
        return np.where(self.top_key == _EMPTY_KEY, -1, self.top_key & (2**32 - 1))


@dataclass
class LensSummary:
    """Per logit-lens layer, sums of entropy and KL(final || layer) (nats) over the tokens seen."""

    entropy_sum: np.ndarray  # (layers,) float64
    kl_sum: np.ndarray  # (layers,) float64
    count: int = 0

    @classmethod
    def empty(cls, n_layers: int) -> LensSummary:
        """A lens summary of ``n_layers`` layers that has seen nothing."""
        return cls(np.zeros(n_layers), np.zeros(n_layers))

    def update(self, entropy: torch.Tensor, kl: torch.Tensor) -> None:
        """Add (layers, tokens) entropies and KL(final || layer) divergences, in place."""
        entropy, kl = torch.as_tensor(entropy), torch.as_tensor(kl)
        if entropy.ndim != 2 or entropy.shape != kl.shape or entropy.shape[0] != len(self.entropy_sum):
            raise ValueError(f"entropy and kl must both be ({len(self.entropy_sum)} layers, tokens); got "
                             f"{tuple(entropy.shape)} and {tuple(kl.shape)}.")
        self.entropy_sum = self.entropy_sum + entropy.detach().double().sum(1).cpu().numpy()
        self.kl_sum = self.kl_sum + kl.detach().double().sum(1).cpu().numpy()
        self.count += entropy.shape[1]

    def merge(self, other: LensSummary) -> LensSummary:
        """The summary of both parts (neither is changed)."""
        if len(self.entropy_sum) != len(other.entropy_sum):
            raise ValueError(f"Cannot merge lens summaries of {len(self.entropy_sum)} and {len(other.entropy_sum)} layers.")
        return LensSummary(self.entropy_sum + other.entropy_sum, self.kl_sum + other.kl_sum, self.count + other.count)

    @property
    def mean_entropy(self) -> np.ndarray:
        """(layers,) mean entropy (nats) of each layer's next-token distribution (NaN before any token)."""
        return self.entropy_sum / self.count if self.count else np.full(len(self.entropy_sum), np.nan)

    @property
    def mean_kl(self) -> np.ndarray:
        """(layers,) mean KL(final || layer) in nats (NaN before any token)."""
        return self.kl_sum / self.count if self.count else np.full(len(self.kl_sum), np.nan)


_NEURON_ARRAYS = ("edges", "avg", "m2", "n_positive", "counts", "top_v", "top_key")


@dataclass
class Summaries:
    """All of a run's summaries: neurons by column name (``"ffn.decoder.12"``) and the lens (or None)."""

    neurons: dict[str, NeuronSummary]
    lens: LensSummary | None = None

    def merge(self, other: Summaries) -> Summaries:
        """The summaries of both parts (neither is changed); both must summarise the same columns."""
        if set(self.neurons) != set(other.neurons) or (self.lens is None) != (other.lens is None):
            raise ValueError(
                f"Cannot merge summaries of different captures: columns {sorted(self.neurons)} (lens: "
                f"{self.lens is not None}) and {sorted(other.neurons)} (lens: {other.lens is not None})."
            )
        lens = self.lens.merge(other.lens) if self.lens is not None and other.lens is not None else None
        return Summaries({name: s.merge(other.neurons[name]) for name, s in self.neurons.items()}, lens)

    @staticmethod
    def merge_all(parts: Sequence[Summaries]) -> Summaries:
        """Merge ``parts`` in list order (the result does not depend on the order, up to float64 rounding)."""
        if not parts:
            raise ValueError("Nothing to merge: no summaries given.")
        out = parts[0]
        for part in parts[1:]:
            out = out.merge(part)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write to one safetensors file, atomically (a temporary file in the same folder, then a rename)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        meta: dict = {"format": _FORMAT, "neurons": {}, "lens": None}
        for name, s in self.neurons.items():
            meta["neurons"][name] = {"k": s.k, "count": s.count}
            arrays.update({f"{name}/{field}": np.ascontiguousarray(getattr(s, field)) for field in _NEURON_ARRAYS})
        if self.lens is not None:
            meta["lens"] = {"count": self.lens.count}
            arrays.update({"lens/entropy_sum": self.lens.entropy_sum, "lens/kl_sum": self.lens.kl_sum})
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(arrays, tmp, metadata={"ecco.summaries": json.dumps(meta)})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Summaries:
        """Read summaries written by :meth:`save`."""
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("ecco.summaries")
            if raw is None:
                raise ValueError(f"{path} is not an ecco summaries file (no 'ecco.summaries' metadata).")
            meta = json.loads(raw)
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path} has summaries format {meta.get('format')}; this ecco reads format {_FORMAT}.")
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}
        neurons = {
            name: NeuronSummary(m["k"], arrays[f"{name}/edges"], m["count"], *(arrays[f"{name}/{a}"] for a in _NEURON_ARRAYS[1:]))
            for name, m in meta["neurons"].items()
        }
        lens = None
        if meta["lens"] is not None:
            lens = LensSummary(arrays["lens/entropy_sum"], arrays["lens/kl_sum"], meta["lens"]["count"])
        return cls(neurons, lens)
