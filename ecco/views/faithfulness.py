"""The faithfulness comparison: which attribution method is faithful to the model, over a dataset.

The numbers (per method and metric: the mean over items with a bootstrap confidence interval,
the random-order baseline on the same targets, their paired difference, and the deletion /
insertion curves) come from the core as a plain dict (the schema at the top of
``ecco/js/faithfulness.js``). This module checks that dict and adds what the view decides:

- **Verdict** of a method on a metric, from the CI of its paired difference ``method - random``:
  ``"better"`` when it excludes 0 on the good side (``better == "higher"``: low > 0; ``"lower"``:
  high < 0), ``"worse"`` when it excludes 0 on the bad side, else ``"same"`` (not
  distinguishable from random; also when the interval could not be computed).
- **Best** method of a metric: among the methods whose verdict is ``"better"``, the best mean
  (ties all marked); none when no method beats random. A method that is not distinguishable
  from random is never called best, however good its mean.

The interactive view (JS ``faithfulness``), its static rendering and :func:`comparison_figure`
all show the same numbers and marks.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np

from ..render import View, plots

__all__ = ["comparison_view", "comparison_figure", "check_comparison"]

VIEW = "faithfulness"
SEE = "see ecco.views.faithfulness / ecco/js/faithfulness.js for the schema"
TOP_KEYS = ("title", "model", "score", "removal", "n_items", "confidence", "levels", "fractions", "metrics", "methods",
            "random_seeds")
METRIC_KEYS = ("key", "label", "better")
METHOD_KEYS = ("name", "label", "n_items", "n_targets", "error", "metrics", "random", "delta", "curves", "random_curves")
STAT_KEYS = ("mean", "low", "high")
CURVES = ("deletion", "insertion")
BETTER = ("higher", "lower")

DESCRIPTIONS = {
    "aopc_comprehensiveness": "drop of the score when the method's top {levels} of the tokens are removed, "
                              "averaged over those levels",
    "aopc_sufficiency": "drop of the score when only the method's top {levels} of the tokens are kept, "
                        "averaged over those levels",
    "soft_nc": "drop of the score when each embedding element of a token is kept with probability 1 \u2212 its min-max "
               "scaled importance, divided by the drop when every token is removed",
    "soft_ns": "share of the drop from removing every token that is avoided when each embedding element of a token is "
               "kept with probability = its min-max scaled importance",
    "deletion_auc": "area under the score as the method's top-ranked tokens are removed, fraction by fraction",
    "insertion_auc": "area under the score as the method's top-ranked tokens are restored into the all-removed input",
}
REMOVALS = {
    "zero": "a removed token keeps its position; its input embedding becomes the zero vector",
    "replace": "a removed token keeps its position; its input embedding becomes a neutral token's embedding",
}
SCORES = {"prob": "probability", "logit": "logit", "log_prob": "log-probability"}


# ------------------------------------------------------------------ checks
def _keys(obj: Any, keys: Sequence[str], where: str) -> Mapping:
    if not isinstance(obj, Mapping):
        raise ValueError(f"faithfulness view data: {where} must be a dict with keys {', '.join(keys)}, "
                         f"got {type(obj).__name__}; {SEE}.")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"faithfulness view data: {where} has no {', '.join(repr(k) for k in missing)}; it needs "
                         f"{', '.join(keys)} ({SEE}).")
    return obj


def _number(x: Any, where: str) -> float | None:
    """A float, None for null / NaN / infinity; anything else is an error."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, Real):
        raise ValueError(f"faithfulness view data: {where} must be a number or null, got {x!r}.")
    return float(x) if math.isfinite(x) else None


def _numbers(xs: Any, n: int | None, where: str) -> list[float | None]:
    if isinstance(xs, (str, bytes, Mapping)) or not isinstance(xs, (Sequence, np.ndarray)):
        raise ValueError(f"faithfulness view data: {where} must be a list of numbers, got {type(xs).__name__}.")
    if n is not None and len(xs) != n:
        raise ValueError(f"faithfulness view data: {where} has {len(xs)} values but there are {n} fractions.")
    return [_number(x, f"{where}[{i}]") for i, x in enumerate(xs)]


def _list(obj: Any, where: str) -> list:
    if isinstance(obj, (str, bytes, Mapping)) or not isinstance(obj, Sequence):
        raise ValueError(f"faithfulness view data: {where} must be a list, got {type(obj).__name__}.")
    return list(obj)


def _stat(obj: Any, where: str) -> dict:
    _keys(obj, STAT_KEYS, where)
    return {s: _number(obj[s], f"{where}[{s!r}]") for s in STAT_KEYS}


def _stats(obj: Any, keys: list[str], where: str) -> dict:
    _keys(obj, keys, where)
    return {k: _stat(obj[k], f"{where}[{k!r}]") for k in keys}


def _curves(obj: Any, n: int, where: str) -> dict:
    _keys(obj, CURVES, where)
    return {c: {s: _numbers(_keys(obj[c], STAT_KEYS, f"{where}[{c!r}]")[s], n, f"{where}[{c!r}][{s!r}]")
                for s in STAT_KEYS} for c in CURVES}


def _method(obj: Any, i: int, keys: list[str], n: int) -> dict:
    where = f"methods[{i}]"
    _keys(obj, METHOD_KEYS, where)
    where = f"methods[{i}] ({obj['name']!r})"
    method = {**obj, "name": str(obj["name"]), "label": str(obj["label"]),
              "error": None if obj["error"] is None else str(obj["error"])}
    if method["error"] is not None:
        return method
    for part in ("metrics", "random", "delta"):
        method[part] = _stats(obj[part], keys, f"{where}[{part!r}]")
    for part in ("curves", "random_curves"):
        method[part] = _curves(obj[part], n, f"{where}[{part!r}]")
    return method


