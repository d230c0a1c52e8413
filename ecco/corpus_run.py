"""CorpusRun: a corpus run with its views (neuron dashboards, search, corpus-fitted factors).

:class:`ecco.corpus.Corpus` (core) reads the shards and summaries; this subclass adds the
methods that return views, as :class:`ecco.output.OutputSeq` does for one call's record. A
run made by ``lm.run_corpus`` keeps a link to the model (``lm``), which the dashboards use
for a neuron's direct effect on the output; ``ecco.load_corpus(dir, lm=lm)`` gives one to a
run read back from disk.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .corpus.reader import Corpus
from .corpus.search import Predicate
from .render import View
from .views import corpus as corpus_views
from .views.corpus import NeuronSearch

__all__ = ["CorpusRun"]


class CorpusRun(Corpus):
    """A corpus run in ``out_dir`` with its views; ``lm`` (optional) is the model that made it."""

    def __init__(self, out_dir: str | os.PathLike, lm: Any = None) -> None:
        super().__init__(out_dir)
        self.lm = lm

    def neuron(self, layer: int, neuron: int, k: int | None = None, width: int = 8, stack: str | None = None,
               effects: int = 10, printJson: bool = False) -> View | dict:
        """The dashboard of neuron ``neuron`` of ``layer``: its top ``k`` (default: all the run kept)
        contexts with every token's activation (``width`` tokens each side), its histogram, mean,
        std and fraction active, and its direct effect on the output (``effects`` tokens up and
        down; needs the linked model). ``printJson`` returns the view's data."""
        return corpus_views.neuron_dashboard(self, layer, neuron, k, width, stack, effects, printJson)

    def search(self, predicate: Predicate, top: int = 20, layers: Sequence[int] | None = None) -> NeuronSearch:
        """Which neurons fire on X: see :meth:`ecco.corpus.Corpus.search`. The result is a sequence of
        :class:`~ecco.corpus.search.NeuronScore` that shows as the search view (``.view(contexts,
        width)``; ``.to_json()`` for the rows)."""
        return NeuronSearch(self, super().search(predicate, top, layers), corpus_views.predicate_label(predicate))

    def factor(self, factors: Any, index: int, k: int | None = None, width: int = 8,
               printJson: bool = False) -> View | dict:
        """The dashboard of factor ``index`` of corpus-fitted ``factors``: top contexts, histogram, mean,
        std and fraction active."""
        return corpus_views.factor_dashboard(self, factors, index, k, width, printJson)
