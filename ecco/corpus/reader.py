"""A corpus run read back from disk: the shards as one memory-mapped ``datasets.Dataset``, the
merged summaries, and accessors by document, position, layer and neuron."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..checks import as_int
from .search import NeuronScore, Predicate, search, token_labels
from .store import MANIFEST, SUMMARY, Manifest, read_manifest
from .summaries import Summaries


@dataclass
class TokenContext:
    """The tokens around one stored token: ``before`` + ``token`` + ``after``."""

    doc_id: int
    position: int
    before: list[str]
    token: str
    after: list[str]

    def __str__(self) -> str:
        return "".join(self.before) + "[[" + self.token + "]]" + "".join(self.after)


class Corpus:
    """A corpus run in ``out_dir`` (complete, or the shards complete so far).

    ``dataset`` is the rows (one per stored token: ``doc_id``, ``position``, ``token_id``,
    ``token`` and one column per captured array, e.g. ``ffn.decoder.12``), memory-mapped.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise FileNotFoundError(f"{self.path / MANIFEST} not found: {self.path} holds no ecco corpus run.")
        self.manifest: Manifest = manifest

    def __repr__(self) -> str:
        totals = self.manifest.totals()
        state = "complete" if self.manifest.complete else f"incomplete, {len(self.manifest.shards)} shards so far"
        return (f"Corpus({str(self.path)!r}: {self.settings['model']}, {totals['documents']} documents, "
                f"{totals['tokens']} tokens, {len(self.columns)} captured columns, {state})")

    @property
    def settings(self) -> dict:
        """The run's settings (model, layers, dtype, windows, ...)."""
        return self.manifest.config

    @cached_property
    def _tables(self) -> list[pa.Table]:
        shards = sorted(self.manifest.shards, key=lambda s: s.index)
        return [pa.ipc.open_stream(pa.memory_map(str(self.path / s.file))).read_all() for s in shards]

    @cached_property
    def table(self) -> pa.Table:
        """Every complete shard as one Arrow table (memory-mapped, not copied)."""
        if not self._tables:
            raise ValueError(f"{self.path} has no complete shard yet.")
        return pa.concat_tables(self._tables)

    @cached_property
    def dataset(self) -> object:
        """The rows as a ``datasets.Dataset`` (memory-mapped)."""
        from datasets import load_from_disk

        return load_from_disk(str(self.path))

    @property
    def columns(self) -> list[str]:
        """The captured columns, e.g. ``['ffn.decoder.0', ...]``."""
        capture = self.settings["capture"]
        kinds = [k for k, on in (("ffn", capture["activations"]), ("hidden", capture["hidden_states"])) if on]
        return [f"{kind}.{capture['stack']}.{layer}" for layer in capture["layers"] for kind in kinds]

    @cached_property
    def summary(self) -> Summaries:
        """The merged summaries (of the complete shards so far, for an unfinished run)."""
        path = self.path / SUMMARY
        if self.manifest.complete and path.exists():
            return Summaries.load(path)
        parts = [Summaries.load(self.path / s.summary) for s in sorted(self.manifest.shards, key=lambda s: s.index)]
        if not parts:
            raise ValueError(f"{self.path} has no complete shard yet.")
        return Summaries.merge_all(parts)

    @cached_property
    def _index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row numbers sorted by (doc, position), with the sorted doc ids and positions."""
        docs = self.table.column("doc_id").to_numpy()
        positions = self.table.column("position").to_numpy()
        order = np.lexsort((positions, docs))
        return order, docs[order], positions[order]

    def _span(self, doc: int) -> tuple[int, int]:
        """Where document ``doc``'s tokens are in the sorted index."""
        doc = as_int(doc, "doc")
        docs = self._index[1]
        start, stop = int(np.searchsorted(docs, doc, "left")), int(np.searchsorted(docs, doc, "right"))
        if start == stop:
            raise KeyError(f"Document {doc} has no stored tokens here (empty, skipped, or not in a complete shard).")
        return start, stop

    def rows(self, doc: int) -> np.ndarray:
        """Row numbers of document ``doc``'s tokens, in position order."""
        start, stop = self._span(doc)
        return self._index[0][start:stop]

    def _locate(self, doc: int, position: int) -> tuple[int, int, int]:
        """Document ``doc``'s span in the sorted index and where token ``position`` is in it."""
        start, stop = self._span(doc)
        position = as_int(position, "position")
        index = start + int(np.searchsorted(self._index[2][start:stop], position))
        if index >= stop or self._index[2][index] != position:
            raise KeyError(f"Document {doc} has no token at position {position} (it has {stop - start} tokens).")
        return start, stop, index

    def following_ids(self) -> np.ndarray:
        """Per row (row order): the id of the token at the next position of the same document, or
        -1 where that token is not stored (a document's end)."""
        order, docs, positions = self._index
        ids = self.table.column("token_id").to_numpy()[order]
        out = np.empty(len(order), dtype=np.int64)
        out[order] = next_ids(docs, positions, ids)
        return out

    def row(self, doc: int, position: int) -> int:
        """The row of token ``position`` of document ``doc``."""
        return int(self._index[0][self._locate(doc, position)[2]])

    def tokens(self, doc: int) -> list[str]:
        """The text of document ``doc``'s tokens."""
        return self.table.column("token").take(pa.array(self.rows(doc))).to_pylist()

    def token_ids(self, doc: int) -> list[int]:
        """Document ``doc``'s token ids."""
        return self.table.column("token_id").take(pa.array(self.rows(doc))).to_pylist()

    def document_name(self, doc: int) -> str:
        """A name for document ``doc``: its file's path for a folder or the standard library,
        else ``'document <doc>'``."""
        doc = as_int(doc, "doc")
        return self._names.get(doc, f"document {doc}")

    @cached_property
    def _names(self) -> dict[int, str]:
        return {int(k): v for s in self.manifest.shards for k, v in s.names.items()}

    def _column(self, kind: str, layer: int, stack: str | None) -> str:
        stack = stack or self.settings["capture"]["stack"]
        name = f"{kind}.{stack}.{as_int(layer, 'layer')}"
        if name not in self.columns:
            raise KeyError(f"{name} was not captured in this run; the captured columns are {self.columns}.")
        return name

    def array(self, column: str, rows: np.ndarray | None = None) -> np.ndarray:
        """A captured column as a (rows, width) array in the stored dtype (all rows if ``rows`` is None)."""
        chunked = self.table.column(column)
        if rows is not None:
            chunked = chunked.take(pa.array(rows))
        width = chunked.type.list_size
        flat = np.concatenate([c.flatten().to_numpy(zero_copy_only=False) for c in chunked.chunks]) if chunked.num_chunks \
            else np.zeros(0)
        return flat.reshape(-1, width)

    def activations(self, layer: int, doc: int | None = None, stack: str | None = None) -> np.ndarray:
        """FFN activations of ``layer``: (tokens, neurons) of document ``doc`` in position order,
        or of every stored token in row order when ``doc`` is None."""
        return self.array(self._column("ffn", layer, stack), None if doc is None else self.rows(doc))

    def hidden_states(self, layer: int, doc: int | None = None, stack: str | None = None) -> np.ndarray:
        """Hidden states (output of block ``layer``): (tokens, hidden), like :meth:`activations`."""
        return self.array(self._column("hidden", layer, stack), None if doc is None else self.rows(doc))

    def window(self, doc: int, position: int, width: int) -> tuple[np.ndarray, int]:
        """The rows of the ``width`` tokens on each side of token (``doc``, ``position``), cut at the
        document's ends, in position order, and where that token is among them."""
        start, stop, index = self._locate(doc, position)
        first, last = max(start, index - width), min(stop, index + width + 1)
        return self._index[0][first:last], index - first

    def context(self, doc: int, position: int, width: int = 8) -> TokenContext:
        """The ``width`` tokens on each side of token (``doc``, ``position``)."""
        rows, here = self.window(doc, position, width)
        tokens = self.table.column("token").take(pa.array(rows)).to_pylist()  # the window's tokens only
        return TokenContext(int(doc), int(position), tokens[:here], tokens[here], tokens[here + 1 :])

    def top_tokens(self, layer: int, neuron: int, k: int | None = None, width: int = 8,
                   stack: str | None = None) -> list[tuple[float, TokenContext]]:
        """The tokens that activate ``neuron`` of ``layer`` most, with their contexts (from the summaries)."""
        summary = self.summary.neurons[self._column("ffn", layer, stack)]
        neuron = as_int(neuron, "neuron", 0, summary.n_neurons - 1)
        values, docs, positions = summary.top_values[neuron], summary.top_doc_ids[neuron], summary.top_positions[neuron]
        keep = [i for i in range(len(values)) if docs[i] >= 0][: k or None]
        return [(float(values[i]), self.context(int(docs[i]), int(positions[i]), width)) for i in keep]

    def search(self, predicate: Predicate, top: int = 20, layers: Sequence[int] | None = None) -> list[NeuronScore]:
        """Which neurons fire on X: the ``top`` captured FFN neurons (of ``layers``, default all)
        whose activation best separates the tokens matching ``predicate`` from the rest, by AUROC,
        with the precision of each neuron's top-k tokens. ``predicate``: token strings, a regular
        expression over token text, or ``fn(token, before) -> bool`` (``before``: the document's
        text before the token)."""
        capture = self.settings["capture"]
        if not capture["activations"]:
            raise ValueError("This run stored no FFN activations (activations=False); search needs them.")
        chosen = capture["layers"] if layers is None else [as_int(n, "layer") for n in layers]
        columns = [self._column("ffn", layer, None) for layer in chosen]
        try:
            summary = self.summary.neurons
        except KeyError as error:
            raise ValueError("This run has no neuron summaries (summaries=False); search reads their top-k.") from error
        docs = self.table.column("doc_id").to_numpy()
        positions = self.table.column("position").to_numpy().astype(np.int64)
        labels = token_labels(self.table.column("token").to_pylist(), docs, positions, predicate)
        tops = {c: np.where(summary[c].top_doc_ids >= 0, summary[c].top_doc_ids * 2**32 + summary[c].top_positions, -1)
                for c in columns if c in summary}
        missing = [c for c in columns if c not in tops]
        if missing:
            raise ValueError(f"This run has no neuron summaries for {missing} (summaries=False); search reads their top-k.")
        return search(self.table, columns, labels, docs * 2**32 + positions, tops)[: as_int(top, "top", 1)]

    def bytes_per_token_per_layer(self) -> dict[str, float]:
        """Bytes one token takes on disk for each captured column (and all of them together)."""
        tokens = max(1, self.manifest.totals()["tokens"])
        sizes = {name: self.table.column(name).nbytes / tokens for name in self.columns}
        sizes["total"] = self.manifest.totals()["bytes"] / tokens
        return sizes


def next_ids(doc_ids: np.ndarray, positions: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """For tokens in (doc, position) order: the next token's id where it is the next position of
    the same document, else -1."""
    out = np.full(len(token_ids), -1, dtype=np.int64)
    follows = (doc_ids[1:] == doc_ids[:-1]) & (positions[1:] == positions[:-1] + 1)
    out[:-1][follows] = token_ids[1:][follows]
    return out


def load_corpus(out_dir: str | os.PathLike) -> Corpus:
    """A corpus run written by ``lm.run_corpus`` / ``ecco corpus``, read back from ``out_dir``."""
    return Corpus(out_dir)
