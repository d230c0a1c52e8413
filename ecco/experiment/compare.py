"""Which method is faithful: an experiment's faithfulness scores per method, with confidence
intervals over the items, beside the random-order baseline.

An item's score for a metric is the mean over its explained tokens (tokens of one item are not
independent draws, so the item is the unit). Per method: the mean over the items where it ran,
its percentile-bootstrap interval (items resampled with replacement, seeded), the same for the
random baseline on those items, and for the paired difference method − random. Deletion and
insertion curves are read on one grid of fractions (each token's curve interpolated onto it,
since a token with fewer sources than curve steps has fewer distinct points) and summarised
the same way at every fraction.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

METRICS = (
    ("aopc_comprehensiveness", "Comprehensiveness (AOPC)", "higher"),
    ("aopc_sufficiency", "Sufficiency (AOPC)", "lower"),
    ("soft_nc", "Soft-NC", "higher"),
    ("soft_ns", "Soft-NS", "higher"),
    ("deletion_auc", "Deletion AUC", "lower"),
    ("insertion_auc", "Insertion AUC", "higher"),
)
CURVES = ("deletion", "insertion")


def interval(values: np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean and percentile-bootstrap interval over the first axis of ``values`` (items); the
    interval of one item is the item itself; None for no items. Works elementwise on (items, k)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return {"mean": None, "low": None, "high": None}
    mean = values.mean(axis=0)
    if values.shape[0] == 1:
        low = high = mean
    else:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
        means = values[picks].mean(axis=1)
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)
    return {"mean": _plain(mean), "low": _plain(low), "high": _plain(high)}


def _plain(x: np.ndarray | float) -> float | list[float]:
    return np.asarray(x).tolist()


class _Collector:
    """Per-item means of one method's (or its paired random baseline's) metrics and curves."""

    def __init__(self, grid: np.ndarray) -> None:
        self.grid = grid
        self.metrics: dict[str, list[float]] = {key: [] for key, _, _ in METRICS}
        self.curves: dict[str, list[np.ndarray]] = {c: [] for c in CURVES}

    def add(self, targets: Sequence[dict], fractions: Sequence[Sequence[float]]) -> None:
        """One item: its targets' score dicts and each target's curve fractions."""
        for key in self.metrics:
            self.metrics[key].append(float(np.mean([t[key] for t in targets])))
        for curve in CURVES:
            on_grid = [np.interp(self.grid, f, t[curve]) for t, f in zip(targets, fractions)]
            self.curves[curve].append(np.mean(on_grid, axis=0))

    def summary(self, confidence: float) -> tuple[dict, dict]:
        """(metrics, curves) as means with intervals."""
        metrics = {k: interval(np.array(v), confidence) for k, v in self.metrics.items()}
        curves = {c: interval(np.array(v).reshape(len(v), len(self.grid)), confidence) for c, v in self.curves.items()}
        return metrics, curves


def compare(reports: Iterable[dict], methods: Sequence[tuple[str, str]], failures: dict[str, str], *, model: str,
            steps: int, confidence: float = 0.95) -> dict:
    """The comparison's view data from the items' faithfulness reports (see
    :mod:`ecco.experiment.job`): ``methods`` as (name, label) in display order, ``failures`` the
    reason of each method that could not run."""
    grid = np.linspace(0.0, 1.0, steps + 1)
    own = {name: _Collector(grid) for name, _ in methods}
    paired = {name: _Collector(grid) for name, _ in methods}
    deltas: dict[str, dict[str, list[float]]] = {name: {k: [] for k, _, _ in METRICS} for name, _ in methods}
    n_items, seeds, score, removal, levels = 0, 0, None, None, None
    n_targets = dict.fromkeys(own, 0)
    for report in reports:
        base = report.get("random")
        if base is None:
            continue
        n_items += 1
        seeds = base["targets"][0]["seeds"]
        score, removal, levels = base["score"], base["removal"], base["levels"]
        fractions = [t["fractions"] for t in base["targets"]]
        randoms = [t["mean"] for t in base["targets"]]
        for name, targets in report["methods"].items():
            if name not in own:
                continue
            own[name].add(targets, fractions)
            n_targets[name] += len(targets)
            if seeds:
                paired[name].add(randoms, fractions)
                for key in deltas[name]:
                    deltas[name][key].append(np.mean([t[key] for t in targets]) - np.mean([r[key] for r in randoms]))
    entries = []
    for name, label in methods:
        ran = len(own[name].metrics["soft_nc"])
        metrics, curves = own[name].summary(confidence)
        random_metrics, random_curves = paired[name].summary(confidence) if seeds else ({}, {})
        entries.append({
            "name": name, "label": label, "n_items": ran, "n_targets": n_targets[name],
            "error": failures.get(name) if not ran else None,
            "metrics": metrics if ran else {}, "random": random_metrics if ran else {},
            "delta": {k: interval(np.array(v), confidence) for k, v in deltas[name].items()} if ran and seeds else {},
            "curves": curves if ran else {}, "random_curves": random_curves if ran else {},
        })
    return {
        "title": f"Faithfulness \u00b7 {model}", "model": model, "score": score, "removal": removal, "n_items": n_items,
        "confidence": confidence, "levels": levels, "fractions": grid.tolist(),
        "metrics": [{"key": k, "label": label, "better": better} for k, label, better in METRICS],
        "methods": entries, "random_seeds": seeds, "failures": dict(failures),
    }
