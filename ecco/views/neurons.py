"""Neuron views of a record: the most active neurons, one neuron over the text, layer
similarity, and the factor explorer of a decomposition (Ecco's NMF view)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import analysis, decomposition
from ..access import activation_stack, check_position, select_activations
from ..checks import as_int
from ..record import Record
from ..render import View
from .tokens import title, token_entries


def _stack(record: Record, stack: str | None) -> tuple[str, np.ndarray, list[int]]:
    name = activation_stack(record, stack)
    return name, record.activations[name], record.activation_layers[name]


def top_neurons(
    record: Record, position: int, k: int = 10, sequence: int = 0, stack: str | None = None, printJson: bool = False
) -> View | list[dict]:
    """See :meth:`ecco.output.OutputSeq.top_neurons`."""
    position = check_position(record, position, sequence)
    name, acts, layers = _stack(record, stack)
    values = acts[sequence, :, :, position]  # (layers, neurons)
    k = as_int(k, "k", 1, values.size, f"k must be between 1 and {values.size}, got {k!r}.")
    flat = np.argsort(values, axis=None)[::-1][:k]
    rows = [
        {"layer": layers[i // values.shape[1]], "neuron": int(i % values.shape[1]), "value": float(values.flat[i])}
        for i in flat
    ]
    if printJson:
        return rows
    return View("top_neurons", {
        "token": {"text": record.sequences[sequence].tokens[position], "position": position},
        "neurons": rows,
        "title": title(record, f"Most active {name} neurons", sequence),
    })


def neuron_view(
    record: Record, layer: int, neuron: int, sequence: int = 0, stack: str | None = None, printJson: bool = False
) -> View | np.ndarray:
    """See :meth:`ecco.output.OutputSeq.neuron_view`."""
    seq = record.check_sequence(sequence)
    name, acts, layers = _stack(record, stack)
    layer = as_int(layer, "layer")
    if layer not in layers:
        raise ValueError(f"layer={layer} was not captured; captured {name} layers: {layers}.")
    wrong = f"neuron={neuron} is out of range: layers have neurons 0..{acts.shape[2] - 1}."
    neuron = as_int(neuron, "neuron", 0, acts.shape[2] - 1, wrong)
    values = acts[sequence, layers.index(layer), neuron, : len(seq)].astype(float)
    if printJson:
        return values
    return View("neuron", {
        "tokens": _entries(record, sequence),
        "values": values.tolist(),
        "layer": layer,
        "neuron": neuron,
        "stack": name,
        "title": title(record, f"Activation of {name} neuron {neuron} in layer {layer}", sequence),
    })


def _entries(record: Record, sequence: int) -> list[dict]:
    index = record.sequence_index(sequence)
    return [{k: v for k, v in token.items() if k != "id"} | {"sequence": index} for token in token_entries(record, index)]


def layer_similarity(
    record: Record, method: str = "cka", stack: str | None = None, sequences: list[int] | None = None,
    printJson: bool = False, **kwargs,
) -> View | np.ndarray:
    """See :meth:`ecco.output.OutputSeq.layer_similarity`."""
    if method not in analysis.SIMILARITY:
        raise ValueError(f"Unknown similarity {method!r}; valid: {', '.join(analysis.SIMILARITY)}.")
    selection = select_activations(record, sequences=sequences, stack=stack)
    per_layer = selection.matrix.reshape(len(selection.layers), -1, selection.matrix.shape[1])
    matrix = analysis.similarity_matrix(per_layer, method, **kwargs)
    if printJson:
        return matrix
    return View("similarity", {
        "labels": [str(layer) for layer in selection.layers],
        "matrix": matrix.tolist(),
        "method": method,
        "title": title(record, f"{method.upper()} similarity between {selection.stack} layers"),
    })


# ----------------------------------------------------------------- factors
@dataclass
class FactorExplorer(decomposition.Decomposition):
    """A decomposition of a record's activations, with Ecco's explorer (``explore``) and a
    figure (``plot``)."""

    record: Record | None = field(default=None, repr=False)

    @property
    def tokens(self) -> list[str]:
        """The text of each factorised token (columns of ``components``)."""
        return [self.record.sequences[s].tokens[p] for s, p in self.selection.positions]

    def explore(self, printJson: bool = False) -> View | dict:
        """The factor explorer: sparklines per factor; hover or click one to colour the tokens.
        Tokens left out of the fit (``exclude=``) are shown, marked, without factor values."""
        values, labels = self.display_factors()
        column = {pair: j for j, pair in enumerate(self.selection.positions)}
        shown = sorted(column.keys() | set(self.selection.excluded))
        entries = {s: token_entries(self.record, s) for s in self.selection.sequences}
        tokens = [
            {k: v for k, v in entries[s][p].items() if k != "id"} | {"sequence": s, "excluded": (s, p) not in column}
            for s, p in shown
        ]
        factors = [[None if pair not in column else float(row[column[pair]]) for pair in shown] for row in values]
        left_out = f"; {len(self.selection.excluded)} token(s) left out of the fit" if self.selection.excluded else ""
        data = {
            "tokens": tokens,
            "factors": factors,
            "factor_labels": labels,
            "method": self.method,
            "caption": f"{self.method.upper()}, {self.n_components} components, layers "
            f"{self.selection.layers[0]}-{self.selection.layers[-1]} ({self.selection.stack}){left_out}",
            "title": title(self.record, f"{self.method.upper()} factors of {self.selection.stack} neuron activations"),
        }
        return data if printJson else View("nmf", data)

    def plot(self, n_components: int | None = None):
        """A matplotlib figure: one row per factor, its activation over the tokens."""
        from ..render.plots import factors_figure

        values, labels = self.display_factors()
        count = len(values) if n_components is None else min(as_int(n_components, "n_components", 1), len(values))
        return factors_figure(values[:count], labels[:count], self.tokens)


def run_decomposition(
    record: Record, method: str | None = "nmf", n_components: int | str | None = None, from_layer: int | None = None,
    to_layer: int | None = None, nonneg: str | None = None, sequences: list[int] | None = None,
    stack: str | None = None, seed: int = 0, exclude: int | str | list[int | str] | None = None,
    factors: Any = None, **kwargs,
) -> FactorExplorer:
    """See :meth:`ecco.output.OutputSeq.run_decomposition`. With ``factors`` (corpus-fitted
    ``CorpusFactors``), the record's activations of exactly their layers are transformed by them
    (no fit); ``method``, ``n_components`` and ``nonneg`` may be left out (None) or must agree."""
    if factors is not None:
        return _apply_factors(record, factors, method, n_components, from_layer, to_layer, nonneg, sequences, stack,
                              exclude, kwargs)
    method = "nmf" if method is None else method
    if method not in decomposition.METHODS:
        raise ValueError(f"Unknown decomposition method {method!r}; valid: {', '.join(decomposition.METHODS)}.")
    selection = select_activations(record, from_layer, to_layer, sequences, stack, exclude)
    n_components = 10 if n_components is None else n_components
    found = decomposition.factorise(selection, method, n_components, nonneg or "clip", seed, result=FactorExplorer,
                                    **kwargs)
    found.record = record
    return found


def _apply_factors(record: Record, factors: Any, method: str | None, n_components: int | str | None,
                   from_layer: int | None, to_layer: int | None, nonneg: str | None, sequences: list[int] | None,
                   stack: str | None, exclude: Any, kwargs: dict) -> FactorExplorer:
    """Corpus-fitted ``factors`` applied to the record's activations of their layers (see
    :func:`run_decomposition`)."""
    asked = {"method": (method, factors.method), "n_components": (n_components, factors.n_components),
             "nonneg": (nonneg, factors.nonneg)}
    for name, (given, theirs) in asked.items():
        if given is not None and given != theirs:
            raise ValueError(f"{name}={given!r} contradicts the corpus-fitted factors ({name}={theirs!r}): leave "
                             f"{name} out when factors= is given.")
    if kwargs:
        raise ValueError(f"factors= applies fitted factors, nothing is fitted: options {sorted(kwargs)} do not apply.")
    if stack is not None and stack != factors.stack:
        raise ValueError(f"stack={stack!r}, but the factors were fitted on the {factors.stack!r} stack.")
    if record.model_name != factors.model_name:
        raise ValueError(f"These factors were fitted on {factors.model_name!r}'s activations; this output is of "
                         f"{record.model_name!r}.")
    name, acts, captured = _stack(record, factors.stack)
    layers = [int(n) for n in factors.layers]
    missing = [n for n in layers if n not in captured]
    if missing:
        raise ValueError(f"The factors read {name} layers {layers}; this output did not capture {missing} (captured: "
                         f"{captured}). Create the LM with activations=True and activations_layer_nums={layers}.")
    if acts.shape[2] != factors.n_neurons:
        raise ValueError(f"The factors read {factors.n_neurons} neurons per layer; this output's layers have "
                         f"{acts.shape[2]}.")
    low, high = min(layers), max(layers) + 1
    if (from_layer is not None and as_int(from_layer, "from_layer") > low) or (
            to_layer is not None and as_int(to_layer, "to_layer") < high):
        raise ValueError(f"from_layer={from_layer}, to_layer={to_layer} leave out layers the factors read ({layers}); "
                         "leave them out when factors= is given.")
    selection = select_activations(record, low, high, sequences, name, exclude)
    width = factors.n_neurons
    blocks = [selection.matrix[selection.layers.index(n) * width : (selection.layers.index(n) + 1) * width] for n in layers]
    selection.layers, selection.matrix = layers, np.concatenate(blocks)
    codes = factors.transform(selection.matrix.T)  # (tokens, components)
    features = factors.features(selection.matrix.T)
    reconstruction = factors.reconstruct(codes)
    error = float(np.linalg.norm(features - reconstruction) / max(np.linalg.norm(features), 1e-12))
    found = FactorExplorer(method=factors.method, n_components=factors.n_components, components=codes.T,
                           loadings=factors.loadings, model=factors.model, selection=selection, nonneg=factors.nonneg,
                           reconstruction_error=error, record=record)
    return found
