"""Factorising neuron activations: NMF (Ecco's explorer) and PCA / ICA / SVD.

Activations are Ecco's (batch, layers, neurons, positions). The selected layers and
sequences become one (features, tokens) matrix: layers x neurons rows, the valid positions
of each sequence side by side (padding is dropped). NMF needs non-negative input: FFN
activations are often negative (GELU, SiLU, gated ``act(gate) * up`` in Llama-style models),
so ``nonneg='clip'`` keeps Ecco's max(x, 0) and ``nonneg='split'`` stacks the positive part
and the negative part as separate features (no signal thrown away; use it for gated and SiLU
models, where about half of the activations are negative).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from .checks import as_int, is_int
from .shapes import Activations

METHODS = ("nmf", "pca", "ica", "svd")
_AUTO_MAX = 15


@dataclass
class Selection:
    """Which part of an output's activations is factorised, and the resulting matrix."""

    stack: str
    layers: list[int]  # layer numbers, numeric order
    sequences: list[int]
    positions: list[tuple[int, int]]  # (sequence, token-list position) of each column
    matrix: np.ndarray  # (layers * neurons, tokens)
    excluded: list[tuple[int, int]] = field(default_factory=list)  # (sequence, position) left out of the fit


def select_layers(
    activations: Activations,
    layer_numbers: Sequence[int],
    n_model_layers: int,
    spans: Sequence[range],
    from_layer: int | None = None,
    to_layer: int | None = None,
    sequences: Sequence[int] | None = None,
    stack: str = "decoder",
    excluded: Collection[tuple[int, int]] = (),
) -> Selection:
    """Ecco's reshape: (batch, layers, neurons, positions) -> (layers*neurons, tokens).

    ``layer_numbers`` names the captured layers (rows of ``activations``); ``spans[s]`` the
    token-list positions batch item ``s`` has in this stack (column ``p - span.start``). Layers
    [from_layer, to_layer) of the sequences asked (all by default) are kept, padding is dropped,
    and so are the (sequence, position) pairs in ``excluded``."""
    def bound(name: str, value: int | None, default: int) -> int:
        wrong = f"{name}={value} is out of range: the model has layers 0..{n_model_layers - 1}."
        return default if value is None else as_int(value, name, 0, n_model_layers, wrong)

    low, high = bound("from_layer", from_layer, 0), bound("to_layer", to_layer, n_model_layers)
    if low >= high:
        raise ValueError(f"from_layer ({low}) must be smaller than to_layer ({high}); the range is [from, to).")
    rows = [i for i, n in enumerate(layer_numbers) if low <= n < high]
    if not rows:
        raise ValueError(f"No captured layer in [{low}, {high}); captured layers: {list(layer_numbers)}.")
    sequences = list(range(len(spans))) if sequences is None else list(sequences)
    skip = set(excluded)
    kept = {s: [p for p in spans[s] if (s, p) not in skip] for s in sequences}
    positions = [(s, p) for s in sequences for p in kept[s]]
    if not positions:
        raise ValueError("Every token is excluded: nothing is left to factorise.")
    columns = {s: [p - spans[s].start for p in kept[s]] for s in sequences}
    blocks = [activations[s][rows][:, :, columns[s]] for s in sequences if columns[s]]  # (layers, neurons, kept)
    matrix = np.concatenate([b.reshape(-1, b.shape[-1]) for b in blocks], axis=1).astype(np.float32)
    dropped = [(s, p) for s in sequences for p in spans[s] if (s, p) in skip]
    return Selection(stack, [layer_numbers[i] for i in rows], sequences, positions, matrix, dropped)


def nonnegative(matrix: np.ndarray, mode: str) -> np.ndarray:
    """'clip' (Ecco): max(x, 0); 'split': [max(x, 0); max(-x, 0)] stacked as features."""
    if mode == "clip":
        return np.maximum(matrix, 0)
    if mode == "split":
        return np.concatenate([np.maximum(matrix, 0), np.maximum(-matrix, 0)])
    raise ValueError(f"nonneg must be 'clip' or 'split', got {mode!r}.")


def _model(method: str, k: int, seed: int, **kwargs):
    from sklearn import decomposition

    if method == "nmf":
        options = {"init": "nndsvda", "max_iter": 500, "random_state": seed, **kwargs}
        return decomposition.NMF(n_components=k, **options)
    if method == "pca":
        return decomposition.PCA(n_components=k, random_state=seed, **kwargs)
    if method == "ica":
        return decomposition.FastICA(n_components=k, random_state=seed, max_iter=1000, **kwargs)
    if method == "svd":
        return decomposition.TruncatedSVD(n_components=k, random_state=seed, **kwargs)
    raise ValueError(f"Unknown decomposition method {method!r}; valid: {', '.join(METHODS)}.")


