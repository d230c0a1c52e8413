"""A corpus run's folder: Arrow shards, their summaries, and the manifest that lists them.

Layout of ``out_dir``::

    manifest.json                 the run's settings, versions, source and its complete shards
    shards/shard-00000.arrow      one row per stored token (Arrow IPC stream, as ``datasets`` writes)
    shards/shard-00000.summary.safetensors
    summary.safetensors           every shard's summary merged (once the run is complete)
    state.json, dataset_info.json so that ``datasets.load_from_disk(out_dir)`` opens the shards

Every file is written under a temporary name and renamed into place when it is whole; a shard
is *complete* only once the manifest lists it, and the manifest is itself replaced atomically.
So a run killed at any moment leaves the complete shards as they were and no half shard: the
next run removes leftovers and writes the shard again.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa

MANIFEST = "manifest.json"
SHARDS = "shards"
SUMMARY = "summary.safetensors"
FORMAT = "ecco-corpus"
FORMAT_VERSION = 1
_TMP = ".tmp"


class RunMismatchError(ValueError):
    """The output folder holds a run made with other settings."""


class DiskFullError(OSError):
    """Not enough free disk space for the next shard."""


@dataclass
class ShardRecord:
    """What the manifest keeps of one complete shard."""

    index: int
    file: str
    summary: str
    first_doc: int
    n_docs: int
    n_tokens: int
    n_windows: int
    skipped_docs: list[int]
    bytes: int
    input_tokens: int
    padded_tokens: int
    seconds: float
    names: dict[str, str] = field(default_factory=dict)  # doc_id (as text, JSON's keys) -> document name


@dataclass
class Manifest:
    """The run's settings (``config``, compared on every resume), source, versions and shards."""

    config: dict
    source: dict
    versions: dict
    shards: list[ShardRecord] = field(default_factory=list)
    complete: bool = False
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    RECORD: ClassVar[type] = ShardRecord  # what one entry of ``shards`` is (another kind of run: its own)
    WHAT: ClassVar[str] = "corpus run"

    @property
    def done(self) -> set[int]:
        """Indices of the complete shards."""
        return {s.index for s in self.shards}

    def totals(self) -> dict:
        """Documents, tokens, skipped documents and bytes over the complete shards."""
        return {
            "documents": sum(s.n_docs for s in self.shards),
            "tokens": sum(s.n_tokens for s in self.shards),
            "windows": sum(s.n_windows for s in self.shards),
            "skipped_documents": sum(len(s.skipped_docs) for s in self.shards),
            "bytes": sum(s.bytes for s in self.shards),
            "padding_fraction": _padding(self.shards),
        }

    def to_json(self) -> dict:
        """The manifest as written to ``manifest.json``."""
        shards = sorted(self.shards, key=lambda s: s.index)
        return {
            "format": self.format,
            "format_version": self.format_version,
            "complete": self.complete,
            "config": self.config,
            "source": self.source,
            "versions": self.versions,
            "totals": self.totals(),
            "shards": [asdict(s) for s in shards],
        }

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        """A manifest read from ``manifest.json``."""
        return cls(
            config=data["config"],
            source=data["source"],
            versions=data["versions"],
            shards=[cls.RECORD(**s) for s in data["shards"]],
            complete=data["complete"],
            format=data["format"],
            format_version=data["format_version"],
        )


def _padding(shards: list[ShardRecord]) -> float:
    padded = sum(s.padded_tokens for s in shards)
    return 0.0 if not padded else 1.0 - sum(s.input_tokens for s in shards) / padded


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.arrow"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + _TMP)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_manifest(out_dir: Path, cls: type[Manifest] = Manifest) -> Manifest | None:
    """The manifest (of the kind of run ``cls`` describes) in ``out_dir``, or None when there is none."""
    path = out_dir / MANIFEST
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != cls.format:
        raise RunMismatchError(f"{path} is not an ecco {cls.WHAT} manifest (format {data.get('format')!r}); choose an "
                               "empty output folder.")
    if data.get("format_version", 0) > cls.format_version:
        raise RunMismatchError(
            f"{path} was written by a newer ecco ({cls.WHAT} format {data['format_version']}); upgrade ecco to read it."
        )
    return cls.from_json(data)


def write_manifest(out_dir: Path, manifest: Manifest) -> None:
    """Replace the manifest (and the ``datasets`` state files) atomically."""
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest.to_json(), indent=1))


