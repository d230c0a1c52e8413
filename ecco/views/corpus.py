"""Views of a corpus run: a neuron's (or corpus-fitted factor's) dashboard and the neuron search.

A dashboard shows what one unit does over the whole corpus: its top-activating contexts (every
token coloured by its value, the peak marked, the document named), its activation histogram,
mean, standard deviation and how often it is active, and for a neuron its direct effect on the
output (the tokens its output weight pushes up and down, see :mod:`ecco.direct_effect`). The
search view lists the neurons that best separate the tokens matching a predicate, each with its
top contexts. All three are the JS view ``neuron_dashboard`` (``data["kind"]``: ``"neuron"``,
``"factor"`` or ``"search"``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, overload

from ..checks import as_int
from ..corpus.dashboard import ValueReader, number, read_contexts, top_peaks, unit_stats
from ..corpus.reader import Corpus
from ..corpus.search import NeuronScore, Predicate
from ..corpus.summaries import NeuronSummary
from ..render import View

__all__ = ["neuron_dashboard", "factor_dashboard", "search_view", "NeuronSearch", "predicate_label"]

VIEW = "neuron_dashboard"
LOAD_HINT = "ecco.load_corpus(dir, lm=lm)"


# ------------------------------------------------------------------ checks
def _ffn_column(run: Corpus, layer: int, stack: str | None) -> str:
    """The run's FFN column of ``layer`` (``ffn.<stack>.<layer>``), checked to be captured."""
    capture = run.settings["capture"]
    if not capture["activations"]:
        raise ValueError("This run stored no FFN activations (activations=False): there are no neurons to show. "
                         "Run the corpus again with activations=True.")
    stack = stack or capture["stack"]
    layer = as_int(layer, "layer")
    column = f"ffn.{stack}.{layer}"
    if column not in run.columns:
        layers = capture["layers"]
        raise ValueError(f"layer={layer} (stack {stack!r}) was not captured in this run; captured: {capture['stack']} "
                         f"layers {layers}.")
    return column


def _summary(run: Corpus, column: str) -> NeuronSummary:
    """The neuron summary of ``column``; a clear error for a run made with ``summaries=False``."""
    found = run.summary.neurons.get(column)
    if found is None:
        raise ValueError(f"This run has no neuron summaries for {column} (summaries=False): the dashboards read the "
                         "top-k tokens and histograms from them. Run the corpus again with summaries=True.")
    return found


def _title(run: Corpus, what: str) -> str:
    return f"{what} \u00b7 {run.settings['model']}"


# ------------------------------------------------------------------ direct effect
def direct_effects(run: Any, stack: str, layer: int, neuron: int, n: int) -> tuple[dict | None, str | None]:
    """The ``n`` tokens neuron ``neuron`` of ``layer`` pushes up most and down most through the final
    norm and LM head of ``run.lm``, as ``({"up": [...], "down": [...]}, None)`` (each entry ``id``,
    ``text``, ``value``: the logit change), or ``(None, why not)`` when the run has no model or the
    model has no LM head. A model other than the run's is an error."""
    lm = getattr(run, "lm", None)
    if lm is None:
        return None, (f"Direct effect on the output: this run has no model linked. Load it with {LOAD_HINT} "
                      "(the model that made it) to see the tokens this neuron pushes up and down.")
    expected = run.settings["model"]
    if lm.model_name != expected:
        raise ValueError(f"The linked model is {lm.model_name!r} but this run was made with {expected!r}: its neurons "
                         f"are not this model's. Load the run with {LOAD_HINT} using the model that made it.")
    if stack != lm.spec.kind.main_stack:
        return None, (f"No direct effect for {stack} neurons: only the {lm.spec.kind.main_stack} stack writes to "
                      "the residual stream that the LM head reads.")
    from ..direct_effect import direct_effect, output_direction, top_effects
    from ..lens import LensHead
    from ..tokens import token_pieces

    try:
        head = LensHead.from_model(lm.model, lm.spec)
    except ValueError as error:
        return None, f"No direct effect: {error}"
    with lm.runner.session():
        effect = direct_effect(head, output_direction(lm.spec, stack, layer, neuron))
    n = min(as_int(n, "effects", 1), effect.numel())
    up, down = top_effects(effect, n)

    def entries(pairs: list[tuple[int, float]]) -> list[dict]:
        return [{"id": i, "text": token_pieces(lm.tokenizer, [i])[0], "value": number(v)} for i, v in pairs]

    return {"up": entries(up), "down": entries(down)}, None


