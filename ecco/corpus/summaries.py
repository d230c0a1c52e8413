"""Streaming summaries of a corpus run, computed in the capture pass and mergeable.

Per captured neuron (:class:`NeuronSummary`): the top-k activating tokens with their (document,
position), mean, population standard deviation, fraction of tokens where it is positive, and a
histogram on fixed edges. Per logit-lens layer (:class:`LensSummary`): mean entropy and mean
KL(final || layer). :class:`Summaries` bundles a run's summaries in one safetensors file.

Every summary is mergeable: parts of a corpus summarised apart and merged equal the whole
summarised at once, however the corpus was cut into batches and parts. Counts, histograms and
top-k are exact (ties broken by a fixed rule: larger value, then smaller document id, then smaller
position); means and standard deviations agree to float64 rounding (float64 sums per batch,
combined with Chan et al.'s parallel formula). Values are summarised as given: float16 exactly
(top-k values are float32, equal to the stored activations); other dtypes are ranked and binned as
float32, their moments taken in float64. Each token must be added once (its (doc_id, position)
identifies it); the top-k expects values without NaN.
"""
from __future__ import annotations

import functools
import json
import os
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


def _keys(doc_ids: torch.Tensor, positions: torch.Tensor) -> np.ndarray:
    """One int64 per token, ordered like (doc_id, position): ``doc_id * 2**32 + position``."""
    for name, ids, bits in (("doc_ids", doc_ids, 31), ("positions", positions, 32)):
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= 2**bits):
            raise ValueError(f"{name} must be in [0, 2**{bits}).")
    return (doc_ids.long() * 2**32 + positions.long()).numpy()