def open_run(out_dir: Path, config: dict, source: dict, versions: dict, overwrite: bool = False,
             cls: type[Manifest] = Manifest) -> Manifest:
    """The manifest to continue in ``out_dir``: a new one for an empty folder, the existing one
    when its settings and source equal these; a :class:`RunMismatchError` otherwise. ``cls``:
    the manifest of another kind of run (a subclass)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        clear_run(out_dir, cls)
    existing = read_manifest(out_dir, cls)
    if existing is None:
        if any(p.name != SHARDS for p in out_dir.iterdir()):
            raise RunMismatchError(
                f"{out_dir} is not empty and holds no ecco {cls.WHAT}; choose an empty or new folder "
                "(ecco does not write shards among other files)."
            )
        manifest = cls(config=config, source=source, versions=versions)
        (out_dir / SHARDS).mkdir(exist_ok=True)
        write_manifest(out_dir, manifest)
        return manifest
    differences = [
        f"{key}: {existing.config.get(key)!r} there, {config.get(key)!r} now"
        for key in sorted(set(existing.config) | set(config))
        if existing.config.get(key) != config.get(key)
    ]
    if existing.source != source:
        differences.append(f"source: {existing.source!r} there, {source!r} now")
    if differences:
        raise RunMismatchError(
            f"{out_dir} holds a different {cls.WHAT} ({'; '.join(differences)}). Use another output folder, "
            "or overwrite=True (--overwrite) to delete that run and start again."
        )
    remove_leftovers(out_dir, existing)
    return existing


def clear_run(out_dir: Path, cls: type[Manifest] = Manifest) -> None:
    """Delete an earlier run's files (only ecco's own files) from ``out_dir``."""
    if (out_dir / MANIFEST).exists():
        read_manifest(out_dir, cls)  # refuses folders that are not ecco runs of this kind
    for name in (MANIFEST, SUMMARY, "state.json", "dataset_info.json"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / SHARDS, ignore_errors=True)


def remove_leftovers(out_dir: Path, manifest: Manifest) -> None:
    """Delete temporary files and shards that no manifest entry lists (a run stopped mid-shard)."""
    listed = {name for s in manifest.shards for name in (s.file, s.summary)}
    shards = out_dir / SHARDS
    shards.mkdir(exist_ok=True)
    for path in shards.iterdir():
        if f"{SHARDS}/{path.name}" not in listed:
            path.unlink()
    for path in out_dir.glob(f"*{_TMP}"):
        path.unlink()


def check_disk(out_dir: Path, needed: int) -> None:
    """Raise :class:`DiskFullError` unless ``needed`` bytes (plus 5 %) are free under ``out_dir``."""
    free = shutil.disk_usage(out_dir).free
    if free < needed * 1.05:
        raise DiskFullError(
            errno.ENOSPC,
            f"Not enough disk space in {out_dir}: the next shard needs about {needed / 2**20:.1f} MiB, "
            f"{free / 2**20:.1f} MiB are free. Free some space, capture fewer layers or hidden states, "
            "or write to another disk; the complete shards are kept and the run continues from there.",
        )


def table_schema(columns: dict[str, tuple[int, str]]) -> pa.Schema:
    """Row schema: token fields, then one fixed-size list column per captured array
    (``columns``: name -> (width, 'float16' | 'float32'))."""
    fields = [
        pa.field("doc_id", pa.int64()),
        pa.field("position", pa.int32()),
        pa.field("token_id", pa.int32()),
        pa.field("token", pa.string()),
    ]
    for name, (width, dtype) in columns.items():
        fields.append(pa.field(name, pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), width)))
    return pa.schema(fields)


def record_batch(schema: pa.Schema, rows: dict[str, object]) -> pa.RecordBatch:
    """One Arrow record batch from NumPy arrays (2-d for the captured columns) and token strings."""
    arrays = []
    for f in schema:
        value = rows[f.name]
        if pa.types.is_fixed_size_list(f.type):
            flat = pa.array(np.ascontiguousarray(value).reshape(-1), type=f.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, f.type.list_size))
        else:
            arrays.append(pa.array(value, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@contextlib.contextmanager
def shard_writer(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatchStreamWriter]:
    """An Arrow stream writer on a temporary file, renamed to ``path`` only if the block ends
    without error; a full disk raises :class:`DiskFullError` and leaves nothing behind."""
    tmp = path.with_name(path.name + _TMP)
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            yield writer
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC or "No space left" in str(error):
            raise DiskFullError(
                errno.ENOSPC,
                f"The disk filled up while writing {path.name}; the partial shard was removed and the complete "
                "shards are kept. Free some space and run the same call again to continue.",
            ) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_dataset_state(out_dir: Path, manifest: Manifest, schema: pa.Schema) -> None:
    """``state.json`` and ``dataset_info.json`` listing the complete shards in order, so that
    ``datasets.load_from_disk(out_dir)`` opens them memory-mapped."""
    from datasets import DatasetInfo, Features

    files = [{"filename": s.file} for s in sorted(manifest.shards, key=lambda s: s.index)]
    state = {
        "_data_files": files,
        "_fingerprint": f"ecco-corpus-{len(files)}-{manifest.totals()['tokens']}",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    info = DatasetInfo(description="ecco corpus run", features=Features.from_arrow_schema(schema))
    atomic_write_text(out_dir / "dataset_info.json", json.dumps(asdict(info)))
    atomic_write_text(out_dir / "state.json", json.dumps(state, indent=1))
