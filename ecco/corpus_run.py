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
from typing import TYPE_CHECKING, Any

from .corpus.reader import Corpus
from .corpus.search import Predicate
from .render import View
from .views import corpus as corpus_views
from .views.corpus import NeuronSearch

if TYPE_CHECKING:
    from .corpus.factors import CorpusFactors

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

    def search(self, predicate: Predicate, top: int = 20, layers: Sequence[int] | None = None,
               label: str | None = None) -> NeuronSearch:
        """Which neurons fire on X: see :meth:`ecco.corpus.Corpus.search`. The result is a sequence of
        :class:`~ecco.corpus.search.NeuronScore` that shows as the search view (``.view(contexts,
        width)``; ``.to_json()`` for the rows); ``label`` names the predicate in the view."""
        found = super().search(predicate, top, layers)
        return NeuronSearch(self, found, label or corpus_views.predicate_label(predicate))

    def fit_factors(self, method: str = "nmf", n_components: int = 10, layers: Sequence[int] | None = None,
                    nonneg: str = "clip", seed: int = 0, batch_size: int = 4096, passes: int | None = None,
                    progress: bool = False, **options: Any) -> CorpusFactors:
        """Factors of the stored FFN activations of ``layers`` (default: all captured), fitted
        streaming over the shards: ``'nmf'`` (scikit-learn's ``MiniBatchNMF``, ``nonneg`` as in
        ``run_nmf``), ``'pca'`` (``IncrementalPCA``) or ``'sae'`` (a TopK sparse autoencoder;
        ``k``, ``tied``, ``lr``, ``epochs``). Each factor is summarised over the corpus like a
        neuron (``run.factor(factors, i)`` shows its dashboard), and ``output.run_nmf(factors=...)``
        applies the factors to any new text. See :func:`ecco.corpus.factors.fit_factors`."""
        from .corpus.factors import fit_factors

        return fit_factors(self, method, n_components, layers=layers, nonneg=nonneg, seed=seed, batch_size=batch_size,
                           passes=passes, progress=progress, **options)

    def factor(self, factors: CorpusFactors, index: int, k: int | None = None, width: int = 8,
               printJson: bool = False) -> View | dict:
        """The dashboard of factor ``index`` of corpus-fitted ``factors``: top contexts, histogram, mean,
        std and fraction active."""
        return corpus_views.factor_dashboard(self, factors, index, k, width, printJson)