def _check_edges(edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Edges as float32, strictly increasing and finite (a clear error otherwise)."""
    out = np.asarray(edges, dtype=np.float32).reshape(-1)
    if not len(out) or not np.isfinite(out).all() or (np.diff(out) <= 0).any():
        raise ValueError(f"Histogram edges must be finite and strictly increasing in float32, got {list(edges)}.")
    return out


@functools.lru_cache(maxsize=8)
def _tables(edges_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Tables from 16 bits to ``2 * bin + (value > 0)``: for float16 by the value's bits (exact); for
    float32 by its upper 16 bits, -1 where the cell's values differ in bin or sign (resolved exactly)."""
    edges = np.frombuffer(edges_bytes, np.float32)

    def code(v: np.ndarray) -> np.ndarray:
        return 2 * np.searchsorted(edges, v, side="right") + (v > 0)

    cells = np.arange(65536, dtype=np.uint32)
    half = cells.astype(np.uint16).view(np.float16).astype(np.float32)
    low, high = (cells << 16).view(np.float32), ((cells << 16) | 0xFFFF).view(np.float32)
    with np.errstate(invalid="ignore"):
        lut16, lo, hi = code(half), code(low), code(high)
    return lut16.astype(np.int32), np.where(lo == hi, lo, -1).astype(np.int32)


def _histogram(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(neurons, len(edges) + 1, 2) counts of (tokens, neurons) float16 or float32 ``x`` by bin and
    by ``x > 0``: a table look-up per value, then one ``bincount`` per chunk of rows."""
    lut16, lut32 = _tables(edges.tobytes())
    n, width = x.shape[1], 2 * (len(edges) + 1)
    offsets = np.arange(0, n * width, width, dtype=np.int32)
    out = np.zeros(n * width, np.int64)
    for start in range(0, len(x), 512):  # chunks keep the temporaries in cache
        chunk = x[start : start + 512]
        if chunk.dtype == np.float16:
            code = np.take(lut16, chunk.view(np.uint16))
        else:
            code = np.take(lut32, chunk.view(np.uint32) >> 16)
            unsure = np.flatnonzero(code < 0)
            if len(unsure):  # cells that an edge (or zero) cuts through: compare exactly
                v = chunk.reshape(-1)[unsure]
                code.reshape(-1)[unsure] = 2 * np.searchsorted(edges, v, side="right") + (v > 0)
        code += offsets
        out += np.bincount(code.reshape(-1), minlength=n * width)
    return out.reshape(n, -1, 2)


def _merge_top(top_v: np.ndarray, top_key: np.ndarray, cols: np.ndarray, values: np.ndarray, keys: np.ndarray) -> None:
    """Merge candidates (neuron ``cols``, ``values``, ``keys``) into the (neurons, k) top-k in place: the
    rows of neurons with candidates are sorted again (larger value, then smaller key)."""
    if not len(cols):
        return
    k = top_v.shape[1]
    order = np.argsort(cols.astype(np.uint16) if top_v.shape[0] <= 2**16 else cols, kind="stable")
    cols, values, keys = cols[order], values[order], keys[order]
    neurons, first, counts = np.unique(cols, return_index=True, return_counts=True)
    rows = np.repeat(np.arange(len(neurons)), counts)
    slots = k + np.arange(len(cols)) - np.repeat(first, counts)
    v = np.full((len(neurons), k + counts.max()), -np.inf, np.float32)
    key = np.full(v.shape, _EMPTY_KEY, np.int64)
    v[:, :k], key[:, :k] = top_v[neurons], top_key[neurons]
    v[rows, slots], key[rows, slots] = values, keys
    best = np.lexsort((key, -v), axis=1)[:, :k]
    top_v[neurons], top_key[neurons] = np.take_along_axis(v, best, 1), np.take_along_axis(key, best, 1)


def _batch_top(xt: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``min(k, tokens)`` (value, key) of each row of (neurons, tokens) ``xt``: ``torch.topk``;
    rows where the k-th value ties with the next one take their tied tokens by smallest key."""
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
    """Summary of ``n_neurons`` neurons over the tokens seen so far: :meth:`empty`, :meth:`update`,
    :meth:`merge`; read :attr:`mean`, :attr:`std`, :attr:`fraction_positive`, :attr:`histogram`,
    :attr:`top_values`, :attr:`top_doc_ids`, :attr:`top_positions`."""

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
        """Add (tokens, neurons) ``values`` of the tokens at (``doc_ids``, ``positions``), in place."""
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
        x = values if values.dtype in (torch.float16, torch.float32) else values.float()
        x32 = x.float().numpy()  # (tokens, neurons), exact for float16
        self._add_moments(values.numpy() if values.dtype == torch.float64 else x32)
        _merge_top(self.top_v, self.top_key, *self._candidates(x32, keys))
        both = _histogram(x.numpy(), self.edges)
        self.counts += both.sum(2)
        self.n_positive += both[:, :, 1].sum(1)

    def _add_moments(self, x: np.ndarray) -> None:
        """Float64 sums of (x - shift) and its square by chunks of rows (small temporaries; shift: the
        mean so far, or the first row), combined with the moments so far."""
        n = len(x)
        shift = self.avg if self.count else x[0].astype(np.float64)
        s1, s2 = np.zeros(self.n_neurons), np.zeros(self.n_neurons)
        for start in range(0, n, 256):
            chunk = np.subtract(x[start : start + 256], shift)  # float64
            s1 += chunk.sum(0)
            s2 += np.einsum("ij,ij->j", chunk, chunk)
        self._combine(n, shift + s1 / n, np.maximum(s2 - s1 * s1 / n, 0.0))

    def _combine(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:  # Chan et al.'s parallel formula
        total = self.count + n
        delta = mean - self.avg
        self.avg = self.avg + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def _candidates(self, x: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(neuron, value, key) of the tokens of (tokens, neurons) float32 ``x`` that can enter a neuron's
        top-k (above its k-th value, or equal with a smaller key); for a neuron with more than 4k of
        them (every neuron in a first batch), its batch top-k from ``torch.topk`` instead."""
        threshold, last = self.top_v[:, -1], self.top_key[:, -1]
        mask = x >= threshold
        heavy = np.flatnonzero(mask.sum(0, dtype=np.int32) > 4 * self.k)
        parts = []
        if len(heavy):
            mask[:, heavy] = False
            xt = torch.from_numpy(x)
            xt = xt.T.contiguous() if len(heavy) == self.n_neurons else xt.index_select(1, torch.from_numpy(heavy)).T.contiguous()
            values, chosen = _batch_top(xt, torch.from_numpy(keys), self.k)
            parts.append((np.repeat(heavy, values.shape[1]), values.numpy().reshape(-1), chosen.numpy().reshape(-1)))
        rows, cols = np.divmod(np.flatnonzero(mask), self.n_neurons)
        values, chosen = x[rows, cols], keys[rows]
        keep = (values > threshold[cols]) | (chosen < last[cols])
        parts.append((cols[keep], values[keep], chosen[keep]))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def merge(self, other: NeuronSummary) -> NeuronSummary:
        """The summary of both parts (neither is changed). They must share ``k``, edges and neurons."""
        same_edges = np.array_equal(self.edges, other.edges)
        if self.k != other.k or self.n_neurons != other.n_neurons or not same_edges:
            raise ValueError(
                f"Cannot merge neuron summaries with different settings: k {self.k} and {other.k}, neurons "
                f"{self.n_neurons} and {other.n_neurons}, histogram edges {'equal' if same_edges else 'differ'}. "
                "Summarise both parts with the same k, edges and layer."
            )
        out = NeuronSummary(self.k, self.edges, self.count, self.avg.copy(), self.m2.copy(), self.n_positive + other.n_positive,
                            self.counts + other.counts, self.top_v.copy(), self.top_key.copy())
        if other.count:
            out._combine(other.count, other.avg, other.m2)
        filled = other.top_key != _EMPTY_KEY
        _merge_top(out.top_v, out.top_key, np.nonzero(filled)[0], other.top_v[filled], other.top_key[filled])
        return out

    @property
    def mean(self) -> np.ndarray:
        """(neurons,) mean activation, float64 (NaN before any token)."""
        return self.avg.copy() if self.count else np.full(self.n_neurons, np.nan)

    @property
    def std(self) -> np.ndarray:
        """(neurons,) population standard deviation (ddof=0, as ``np.std``), float64 (NaN before any token)."""
        return np.sqrt(self.m2 / self.count) if self.count else np.full(self.n_neurons, np.nan)

    @property
    def fraction_positive(self) -> np.ndarray:
        """(neurons,) fraction of tokens where the neuron is > 0 (NaN before any token)."""
        return self.n_positive / self.count if self.count else np.full(self.n_neurons, np.nan)

    @property
    def histogram(self) -> np.ndarray:
        """(neurons, len(edges) + 1) int64 counts. Bin ``i`` counts ``edges[i-1] <= x < edges[i]``:
        bin 0 is the underflow (``x < edges[0]``), the last bin the overflow (``x >= edges[-1]``, NaN
        too), so every token is counted once and the rows sum to the token count."""
        return self.counts.copy()

    @property
    def bins(self) -> np.ndarray:
        """(len(edges) + 1, 2) float64 [lower, upper) bound of each histogram bin (-inf and inf outside)."""
        bounds = np.concatenate([[-np.inf], self.edges.astype(np.float64), [np.inf]])
        return np.stack([bounds[:-1], bounds[1:]], 1)

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
        lens = None if self.lens is None or other.lens is None else self.lens.merge(other.lens)
        return Summaries({name: s.merge(other.neurons[name]) for name, s in self.neurons.items()}, lens)

    @staticmethod
    def merge_all(parts: Sequence[Summaries]) -> Summaries:
        """Merge ``parts`` in list order (the result does not depend on the order, up to float64 rounding)."""
        if not parts:
            raise ValueError("Nothing to merge: no summaries given.")
        return functools.reduce(Summaries.merge, parts[1:], parts[0])

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
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            save_file(arrays, tmp, metadata={"ecco.summaries": json.dumps(meta)})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Summaries:
        """Read summaries written by :meth:`save`."""
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("ecco.summaries", "{}"))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path} is not an ecco summaries file of format {_FORMAT} (format {meta.get('format')}).")
            arrays = {name: np.array(f.get_tensor(name)) for name in f.keys()}
        neurons = {}
        for name, m in meta["neurons"].items():
            edges, *rest = (arrays[f"{name}/{field}"] for field in _NEURON_ARRAYS)
            neurons[name] = NeuronSummary(m["k"], edges, m["count"], *rest)
        lens = meta["lens"] and LensSummary(arrays["lens/entropy_sum"], arrays["lens/kl_sum"], meta["lens"]["count"])
        return cls(neurons, lens)
