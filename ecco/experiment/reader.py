"""Reading an attribution experiment back: its settings, items (streamed a shard at a time) and
the comparison of its methods' faithfulness."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from ..attribution import METHODS
from ..checks import as_int
from .compare import compare
from .store import Manifest, ShardRecord, read_manifest


class Experiment:
    """An attribution experiment's folder (complete or stopped part-way)."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.path = Path(out_dir)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise FileNotFoundError(f"{self.path} holds no attribution experiment (no manifest.json); run "
                                    "lm.attribute_dataset(..., out_dir=...) or `ecco attribute` first.")
        self.manifest: Manifest = manifest
        self.settings: dict = manifest.config

    @property
    def methods(self) -> list[str]:
        """The methods the experiment ran, in order."""
        return list(self.settings["methods"])

    @property
    def complete(self) -> bool:
        """Whether every item was run."""
        return self.manifest.complete

    @property
    def shards(self) -> list[ShardRecord]:
        """The complete shards, in order."""
        return sorted(self.manifest.shards, key=lambda s: s.index)

    def __len__(self) -> int:
        return self.manifest.totals()["items"]

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"stopped after {len(self)} of {self.manifest.source['n_items']} items"
        return (f"{type(self).__name__}({str(self.path)!r}, model={self.settings['model']!r}, "
                f"methods={self.methods}, items={len(self)}, {state})")

    def failures(self) -> dict[str, str]:
        """Per method that could not run on some item, the first reason recorded."""
        out: dict[str, str] = {}
        for shard in self.shards:
            for name, reason in shard.failures.items():
                out.setdefault(name, reason)
        return out

    def rows(self, columns: Sequence[str] | None = None) -> Iterator[dict]:
        """Every item's row (or only ``columns``) in item order, one shard in memory at a time."""
        for shard in self.shards:
            yield from self._read(shard, columns)

    def row(self, item: int) -> dict:
        """The row of item ``item`` (its index in the source)."""
        item = as_int(item, "item", 0)
        for shard in self.shards:
            if shard.first_item <= item < shard.first_item + shard.n_items:
                return next(r for r in self._read(shard) if r["item_id"] == item)
        total = self.manifest.source["n_items"]
        raise IndexError(f"item={item} is not in this experiment: it holds items 0..{total - 1}"
                         + ("" if self.complete else f", of which {len(self)} are done so far") + ".")

    def _read(self, shard: ShardRecord, columns: Sequence[str] | None = None) -> Iterator[dict]:
        with pa.memory_map(str(self.path / shard.file)) as source:
            reader = pa.ipc.open_stream(source)
            for batch in reader:
                if columns is not None:
                    batch = batch.select(list(columns))
                yield from batch.to_pylist()

    def comparison(self, confidence: float = 0.95) -> dict:
        """Per method, mean faithfulness scores with bootstrap intervals over the items, beside
        the random baseline, and the mean deletion / insertion curves (the comparison view's data)."""
        if not self.settings["faithfulness"]:
            raise ValueError("This experiment was run with faithfulness=False: there are no scores to compare. Run it "
                             "again (another folder) with faithfulness=True.")
        reports = (json.loads(r["faithfulness"]) for r in self.rows(["faithfulness"]) if r["faithfulness"])
        labels = [(m, METHODS[m].label if m in METHODS else m) for m in self.methods]
        return compare(reports, labels, self.failures(), model=self.settings["model"], steps=self.settings["steps"],
                       confidence=confidence)

    def speed(self) -> dict:
        """Seconds per method and explained tokens per second over the complete shards."""
        seconds = {m: sum(s.method_seconds.get(m, 0.0) for s in self.shards) for m in self.methods}
        total = sum(s.seconds for s in self.shards)
        tokens = self.manifest.totals()["tokens"]
        return {"items": len(self), "explained_tokens": tokens, "seconds": total, "method_seconds": seconds,
                "tokens_per_second": tokens / total if total else None}