def _fit(method: str, data: np.ndarray, k: int, seed: int, **kwargs) -> tuple[object, np.ndarray, float]:
    """(model, factors (k, tokens), relative reconstruction error) for data (features, tokens)."""
    model = _model(method, k, seed, **kwargs)
    factors = model.fit_transform(data.T)  # samples are tokens
    reconstruction = model.inverse_transform(factors) if hasattr(model, "inverse_transform") else factors @ model.components_
    error = float(np.linalg.norm(data.T - reconstruction) / max(np.linalg.norm(data), 1e-12))
    return model, factors.T, error


def elbow(errors: list[float]) -> int:
    """Index of the elbow: the point farthest below the chord from first to last."""
    if len(errors) < 3:
        return len(errors) - 1
    x = np.arange(len(errors), dtype=float)
    y = np.asarray(errors, dtype=float)
    chord = y[0] + (y[-1] - y[0]) * x / x[-1]
    return int(np.argmax(chord - y))


@dataclass
class Decomposition:
    """Factors of neuron activations (an output's ``run_nmf`` adds ``explore()`` and ``plot()``).

    ``components``: (n_components, tokens) factor activations over the tokens (Ecco's name);
    ``loadings``: (n_components, features) weights of each neuron (``model.components_``);
    ``model``: the fitted scikit-learn estimator; ``errors``: relative reconstruction error per
    number of components tried (``n_components='auto'``).
    """

    method: str
    n_components: int
    components: np.ndarray
    loadings: np.ndarray
    model: object
    selection: Selection
    nonneg: str | None = None
    reconstruction_error: float = 0.0
    errors: dict[int, float] = field(default_factory=dict)

    def display_factors(self) -> tuple[np.ndarray, list[str]]:
        """Non-negative factors for display: signed methods show each component's positive and
        negative directions as two factors ("k+" and "k-"); NMF and sparse-autoencoder codes are
        non-negative already."""
        if self.method in ("nmf", "sae"):
            return self.components, [str(k) for k in range(self.n_components)]
        positive, negative = np.maximum(self.components, 0), np.maximum(-self.components, 0)
        values = np.stack([positive, negative], axis=1).reshape(-1, self.components.shape[1])
        labels = [f"{k}{sign}" for k in range(self.n_components) for sign in ("+", "-")]
        return values, labels


def factorise(
    selection: Selection,
    method: str = "nmf",
    n_components: int | str = 10,
    nonneg: str = "clip",
    seed: int = 0,
    result: type[Decomposition] | None = None,
    **kwargs,
) -> Decomposition:
    """Factorise the selected activations (see the module docstring). ``result`` is the class
    of the returned object (a subclass of :class:`Decomposition`; the views add the explorer)."""
    if method not in METHODS:
        raise ValueError(f"Unknown decomposition method {method!r}; valid: {', '.join(METHODS)}.")
    data = nonnegative(selection.matrix, nonneg) if method == "nmf" else selection.matrix
    n_tokens = data.shape[1]
    limit = min(n_tokens, data.shape[0]) - (1 if method in ("svd", "pca") else 0)
    errors: dict[int, float] = {}
    if n_components == "auto":
        tried = list(range(1, max(1, min(_AUTO_MAX, limit)) + 1))
        fits = {k: _fit(method, data, k, seed, **kwargs) for k in tried}
        errors = {k: fit[2] for k, fit in fits.items()}
        n_components = tried[elbow([errors[k] for k in tried])]
        model, factors, error = fits[n_components]
    else:
        if not is_int(n_components) or not 1 <= int(n_components) <= limit:
            raise ValueError(
                f"n_components must be 'auto' or an integer from 1 to {limit} (there are {n_tokens} tokens), "
                f"got {n_components!r}."
            )
        n_components = int(n_components)
        model, factors, error = _fit(method, data, n_components, seed, **kwargs)
    return (result or Decomposition)(
        method=method,
        n_components=int(n_components),
        components=factors,
        loadings=np.asarray(model.components_),
        model=model,
        selection=selection,
        nonneg=nonneg if method == "nmf" else None,
        reconstruction_error=error,
        errors=errors,
    )
NMF = Decomposition  # Ecco's name for the object run_nmf returns