# ------------------------------------------------------------------ dashboards
def _dashboard(run: Corpus, summary: NeuronSummary, unit: int, k: int | None, width: int, values: ValueReader) -> dict:
    """The data both dashboards share: top contexts (values from ``values``), histogram and moments."""
    width = as_int(width, "width", 0)
    peaks = top_peaks(summary, unit, k)
    return {"contexts": read_contexts(run, peaks, width, values), "width": width,
            "k": summary.k, **unit_stats(summary, unit)}


def neuron_dashboard(run: Corpus, layer: int, neuron: int, k: int | None = None, width: int = 8,
                     stack: str | None = None, effects: int = 10, printJson: bool = False) -> View | dict:
    """Neuron ``neuron`` of ``layer`` over the whole corpus: its top ``k`` (default: all the run kept)
    activating contexts, ``width`` tokens each side with every token's value, its histogram, mean,
    std and fraction active, and its ``effects`` top direct effects on the output (needs ``run.lm``;
    0 leaves them out). ``printJson`` returns the view's data dict."""
    column = _ffn_column(run, layer, stack)
    summary = _summary(run, column)
    stack_name, layer = column.split(".")[1], int(column.rsplit(".", 1)[1])
    wrong = f"neuron={neuron} is out of range: layer {layer} has {summary.n_neurons} neurons (0..{summary.n_neurons - 1})."
    neuron = as_int(neuron, "neuron", 0, summary.n_neurons - 1, wrong)
    effects = as_int(effects, "effects", 0)
    dashboard = _dashboard(run, summary, neuron, k, width, lambda rows: run.array(column, rows))
    found, why = direct_effects(run, stack_name, layer, neuron, effects) if effects else (None, None)
    data = {
        "kind": "neuron", "title": _title(run, f"Neuron {neuron} of {stack_name} layer {layer}"),
        "name": f"layer {layer} \u00b7 neuron {neuron}", "column": column, "stack": stack_name, "layer": layer,
        "neuron": neuron, "model": run.settings["model"], **dashboard, "effects": found, "effects_note": why,
    }
    return data if printJson else View(VIEW, data)


def factor_dashboard(run: Corpus, factors: Any, index: int, k: int | None = None, width: int = 8,
                     printJson: bool = False) -> View | dict:
    """The dashboard of factor ``index`` of corpus-fitted ``factors`` (``CorpusFactors``): its top
    contexts (values from ``factors.values``), histogram, mean, std and fraction active. No direct
    effect (a factor mixes neurons of several layers)."""
    summary = factors.summary
    n = int(factors.n_components)
    index = as_int(index, "index", 0, n - 1, f"index={index!r} is out of range: there are {n} factors (0..{n - 1}).")
    layers = [int(x) for x in factors.layers]
    span = f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"
    name = f"{factors.method.upper()} factor {index}"
    data = {
        "kind": "factor", "title": _title(run, f"{name} of {factors.stack} {span}"),
        "name": f"{name} of {n} \u00b7 {span}", "column": None, "stack": factors.stack, "layer": None, "neuron": None,
        "factor": index, "method": factors.method, "model": run.settings["model"],
        **_dashboard(run, summary, index, k, width, lambda rows: factors.values(run, rows)),
        "effects": None, "effects_note": None,
    }
    return data if printJson else View(VIEW, data)


