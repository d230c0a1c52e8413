"""``ecco report --corpus RUN_DIR``: one offline HTML page of a corpus run's neurons.

For each search query, the search view (the best neurons, with their top contexts) and the
dashboard of the best neuron; then the dashboards of neurons asked by name, and of corpus-fitted
NMF factors when asked. The model named in the run's manifest is loaded (unless told not to)
so the dashboards show each neuron's direct effect on the output.
"""
from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .corpus.predicates import code_queries
from .corpus.search import Predicate
from .corpus_run import CorpusRun
from .render import View, save_report


def parse_queries(specs: Sequence[str]) -> dict[str, Predicate]:
    """``NAME=REGEX`` (or a bare ``REGEX``, named by itself) -> predicates; none: the code queries."""
    if not specs:
        return dict(code_queries())
    queries: dict[str, Predicate] = {}
    for spec in specs:
        name, found, pattern = spec.partition("=")
        name, pattern = (name.strip(), pattern) if found and name.strip() else (spec, spec)
        try:
            queries[name] = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"--search {spec!r}: {pattern!r} is not a regular expression ({error}).") from error
    return queries


def parse_neurons(spec: str | None) -> list[tuple[int, int]]:
    """``'12:345,3:7'`` -> [(12, 345), (3, 7)]."""
    if not spec:
        return []
    pairs = []
    for part in spec.split(","):
        layer, found, neuron = part.strip().partition(":")
        if not found or not layer.strip().isdigit() or not neuron.strip().isdigit():
            raise ValueError(f"--neurons: {part.strip()!r} is not LAYER:NEURON (e.g. 12:345).")
        pairs.append((int(layer), int(neuron)))
    return pairs


def _load_model(name: str) -> object | None:
    import ecco

    try:
        return ecco.from_pretrained(name, verbose=False)
    except Exception as error:  # the report still works without direct effects
        print(f"ecco: could not load {name} ({error}); the dashboards show no direct effect.", file=sys.stderr)
        return None


def corpus_report(
    run_dir: str | Path, out: str | Path, queries: dict[str, Predicate] | None = None, top: int = 5,
    contexts: int = 3, neurons: Sequence[tuple[int, int]] = (), factors: int = 0, factor_layers: Sequence[int] | None = None,
    model: str | None = None, load_model: bool = True,
) -> Path:
    """Write the report of the corpus run in ``run_dir`` to ``out`` (see the module docstring).

    ``queries``: name -> predicate (default: opening brackets, line indentation, string
    literals); ``top`` neurons per query with ``contexts`` contexts each; ``neurons``: more
    (layer, neuron) dashboards; ``factors``: that many NMF factors fitted over ``factor_layers``
    (default: the middle captured layer), each with its dashboard; ``model``: the model for the
    direct effects (default: the run's own; ``load_model=False``: none)."""
    started = time.perf_counter()
    run = CorpusRun(run_dir)
    if load_model:
        run.lm = _load_model(model or run.settings["model"])
    views: list[View] = []
    found = []
    for name, predicate in (code_queries() if queries is None else queries).items():
        try:
            result = run.search(predicate, top=top, label=name)
        except ValueError as error:  # e.g. a query that matches nothing in this corpus
            print(f"ecco: query {name!r} skipped: {error}", file=sys.stderr)
            continue
        best = result[0]
        found.append(f"{name}: layer {best.layer} neuron {best.neuron} (AUROC {best.auroc:.3f})")
        views.append(result.view(contexts=contexts))
        views.append(run.neuron(best.layer, best.neuron))
    views.extend(run.neuron(layer, neuron) for layer, neuron in neurons)
    if factors:
        layers = factor_layers or [run.settings["capture"]["layers"][len(run.settings["capture"]["layers"]) // 2]]
        fitted = run.fit_factors("nmf", factors, layers=list(layers))
        views.extend(run.factor(fitted, index) for index in range(fitted.n_components))
    if not views:
        raise ValueError("Nothing to show: every query was skipped and no --neurons or --factors were asked.")
    totals = run.manifest.totals()
    summary = {
        "Run": str(run.path.resolve()),
        "Model": run.settings["model"] + ("" if run.lm is not None else " (not loaded: no direct effects)"),
        "Corpus": f"{totals['documents']} documents, {totals['tokens']} tokens, layers {run.settings['capture']['layers']}",
        "Best neurons": "; ".join(found) or "none",
        "Time": f"{time.perf_counter() - started:.1f} s",
    }
    path = save_report(views, out, title=f"ecco corpus report · {run.settings['model']}", summary=summary)
    print(f"report: {Path(path).resolve()}")
    return Path(path)
