"""``ExperimentRun``: an attribution experiment read back, with views: any item in Ecco's
attribution views, and the faithfulness comparison of its methods (view and figure)."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .attribution import METHODS, AttributionResult
from .experiment.reader import Experiment
from .output import OutputSeq
from .record import SequenceMeta
from .render import View

__all__ = ["ExperimentRun", "load_experiment"]


class ExperimentRun(Experiment):
    """An attribution experiment (see :class:`ecco.experiment.Experiment`) with its views. ``lm``
    (optional) links the model that made it, for the views that need a live model."""

    def __init__(self, out_dir: str | os.PathLike, lm: Any = None) -> None:
        super().__init__(out_dir)
        if lm is not None and lm.model_name != self.settings["model"]:
            raise ValueError(f"This experiment was made with {self.settings['model']!r}, not {lm.model_name!r}: link the "
                             "model that made it (or none).")
        self.lm = lm

    def item(self, item: int) -> OutputSeq:
        """Item ``item`` as an output of Ecco's views: ``.primary_attributions(attr_method=...)`` for
        any method that ran on it (a method that could not run is missing, with its reason)."""
        row = self.row(item)
        meta = SequenceMeta(row["token_ids"], row["n_input"], row["tokens"], row["continues_word"], row["special"])
        attributions = {}
        for name in self.methods:
            if row[f"{name}.error"] is not None:
                continue
            completeness = row[f"{name}.completeness"]
            attributions[name] = AttributionResult(
                method=name, label=METHODS[name].label if name in METHODS else name,
                score=row[f"{name}.explained"] or self.settings["score"], targets=[row["targets"]],
                values=[[np.asarray(v, dtype=np.float64) for v in row[f"{name}.values"]]],
                raw=[[np.asarray(v, dtype=np.float64) for v in row[f"{name}.raw"]]],
                completeness_error=None if completeness is None else [np.asarray(completeness)],
                asked_score=self.settings["score"],
            )
        probs = torch.tensor([row["target_probs"]], dtype=torch.float32)
        return OutputSeq(
            model_name=self.settings["model"], kind=self.settings["kind"], n_layers=self.settings["n_layers"],
            sequences=[meta], token_probs=probs, token_entropy=torch.full_like(probs, float("nan")),
            attributions=attributions, link=None if self.lm is None else self.lm.link,
        )

    def compare(self, confidence: float = 0.95, printJson: bool = False) -> View | dict:
        """Which method is faithful: per method, the mean faithfulness scores with ``confidence``
        bootstrap intervals over the items, against the random baseline, and the deletion and
        insertion curves (``printJson``: the view's data)."""
        from .views.faithfulness import comparison_view

        return comparison_view(self.comparison(confidence), printJson=printJson)

    def figure(self, confidence: float = 0.95, metrics: list[str] | None = None) -> Any:
        """The comparison as a matplotlib figure."""
        from .views.faithfulness import comparison_figure

        return comparison_figure(self.comparison(confidence), metrics=metrics)

    def table(self, confidence: float = 0.95) -> list[dict]:
        """The comparison as rows (one per method: each metric's mean, low, high, and the
        difference from random), e.g. for ``pandas.DataFrame(run.table())``."""
        data = self.comparison(confidence)
        rows = []
        for entry in data["methods"]:
            row = {"method": entry["name"], "items": entry["n_items"], "error": entry["error"]}
            for metric in data["metrics"]:
                key = metric["key"]
                for part, source in (("", entry["metrics"]), ("random ", entry["random"]), ("vs random ", entry["delta"])):
                    found = source.get(key) or {}
                    row[f"{part}{key}"] = found.get("mean")
                    row[f"{part}{key} low"], row[f"{part}{key} high"] = found.get("low"), found.get("high")
            rows.append(row)
        return rows


def load_experiment(out_dir: str | os.PathLike, lm: Any = None) -> ExperimentRun:
    """An attribution experiment written by ``lm.attribute_dataset`` / ``ecco attribute`` (complete or
    stopped part-way), with ``lm`` linked if given."""
    return ExperimentRun(out_dir, lm=lm)
