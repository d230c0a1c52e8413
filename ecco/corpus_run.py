"""CorpusRun: a corpus run with its views (neuron dashboards, search, corpus-fitted factors).

:class:`ecco.corpus.Corpus` (core) reads the shards and summaries; this subclass adds the
methods that return views, as :class:`ecco.output.OutputSeq` does for one call's record. A
run made by ``lm.run_corpus`` keeps a link to the model (``lm``), which the dashboards use
for a neuron's direct effect on the output; ``ecco.load_corpus(dir, lm=lm)`` gives one to a
run read back from disk.
"""
from __future__ import annotations

import os
from typing import Any

from .corpus.reader import Corpus

__all__ = ["CorpusRun"]


class CorpusRun(Corpus):
    """A corpus run in ``out_dir`` with its views; ``lm`` (optional) is the model that made it."""

    def __init__(self, out_dir: str | os.PathLike, lm: Any = None) -> None:
        super().__init__(out_dir)
        self.lm = lm
