"""Neuron views of a record: the most active neurons, one neuron over the text, layer
similarity, and the factor explorer of a decomposition (Ecco's NMF view)."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    record: Record, method: str = "nmf", n_components: int | str = 10, from_layer: int | None = None,
    to_layer: int | None = None, nonneg: str = "clip", sequences: list[int] | None = None,
    stack: str | None = None, seed: int = 0, exclude: int | str | list[int | str] | None = None, **kwargs,
) -> FactorExplorer:
    """See :meth:`ecco.output.OutputSeq.run_decomposition`."""
    if method not in decomposition.METHODS:
        raise ValueError(f"Unknown decomposition method {method!r}; valid: {', '.join(decomposition.METHODS)}.")
    selection = select_activations(record, from_layer, to_layer, sequences, stack, exclude)
    found = decomposition.factorise(selection, method, n_components, nonneg, seed, result=FactorExplorer, **kwargs)
    found.record = record
    return found
