"""A corpus run: documents -> windows -> shards of batches -> Arrow files and summaries.

Shards are runs of whole documents (consecutive in the source's order) holding about
``shard_tokens`` tokens; they are the unit of writing, resuming and distribution. The plan of
shards is a pure function of the source, the tokenizer and the settings, so a resumed run and
every Ray worker cut the corpus the same way. :func:`process_shard` is the one piece of work,
the same on one machine and on a cluster.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import torch
import transformers
from transformers import PreTrainedTokenizerBase

from .engine import BatchRows, CaptureSpec, Engine
from .pipeline import Stage
from .sources import Document, Source
from .store import (
    SHARDS,
    Manifest,
    ShardRecord,
    check_disk,
    record_batch,
    shard_name,
    shard_writer,
    table_schema,
    write_dataset_state,
    write_manifest,
)
from .summaries import LensSummary, NeuronSummary, Summaries
from .windows import Window, batches, windows_for

TOKENIZE_GROUP = 64  # documents tokenized per tokenizer call while planning


@dataclass(frozen=True)
class Settings:
    """Everything that decides a run's contents; a resumed run must have the same."""

    model: str
    model_class: str
    capture: CaptureSpec
    max_tokens: int
    overlap: int
    batch_tokens: int
    shard_tokens: int
    top_k: int
    hist_edges: tuple[float, ...]
    summaries: bool

    def to_json(self) -> dict:
        """The settings as stored in the manifest."""
        data = asdict(self)
        data["capture"]["layers"] = list(self.capture.layers)
        data["hist_edges"] = list(self.hist_edges)
        return data


@dataclass
class ShardPlan:
    """Shard ``index``: documents ``first_doc`` .. ``first_doc + n_docs - 1`` and their windows."""

    index: int
    first_doc: int
    n_docs: int = 0
    windows: list[Window] = field(default_factory=list)
    skipped_docs: list[int] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # doc_id -> name, for sources that name documents

    @property
    def n_tokens(self) -> int:
        """Tokens the shard stores."""
        return sum(w.n_stored for w in self.windows)


def versions() -> dict:
    """Library versions written into the manifest."""
    try:
        ecco = metadata.version("ecco")
    except metadata.PackageNotFoundError:
        ecco = "unknown"
    return {"ecco": ecco, "transformers": transformers.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}


def plan_shards(
    source: Source, tokenizer: PreTrainedTokenizerBase, settings: Settings
) -> Iterator[ShardPlan]:
    """Shards of whole documents, each closed once it holds ``shard_tokens`` stored tokens."""
    current = ShardPlan(index=0, first_doc=0)
    group: list[Document] = []

    def flush() -> Iterator[ShardPlan]:
        nonlocal current
        by_doc, skipped = windows_for(tokenizer, group, settings.max_tokens, settings.overlap)
        for doc in group:
            current.n_docs += 1
            if doc.name:
                current.names[doc.doc_id] = doc.name
            if doc.doc_id in skipped:
                current.skipped_docs.append(doc.doc_id)
            current.windows.extend(by_doc.get(doc.doc_id, []))
            if current.n_tokens >= settings.shard_tokens:
                yield current
                current = ShardPlan(index=current.index + 1, first_doc=doc.doc_id + 1)
        group.clear()

    for doc in source.documents():
        group.append(doc)
        if len(group) == TOKENIZE_GROUP:
            yield from flush()
    yield from flush()
    if current.n_docs:
        yield current


def bytes_per_token(settings: Settings, engine: Engine) -> int:
    """Bytes one stored token takes in a shard (captured arrays plus token fields, roughly)."""
    ffn, hidden = engine.widths()
    columns = settings.capture.columns(ffn, hidden)
    return sum(width * (2 if dtype == "float16" else 4) for width, dtype in columns.values()) + 32


def empty_summaries(settings: Settings, engine: Engine) -> Summaries:
    """Summaries with nothing seen, for the captured neurons (and the lens)."""
    ffn, _ = engine.widths()
    capture = settings.capture
    neurons = {
        f"ffn.{capture.stack}.{layer}": NeuronSummary.empty(ffn, k=settings.top_k, edges=settings.hist_edges)
        for layer in capture.layers
        if capture.activations and settings.summaries
    }
    n_layers = engine.runner.spec.stacks[capture.stack].n_layers
    lens = LensSummary.empty(n_layers) if capture.lens and settings.summaries else None
    return Summaries(neurons=neurons, lens=lens)