# ------------------------------------------------------------------ search
def predicate_label(predicate: Predicate) -> str:
    """A short description of a search predicate, for the view's title."""
    if isinstance(predicate, re.Pattern):
        return f"tokens matching /{predicate.pattern}/"
    if isinstance(predicate, str):
        return f"tokens matching /{predicate}/"
    if callable(predicate):
        return f"tokens where {getattr(predicate, '__name__', type(predicate).__name__)}(token, before)"
    shown = sorted(predicate)
    more = f", ... ({len(shown)} in all)" if len(shown) > 12 else ""
    return "tokens " + ", ".join(repr(t) for t in shown[:12]) + more


def search_view(run: Corpus, scores: Sequence[NeuronScore], contexts: int = 3, width: int = 8,
                predicate_label: str | None = None, printJson: bool = False) -> View | dict:
    """The neurons of a search (best first) in a table: layer, neuron, AUROC, precision of the top-k,
    each with its top ``contexts`` contexts (``width`` tokens each side, coloured by that neuron)."""
    contexts = as_int(contexts, "contexts", 0)
    width = as_int(width, "width", 0)
    rows, by_column = [], {}
    for rank, score in enumerate(scores):
        summary = _summary(run, score.column)
        peaks = top_peaks(summary, score.neuron)[:contexts]
        rows.append({"rank": rank + 1, "column": score.column, "stack": score.column.split(".")[1], "layer": score.layer,
                     "neuron": score.neuron, "auroc": number(score.auroc), "precision_at_k": number(score.precision_at_k),
                     "k": summary.k, "contexts": []})
        by_column.setdefault(score.column, []).append((rows[-1], peaks))
    for column, members in by_column.items():  # one read of each column, for all its neurons' contexts
        peaks = [p for _, ps in members for p in ps]
        found = iter(read_contexts(run, peaks, width, lambda rows, c=column: run.array(c, rows)))
        for row, ps in members:
            row["contexts"] = [next(found) for _ in ps]
    label = predicate_label or "the predicate"
    data = {"kind": "search", "title": _title(run, f"Neurons that fire on {label}"), "predicate": label,
            "model": run.settings["model"], "width": width, "neurons": rows}
    return data if printJson else View(VIEW, data)


class NeuronSearch(Sequence):
    """The result of ``run.search``: the neurons (:class:`~ecco.corpus.search.NeuronScore`, best
    AUROC first) as a sequence, shown as the search view in a notebook."""

    def __init__(self, run: Corpus, scores: list[NeuronScore], predicate: str) -> None:
        self.run, self.scores, self.predicate = run, list(scores), predicate

    @overload
    def __getitem__(self, index: int) -> NeuronScore: ...
    @overload
    def __getitem__(self, index: slice) -> list[NeuronScore]: ...
    def __getitem__(self, index: int | slice) -> NeuronScore | list[NeuronScore]:
        return self.scores[index]

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        best = ", ".join(f"L{s.layer}:{s.neuron} ({s.auroc:.3f})" for s in self.scores[:5])
        return f"NeuronSearch({self.predicate}: {len(self)} neurons; best {best}{', ...' if len(self) > 5 else ''})"

    def to_json(self) -> list[dict]:
        """The rows as plain dicts (column, layer, neuron, auroc, precision_at_k)."""
        return [asdict(s) for s in self.scores]

    @property
    def printJson(self) -> list[dict]:
        """Same as :meth:`to_json`."""
        return self.to_json()

    def view(self, contexts: int = 3, width: int = 8, printJson: bool = False) -> View | dict:
        """The search view: each neuron with its top ``contexts`` contexts of ``width`` tokens each side."""
        return search_view(self.run, self.scores, contexts, width, self.predicate, printJson)

    def _repr_html_(self) -> str:
        return self.view()._repr_html_()