def check_comparison(data: Mapping) -> dict:
    """A checked copy of the view data (numbers as floats, NaN / infinity as None); a ValueError
    naming the missing or wrong entry otherwise."""
    _keys(data, TOP_KEYS, "the data")
    metrics = []
    for i, m in enumerate(_list(data["metrics"], "metrics")):
        _keys(m, METRIC_KEYS, f"metrics[{i}]")
        if m["better"] not in BETTER:
            raise ValueError(f"faithfulness view data: metrics[{i}] ({m['key']!r}) has better={m['better']!r}; "
                             "it must be 'higher' or 'lower'.")
        metrics.append({**m, "key": str(m["key"]), "label": str(m["label"])})
    keys = [m["key"] for m in metrics]
    fractions = _numbers(data["fractions"], None, "fractions")
    methods = [_method(m, i, keys, len(fractions)) for i, m in enumerate(_list(data["methods"], "methods"))]
    for what, names in (("metric key", keys), ("method name", [m["name"] for m in methods])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"faithfulness view data: {what}s must be unique; repeated: {', '.join(twice)}.")
    return {**data, "metrics": metrics, "methods": methods, "fractions": fractions,
            "levels": _numbers(data["levels"], None, "levels"), "confidence": _number(data["confidence"], "confidence")}


# ------------------------------------------------------------------ verdicts
def verdict(delta: Mapping, better: str) -> str:
    """``"better"`` / ``"worse"`` when the CI of ``method - random`` excludes 0 on the good / bad
    side of ``better``, else ``"same"`` (not distinguishable from random)."""
    low, high = delta.get("low"), delta.get("high")
    if low is None or high is None:
        return "same"
    good, bad = (low > 0, high < 0) if better == "higher" else (high < 0, low > 0)
    return "better" if good else "worse" if bad else "same"


def best_methods(methods: Sequence[Mapping], key: str, better: str) -> list[str]:
    """The methods with the best mean on ``key`` among those whose verdict is ``"better"``."""
    means = {m["name"]: m["metrics"][key]["mean"] for m in methods
             if m["error"] is None and verdict(m["delta"][key], better) == "better" and m["metrics"][key]["mean"] is not None}
    if not means:
        return []
    top = (max if better == "higher" else min)(means.values())
    return [name for name, mean in means.items() if mean == top]


def _span(levels: list[float | None]) -> str:
    known = [v for v in levels if v is not None]
    if not known:
        return "fraction"
    lo, hi = f"{100 * min(known):g}", f"{100 * max(known):g}"
    return f"{lo} %" if lo == hi else f"{lo}\u2013{hi} %"


def _notes(data: dict) -> dict:
    confidence = data["confidence"]
    level = "confidence" if confidence is None else f"{100 * confidence:g} % confidence"
    removal = REMOVALS.get(data["removal"], f"removal mode {data['removal']!r}")
    return {
        "ci": f"mean [low, high]: the mean over items and its {level} interval (bootstrap over the {data['n_items']} "
              f"items); random: the random-order baseline on the same targets ({data['random_seeds']} seeds). In the "
              "charts, a dot and whisker for the method, a grey band and tick for random.",
        "best": "\u2605 best: the best mean among the methods whose paired difference from random (method \u2212 random) "
                "has an interval excluding 0 on the good side; no \u2605 when no method beats random.",
        "random": "\u2248 random (a hollow dot): the interval of method \u2212 random includes 0 (or could not be computed), "
                  "so the method is not distinguishable from a random order; \u2717 worse than random: it excludes 0 "
                  "on the bad side.",
        "removal": f"Removal: {removal}. Score: the model's {SCORES.get(data['score'], data['score'])} of each explained "
                   "token.",
    }


def _decided(data: dict) -> dict:
    """The checked data with the view's decisions: metric descriptions, each method's verdicts,
    the best methods per metric, the captions."""
    span = _span(data["levels"])
    metrics = [{**m, "description": m.get("description") or DESCRIPTIONS.get(m["key"], m["label"]).format(levels=span)}
               for m in data["metrics"]]
    methods = [{**m, "verdicts": {} if m["error"] is not None else
                {k["key"]: verdict(m["delta"][k["key"]], k["better"]) for k in metrics}} for m in data["methods"]]
    best = {m["key"]: best_methods(methods, m["key"], m["better"]) for m in metrics}
    return {**data, "metrics": metrics, "methods": methods, "best": best, "notes": _notes(data)}


def comparison_view(data: dict, printJson: bool = False) -> View | dict:
    """The faithfulness comparison of attribution methods over a dataset: a table (one row per
    method, one column per metric: mean and CI against the random baseline, the best and the
    not-distinguishable-from-random marked, failed methods with their error) and the deletion /
    insertion curves of the selected method against random. ``printJson`` returns the view data
    (``data`` checked, with the verdicts, the best methods and the captions added)."""
    decided = _decided(check_comparison(data))
    return decided if printJson else View(VIEW, decided)


def comparison_figure(data: dict, metrics: Sequence[str] | None = None):
    """A matplotlib figure of the comparison: one small panel per metric (``metrics``: keys, in
    this order; default all), then the deletion and insertion curves of every method."""
    decided = _decided(check_comparison(data))
    by_key = {m["key"]: m for m in decided["metrics"]}
    keys = list(by_key) if metrics is None else [str(k) for k in _list(metrics, "metrics")]
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise ValueError(f"unknown metrics {', '.join(map(repr, unknown))}; the data has {', '.join(by_key)}.")
    return plots.faithfulness_figure(decided, keys)
