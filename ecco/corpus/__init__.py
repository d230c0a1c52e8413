"""Corpus runs: captures over many documents in one streaming pass, to Arrow shards on disk.

``lm.run_corpus(source, out_dir, layers=...)`` writes a run; :func:`load_corpus` reads it back.
Sources: lists of texts, ``datasets`` datasets, folders or globs of files, and
:func:`python_stdlib`, the Python standard library's own source (a real corpus on every machine),
and :func:`python_docstrings`, its docstrings (English prose).
"""
from .reader import Corpus, TokenContext, load_corpus
from .sources import Document, Source, as_source, python_docstrings, python_stdlib
from .summaries import LensSummary, NeuronSummary, Summaries

__all__ = [
    "Corpus", "Document", "LensSummary", "NeuronSummary", "Source", "Summaries", "TokenContext", "as_source", "load_corpus",
    "python_docstrings", "python_stdlib",
]
