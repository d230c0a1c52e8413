"""An attribution experiment's folder: Arrow shards of items and the manifest that lists them.

The folder works like a corpus run's (:mod:`ecco.corpus.store`, whose write-then-rename,
disk checks and ``datasets`` state files it uses): ``manifest.json`` (settings, source,
versions, complete shards), ``shards/shard-00000.arrow`` (one row per item) and the state
files that let ``datasets.load_from_disk(out_dir)`` open the shards. A shard is complete only
once the manifest lists it, so a run stopped at any moment keeps every shard it reported and
the next run continues after them.

Row columns: ``item_id``, ``prompt``, ``target`` (null when generated), ``generated``,
``token_ids``, ``tokens``, ``continues_word``, ``special``, ``n_input``, ``targets`` (token
positions of the explained tokens), ``target_ids``, ``target_scores`` (the model's score of
each) and ``target_probs`` (its probability); per method ``<m>.values`` / ``<m>.raw`` (per
target, one score per source token: Ecco's normalised and signed values),
``<m>.completeness``, ``<m>.error`` (null, or why it could not run), ``<m>.explained`` (the
score it explained), ``<m>.seconds``; and ``faithfulness``, a JSON document of the item's
scores per method beside the random baseline's.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from ..corpus import store as corpus_store
from ..corpus.store import SHARDS, check_disk, shard_name, shard_writer, write_dataset_state, write_manifest
from .job import ItemJob, Prepared, Settings

FORMAT = "ecco-attribution"
FORMAT_VERSION = 1
_ITEM_BYTES = 64 * 1024  # a generous estimate of one stored item, for the disk check


@dataclass
class ShardRecord:
    """What the manifest keeps of one complete shard."""

    index: int
    file: str
    first_item: int
    n_items: int
    n_targets: int
    bytes: int
    seconds: float
    method_seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # method -> first reason it could not run
    summary: str = ""  # no summary file (the corpus store's leftover check reads this name)


@dataclass
class Manifest(corpus_store.Manifest):
    """The experiment's settings, source, versions and complete shards (a corpus manifest's
    file, with its own format name and shard records)."""

    shards: list[ShardRecord] = field(default_factory=list)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    RECORD: ClassVar[type] = ShardRecord
    WHAT: ClassVar[str] = "attribution experiment"

    def totals(self) -> dict:
        """Items, explained tokens (``tokens``, as the ``datasets`` state names them) and bytes."""
        return {"items": sum(s.n_items for s in self.shards), "tokens": sum(s.n_targets for s in self.shards),
                "bytes": sum(s.bytes for s in self.shards)}


def read_manifest(out_dir: Path) -> Manifest | None:
    """The experiment manifest in ``out_dir``, or None when there is none."""
    return corpus_store.read_manifest(out_dir, Manifest)


def schema(methods: Sequence[str]) -> pa.Schema:
    """The row schema of an experiment with these methods."""
    ints, floats = pa.list_(pa.int32()), pa.list_(pa.float32())
    fields = [
        pa.field("item_id", pa.int64()), pa.field("prompt", pa.string()), pa.field("target", pa.string()),
        pa.field("generated", pa.bool_()), pa.field("token_ids", ints), pa.field("tokens", pa.list_(pa.string())),
        pa.field("continues_word", pa.list_(pa.bool_())), pa.field("special", pa.list_(pa.bool_())),
        pa.field("n_input", pa.int32()), pa.field("targets", ints), pa.field("target_ids", ints),
        pa.field("target_scores", pa.list_(pa.float64())), pa.field("target_probs", pa.list_(pa.float64())),
    ]
    for m in methods:
        fields += [pa.field(f"{m}.values", pa.list_(floats)), pa.field(f"{m}.raw", pa.list_(floats)),
                   pa.field(f"{m}.completeness", pa.list_(pa.float64())), pa.field(f"{m}.error", pa.string()),
                   pa.field(f"{m}.explained", pa.string()),
                   pa.field(f"{m}.seconds", pa.float64())]
    fields.append(pa.field("faithfulness", pa.string()))
    return pa.schema(fields)


def shard_plan(items: Sequence[Prepared], shard_items: int) -> Iterator[tuple[int, list[Prepared]]]:
    """(index, items) of every shard: consecutive runs of ``shard_items`` items."""
    for index, start in enumerate(range(0, len(items), shard_items)):
        yield index, list(items[start : start + shard_items])


def process_shard(job: ItemJob, index: int, items: list[Prepared], out_dir: Path, progress=None) -> ShardRecord:
    """Run and write one shard (a row per item, written as it is done); its record once the file is whole.
    ``progress(item_row)`` is called after each item."""
    started = time.perf_counter()
    methods = job.settings.methods
    table_schema = schema(methods)
    check_disk(out_dir, len(items) * _ITEM_BYTES)
    path = out_dir / SHARDS / shard_name(index)
    n_targets, seconds, failures = 0, dict.fromkeys(methods, 0.0), {}
    with shard_writer(path, table_schema) as writer:
        for item in items:
            row = job.run(item)
            writer.write_batch(pa.RecordBatch.from_pylist([row], schema=table_schema))
            n_targets += len(row["targets"])
            for m in methods:
                seconds[m] += row[f"{m}.seconds"]
                if row[f"{m}.error"] and m not in failures:
                    failures[m] = row[f"{m}.error"]
            if progress is not None:
                progress(row)
    return ShardRecord(index=index, file=f"{SHARDS}/{path.name}", first_item=items[0].item.item_id, n_items=len(items),
                       n_targets=n_targets, bytes=path.stat().st_size, seconds=time.perf_counter() - started,
                       method_seconds=seconds, failures=failures)


def register(out_dir: Path, manifest: Manifest, record: ShardRecord, settings: Settings) -> None:
    """List a complete shard in the manifest (and the ``datasets`` state files)."""
    manifest.shards.append(record)
    write_dataset_state(out_dir, manifest, schema(settings.methods))
    write_manifest(out_dir, manifest)
