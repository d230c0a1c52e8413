"""Factors fitted over a whole corpus run: NMF, PCA or a TopK sparse autoencoder of the FFN
activations of some layers, fitted by streaming row blocks of the memory-mapped shards.

Each token's features are the chosen layers' activations side by side (layers x neurons,
float32); NMF takes them through :func:`ecco.decomposition.nonnegative` ('clip' or 'split').
The corpus's tokens x features matrix is never built: the fit reads ``batch_size`` rows at a
time (``MiniBatchNMF.partial_fit``, ``IncrementalPCA.partial_fit``, or Adam steps of the SAE),
in the same blocks as scikit-learn's own ``fit`` on the full matrix would use, so a streamed fit
equals the in-memory one. A second streaming pass computes every token's factor activations and
summarises them like neurons (:class:`~ecco.corpus.summaries.NeuronSummary`: top-k tokens with
their document and position, histogram, mean, fraction positive), so each factor gets a
neuron's dashboard.

NMF activations of a token are the exact non-negative least-squares solution for it
(coordinate descent from zero, a fixed number of iterations), which depends on that token
alone: ``MiniBatchNMF.transform`` starts from the mean of the whole block it is given and stops
when the block as a whole converges, so a token's values would change with its neighbours in
the block (and the summary would disagree with :meth:`CorpusFactors.values`).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..checks import as_int, is_int
from ..decomposition import nonnegative
from .reader import Corpus
from .sae import train_sae
from .search import layer_values
from .summaries import NeuronSummary

METHODS = ("nmf", "pca", "sae")
_DEFAULT_PASSES = {"nmf": 1, "pca": 1, "sae": 5}
_TRANSFORM_ITER = 200  # coordinate-descent iterations of an NMF transform
_OCTAVES = 20  # histogram bins per sign, one per binary order of magnitude


def _features(raw: np.ndarray, method: str, nonneg: str | None) -> np.ndarray:
    """float32 (tokens, features): ``raw`` as it is, or made non-negative for NMF."""
    raw = np.asarray(raw, dtype=np.float32)
    if method != "nmf":
        return raw
    return np.ascontiguousarray(nonnegative(raw.T, nonneg).T)  # nonnegative takes (features, tokens)


@dataclass
class CorpusFactors:
    """Factors fitted over a corpus run by :func:`fit_factors`.

    ``layers``: the layers of ``stack`` whose FFN activations (``n_neurons`` each) are the
    features, in this order; ``model``: the fitted ``MiniBatchNMF`` / ``IncrementalPCA`` or
    :class:`~ecco.corpus.sae.TopKSAE`; ``summary``: a :class:`NeuronSummary` of the factors over
    the corpus (factor ``i`` is its neuron ``i``); ``stats``: tokens, passes, seconds per pass,
    relative reconstruction error, FVU, the dead-factor fraction (NMF, SAE) and the fit settings.
    """

    method: str
    stack: str
    layers: list[int]
    n_neurons: int
    nonneg: str | None
    n_components: int
    model: Any
    model_name: str
    summary: NeuronSummary
    stats: dict = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The corpus columns the features come from, e.g. ``['ffn.decoder.1', 'ffn.decoder.2']``."""
        return [f"ffn.{self.stack}.{layer}" for layer in self.layers]

    @property
    def n_features(self) -> int:
        """Features per token: layers x neurons (twice that for NMF with ``nonneg='split'``)."""
        return len(self.layers) * self.n_neurons * (2 if self.nonneg == "split" else 1)

    @property
    def loadings(self) -> np.ndarray:
        """(n_components, features) float32: each factor's weight on each feature (NMF's H, PCA's
        components, the SAE's decoder directions)."""
        if self.method == "sae":
            return self.model.decoder_weight.detach().numpy().copy()
        return np.asarray(self.model.components_, dtype=np.float32)

    def features(self, raw: np.ndarray) -> np.ndarray:
        """(tokens, layers * neurons) activations, the layers side by side, -> the float32
        (tokens, features) the factors read (non-negativity applied for NMF)."""
        raw = np.asarray(raw)
        width = len(self.layers) * self.n_neurons
        if raw.ndim != 2 or raw.shape[1] != width:
            raise ValueError(f"raw must be (tokens, {width}): layers {self.layers} x {self.n_neurons} neurons side by "
                             f"side; got shape {raw.shape}.")
        return _features(raw, self.method, self.nonneg)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """(tokens, n_components) float32 factor activations of (tokens, layers * neurons) ``raw``,
        with the fitted factors (nothing is refitted; each token's values depend on it alone)."""
        return self._codes(self.features(raw))

    def _codes(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.zeros((0, self.n_components), np.float32)
        if self.method == "sae":
            with torch.no_grad():
                return self.model.encode(torch.from_numpy(x)).numpy()
        if self.method == "pca":
            return self.model.transform(x).astype(np.float32)
        m = self.model
        h = np.asarray(m.components_, np.float32)
        iterations = self.stats.get("transform_iter", _TRANSFORM_ITER)
        if m.beta_loss in ("frobenius", 2, 2.0) and not m.alpha_W:
            return _nnls_cd(x, h, iterations)
        from sklearn.decomposition import non_negative_factorization

        solver = "cd" if m.beta_loss in ("frobenius", 2, 2.0) else "mu"
        w, _, _ = non_negative_factorization(
            x, H=h, n_components=self.n_components, init=None, update_H=False, solver=solver, beta_loss=m.beta_loss,
            tol=0.0, max_iter=iterations, alpha_W=m.alpha_W, alpha_H=m.alpha_H, l1_ratio=m.l1_ratio)
        return w.astype(np.float32)

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        """(tokens, features) the factors rebuild from (tokens, n_components) ``codes``."""
        codes = np.asarray(codes, dtype=np.float32)
        if self.method == "sae":
            with torch.no_grad():
                return self.model.decode(torch.from_numpy(codes)).numpy()
        if self.method == "pca":
            return self.model.inverse_transform(codes).astype(np.float32)
        return codes @ self.loadings

    def values(self, corpus: Corpus, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """(len(rows), n_components) factor activations of the stored tokens at ``rows`` of
        ``corpus`` (row numbers of ``corpus.table``), read from its shards and transformed."""
        stack, _, _, n_neurons = _check_corpus(corpus, self.layers)
        if (stack, n_neurons, corpus.settings.get("model")) != (self.stack, self.n_neurons, self.model_name):
            raise ValueError(f"These factors were fitted on {self.model_name} ({self.stack}, {self.n_neurons} neurons "
                             f"per layer); this corpus holds {corpus.settings.get('model')} ({stack}, {n_neurons}).")
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = corpus.table.num_rows
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"rows must be row numbers 0..{n - 1} of the corpus table.")
        raw = np.concatenate([corpus.array(c, rows).astype(np.float32) for c in self.columns], axis=1)
        return self.transform(raw)

    def __repr__(self) -> str:
        error = self.stats.get("fvu")
        return (f"CorpusFactors({self.method}, {self.n_components} components, {self.stack} layers {self.layers}, "
                f"{self.stats.get('tokens')} tokens, FVU {error if error is None else round(error, 4)})")


# ------------------------------------------------------------------ streaming
def _nnls_cd(x: np.ndarray, h: np.ndarray, iterations: int) -> np.ndarray:
    """Each row of ``x`` fitted as a non-negative combination of the rows of ``h``: the coordinate
    descent of scikit-learn's ``'cd'`` solver from zero (components in order, ``iterations``
    sweeps), with ``x @ h.T`` and ``h @ h.T`` computed once instead of at every sweep, and every
    row updated at once."""
    gram = h @ h.T
    projected = x @ h.T
    w = np.zeros((len(x), len(h)), np.float32)
    for _ in range(iterations):
        for t in range(len(h)):
            if gram[t, t] != 0:
                w[:, t] = np.maximum(w[:, t] - (w @ gram[:, t] - projected[:, t]) / gram[t, t], 0)
    return w


def _check_corpus(corpus: Corpus, layers: Sequence[int] | None) -> tuple[str, list[int], list[str], int]:
    """(stack, layers, columns, neurons per layer) of a run's FFN activations, checked."""
    capture = corpus.settings["capture"]
    if not capture.get("activations"):
        raise ValueError("This corpus run stored no FFN activations (activations=False): run it again with "
                         "activations=True to fit factors.")
    captured = [int(n) for n in capture["layers"]]
    if layers is None:
        chosen = captured
    else:
        if is_int(layers):
            layers = [layers]
        chosen = [as_int(n, "layer") for n in layers]
        missing = [n for n in chosen if n not in captured]
        if not chosen or missing or len(set(chosen)) != len(chosen):
            problem = f"layers {missing} were not captured" if missing else "give each layer once"
            raise ValueError(f"layers={list(layers)}: {problem}; this run captured layers {captured}.")
    columns = [f"ffn.{capture['stack']}.{n}" for n in chosen]
    widths = {corpus.table.schema.field(c).type.list_size for c in columns}
    if len(widths) != 1:
        raise ValueError(f"The layers {chosen} have different neuron counts ({sorted(widths)}); fit them separately.")
    return capture["stack"], chosen, columns, widths.pop()


def _blocks(table: pa.Table, columns: list[str], n_neurons: int, slices: Sequence[slice]) -> Iterator[np.ndarray]:
    """float32 (rows, layers * neurons) of each row slice, read from the memory-mapped table."""
    for s in slices:
        part = table.slice(s.start, s.stop - s.start)
        yield np.concatenate([layer_values(part, c, 0, n_neurons) for c in columns], axis=1)


def _edges(codes: np.ndarray) -> np.ndarray:
    """Histogram edges for factor values like ``codes``: 0 and ±top * 2**-j (j < 20), where ``top``
    is two binary orders of magnitude above the largest value (negative edges only if any value
    is negative)."""
    largest = float(np.abs(codes).max()) if codes.size else 0.0
    top = 2.0 ** (np.ceil(np.log2(largest)) + 2) if largest > 0 else 1.0
    positive = top * 2.0 ** -np.arange(_OCTAVES - 1, -1, -1)
    negative = -positive[::-1] if codes.size and codes.min() < 0 else []
    return np.concatenate([negative, [0.0], positive]).astype(np.float32)


def _summarise(factors: CorpusFactors, corpus: Corpus, columns: list[str], slices: Sequence[slice], top_k: int,
               edges: Sequence[float] | None, bar: Any) -> tuple[NeuronSummary, dict]:
    """The second pass: every token's factor activations into a summary, and the fit's errors."""
    table = corpus.table
    docs = torch.from_numpy(np.array(table.column("doc_id").to_numpy(), dtype=np.int64))
    positions = torch.from_numpy(table.column("position").to_numpy().astype(np.int64))
    summary, sse, total, squares, n = None, 0.0, 0.0, 0.0, 0
    start = time.perf_counter()
    for s, raw in zip(slices, _blocks(table, columns, factors.n_neurons, slices)):
        x = factors.features(raw)
        codes = factors._codes(x)
        if summary is None:
            summary = NeuronSummary.empty(factors.n_components, top_k, _edges(codes) if edges is None else edges)
        summary.update(torch.from_numpy(codes), docs[s], positions[s])
        x64 = x.astype(np.float64)
        sse += float(np.square(x64 - factors.reconstruct(codes)).sum())
        total, squares, n = total + x64.sum(0), squares + float(np.square(x64).sum()), n + len(x)
        bar.update(len(x))
    spread = squares - float(np.square(total).sum()) / n
    stats = {"summary_seconds": time.perf_counter() - start, "reconstruction_error": float(np.sqrt(sse / max(squares, 1e-30))),
             "fvu": float(sse / spread) if spread > 0 else float("nan")}
    if factors.method != "pca":
        stats["dead_fraction"] = float((summary.n_positive == 0).mean())
    return summary, stats


def fit_factors(
    corpus: Corpus,
    method: str,
    n_components: int,
    layers: Sequence[int] | int | None = None,
    nonneg: str = "clip",
    seed: int = 0,
    batch_size: int = 4096,
    passes: int | None = None,
    progress: bool = False,
    top_k: int = 32,
    edges: Sequence[float] | None = None,
    **options: Any,
) -> CorpusFactors:
    """Fit ``n_components`` factors of the FFN activations of ``layers`` (default: all captured)
    over every token of ``corpus``, streaming ``batch_size`` rows at a time.

    ``method``: ``'nmf'`` (scikit-learn ``MiniBatchNMF.partial_fit``; ``nonneg`` 'clip' or 'split'
    as in :func:`ecco.decomposition.nonnegative`; ``forget_factor`` means what it means for
    ``MiniBatchNMF.fit`` over the whole corpus), ``'pca'`` (``IncrementalPCA.partial_fit``, one
    pass) or ``'sae'`` (a TopK sparse autoencoder, :mod:`ecco.corpus.sae`; options ``k``, ``tied``,
    ``lr``, ``minibatch``; ``epochs`` is an alias of ``passes``). Other ``options`` go to the
    scikit-learn estimator. ``passes`` over the data: 1 for NMF and PCA, 5 (epochs) for the SAE by
    default. Then one more pass summarises every factor over the corpus (``top_k`` tokens, a
    histogram on ``edges``, default: 20 binary orders of magnitude below the first block's largest
    value, times 4). ``progress``: a progress bar over the passes.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r} for corpus factors; valid: {', '.join(METHODS)}.")
    if nonneg not in ("clip", "split"):
        raise ValueError(f"nonneg must be 'clip' or 'split', got {nonneg!r}.")
    if "epochs" in options and method == "sae":
        epochs = as_int(options.pop("epochs"), "epochs", 1)
        if passes is not None and passes != epochs:
            raise ValueError(f"epochs={epochs} and passes={passes} disagree: for the SAE they are the same; give one.")
        passes = epochs
    passes = _DEFAULT_PASSES[method] if passes is None else as_int(passes, "passes", 1)
    if method == "pca" and passes != 1:
        raise ValueError(f"passes={passes}: IncrementalPCA takes each token once (a second pass would count it twice); "
                         "use passes=1.")
    seed, batch_size, top_k = as_int(seed, "seed"), as_int(batch_size, "batch_size", 1), as_int(top_k, "top_k", 1)
    stack, layers, columns, n_neurons = _check_corpus(corpus, layers)
    nonneg_used = nonneg if method == "nmf" else None
    table = corpus.table
    n_tokens = table.num_rows
    n_features = len(layers) * n_neurons * (2 if nonneg_used == "split" else 1)
    limit = min(n_tokens, n_features) - (1 if method == "pca" else 0)
    if method == "sae":
        limit = max(n_features * 64, 1)  # an SAE may be overcomplete
    if not is_int(n_components) or not 1 <= int(n_components) <= limit:
        raise ValueError(f"n_components must be an integer from 1 to {limit} for {method} on {n_tokens} tokens x "
                         f"{n_features} features, got {n_components!r}.")
    n_components = int(n_components)
    if method == "pca" and batch_size < n_components:
        raise ValueError(f"batch_size={batch_size} is smaller than n_components={n_components}: IncrementalPCA needs "
                         "at least n_components rows per batch; raise batch_size.")
    from sklearn.utils import gen_batches

    slices = list(gen_batches(n_tokens, batch_size, min_batch_size=n_components if method == "pca" else 0))
    from ..progress import progress_bar

    bar = progress_bar(total=n_tokens * (passes + 1 + (method == "sae")), desc=f"{method} factors", disable=not progress)
    try:
        model, seconds, settings = _fit(method, n_components, table, columns, n_neurons, nonneg_used, slices, passes,
                                        seed, batch_size, n_tokens, bar, options)
        factors = CorpusFactors(method, stack, layers, n_neurons, nonneg_used, n_components, model,
                                corpus.settings.get("model", ""), NeuronSummary.empty(1), {})
        factors.summary, errors = _summarise(factors, corpus, columns, slices, top_k, edges, bar)
    finally:
        bar.close()
    factors.stats = {"tokens": n_tokens, "features": n_features, "passes": passes, "seconds_per_pass": seconds,
                     "batch_size": batch_size, "seed": seed, **settings, **errors}
    return factors


def _fit(method: str, n_components: int, table: pa.Table, columns: list[str], n_neurons: int, nonneg: str | None,
         slices: list[slice], passes: int, seed: int, batch_size: int, n_tokens: int, bar: Any,
         options: dict) -> tuple[Any, list[float], dict]:
    """(fitted model, seconds per pass, settings worth recording) of the streaming fit."""
    if method == "sae":
        order = np.random.default_rng(seed)

        def blocks(epoch: int) -> Iterator[np.ndarray]:  # a fresh, seeded block order every epoch
            chosen = slices if epoch < 0 else [slices[i] for i in order.permutation(len(slices))]
            for block in _blocks(table, columns, n_neurons, chosen):
                bar.update(len(block))
                yield block

        options.setdefault("k", min(8, n_components))
        known = {"k", "tied", "lr", "minibatch"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"Unknown SAE options {unknown}; valid: {sorted(known)} (and epochs).")
        sae, seconds = train_sae(blocks, len(columns) * n_neurons, n_components, epochs=passes, seed=seed, **options)
        return sae, seconds, {"k": sae.k, "tied": sae.tied, "lr": options.get("lr", 1e-3),
                              "minibatch": options.get("minibatch", 256)}
    from sklearn.decomposition import IncrementalPCA, MiniBatchNMF

    settings: dict = {}
    if method == "nmf":
        per_pass = options.pop("forget_factor", 0.7)
        # MiniBatchNMF.fit forgets by forget_factor ** (batch / tokens) per batch; partial_fit
        # would take forget_factor per batch, so it gets the per-batch value.
        options["forget_factor"] = per_pass ** (min(batch_size, n_tokens) / n_tokens)
        settings = {"forget_factor": per_pass, "transform_iter": _TRANSFORM_ITER}
        model = MiniBatchNMF(n_components=n_components, batch_size=batch_size, random_state=seed, **options)
    else:
        model = IncrementalPCA(n_components=n_components, batch_size=batch_size, **options)
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        for block in _blocks(table, columns, n_neurons, slices):
            model.partial_fit(_features(block, method, nonneg))
            bar.update(len(block))
        seconds.append(time.perf_counter() - start)
    return model, seconds, settings