def process_shard(engine: Engine, settings: Settings, plan: ShardPlan, out_dir: Path) -> tuple[ShardRecord, Summaries]:
    """Capture, summarise and write one shard; its record and summaries once both files are whole."""
    started = time.perf_counter()
    ffn, hidden = engine.widths()
    schema = table_schema(settings.capture.columns(ffn, hidden))
    check_disk(out_dir, plan.n_tokens * bytes_per_token(settings, engine))
    summaries = empty_summaries(settings, engine)
    path = out_dir / SHARDS / shard_name(plan.index)
    padded = inputs = 0

    def consume(rows: BatchRows) -> None:  # on the stage's thread, while the next batch runs
        doc_ids, positions = torch.from_numpy(rows.doc_ids), torch.from_numpy(rows.positions)
        for name, summary in summaries.neurons.items():
            summary.update(rows.arrays[name], doc_ids, positions)
        if summaries.lens is not None:
            summaries.lens.update(rows.entropy, rows.kl)
        columns = {name: array.numpy() for name, array in rows.arrays.items()}
        columns.update(doc_id=rows.doc_ids, position=rows.positions, token_id=rows.token_ids, token=rows.tokens)
        writer.write_batch(record_batch(schema, columns))

    with shard_writer(path, schema) as writer, Stage(consume) as stage:
        for batch in batches(plan.windows, settings.batch_tokens):
            padded += len(batch) * max(len(w.ids) for w in batch)
            inputs += sum(len(w.ids) for w in batch)
            rows = engine.run(batch)
            if rows.n_rows:
                stage.put(rows)
    summary_path = path.with_name(path.name.replace(".arrow", ".summary.safetensors"))
    summaries.save(summary_path)
    record = ShardRecord(
        index=plan.index,
        file=f"{SHARDS}/{path.name}",
        summary=f"{SHARDS}/{summary_path.name}",
        first_doc=plan.first_doc,
        n_docs=plan.n_docs,
        n_tokens=plan.n_tokens,
        n_windows=len(plan.windows),
        skipped_docs=plan.skipped_docs,
        bytes=path.stat().st_size,
        input_tokens=inputs,
        padded_tokens=padded,
        seconds=time.perf_counter() - started,
        names={str(k): v for k, v in plan.names.items()},
    )
    return record, summaries


def register(out_dir: Path, manifest: Manifest, record: ShardRecord, engine: Engine, settings: Settings) -> None:
    """List a complete shard in the manifest (and the ``datasets`` state files)."""
    manifest.shards.append(record)
    ffn, hidden = engine.widths()
    write_dataset_state(out_dir, manifest, table_schema(settings.capture.columns(ffn, hidden)))
    write_manifest(out_dir, manifest)


def check_plan(plan: ShardPlan, manifest: Manifest) -> bool:
    """Whether ``plan`` is already complete; a ValueError when the source changed under the run."""
    done = {s.index: s for s in manifest.shards}
    record = done.get(plan.index)
    if record is None:
        return False
    if (record.first_doc, record.n_docs, record.n_tokens) != (plan.first_doc, plan.n_docs, plan.n_tokens):
        raise ValueError(
            f"The source changed since shard {plan.index} was written (documents {record.first_doc}+{record.n_docs}, "
            f"{record.n_tokens} tokens then; {plan.first_doc}+{plan.n_docs}, {plan.n_tokens} now). Write this run "
            "to a new folder, or overwrite=True to start again."
        )
    return True


def finish(out_dir: Path, manifest: Manifest) -> Summaries | None:
    """Merge every shard's summaries in shard order, save them, and mark the run complete."""
    from .store import SUMMARY

    ordered = sorted(manifest.shards, key=lambda s: s.index)
    parts = [Summaries.load(out_dir / s.summary) for s in ordered]
    merged = Summaries.merge_all(parts) if parts else None
    if merged is not None:
        merged.save(out_dir / SUMMARY)
    manifest.complete = True
    write_manifest(out_dir, manifest)
    return merged
