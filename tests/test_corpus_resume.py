"""A corpus run killed mid-way (a real SIGKILL of a subprocess, and Ctrl-C in process) and run
again: every document once, no half shard, and the same shards and summaries as a run that
was never interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ecco
from ecco.corpus import engine as engine_module
from tests import tiny

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {"max_tokens": 40, "overlap": 8, "batch_tokens": 80, "shard_tokens": 40, "progress": False}

SCRIPT = """
import sys, time
from tests import tiny
import ecco
from ecco.corpus import engine
from tests.test_corpus_resume import OPTIONS, texts
slow = engine.Engine.run
def run(self, windows):
    time.sleep(0.15)  # slow enough for the parent to kill it between shards or mid-shard
    return slow(self, windows)
engine.Engine.run = run
lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
lm.run_corpus(texts(), sys.argv[1], **OPTIONS)
"""


def texts() -> list[str]:
    """Forty small documents (the standard library's own lines, numbered)."""
    lines = Path(os.__file__).read_text(encoding="utf-8").splitlines()
    return [f"{i}: " + " ".join(lines[i * 7 : i * 7 + 6]) for i in range(40)]


def _lm() -> ecco.LM:
    return ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)


def assert_same_run(a, b) -> None:
    """Same rows, bit for bit, and the same summaries (top-k and histograms exactly)."""
    assert a.table.column("doc_id").to_pylist() == b.table.column("doc_id").to_pylist()
    assert a.table.column("token_id").to_pylist() == b.table.column("token_id").to_pylist()
    for column in a.columns:
        np.testing.assert_array_equal(a.array(column), b.array(column))
    for name, summary in a.summary.neurons.items():
        other = b.summary.neurons[name]
        np.testing.assert_array_equal(summary.top_values, other.top_values)
        np.testing.assert_array_equal(summary.top_doc_ids, other.top_doc_ids)
        np.testing.assert_array_equal(summary.top_positions, other.top_positions)
        np.testing.assert_array_equal(summary.histogram, other.histogram)
        np.testing.assert_allclose(summary.mean, other.mean, rtol=1e-12)
        np.testing.assert_allclose(summary.std, other.std, rtol=1e-9)
    if a.summary.lens is not None:
        np.testing.assert_allclose(a.summary.lens.mean_kl, b.summary.lens.mean_kl, rtol=1e-12)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _lm().run_corpus(texts(), tmp_path_factory.mktemp("whole"), **OPTIONS)


def test_killed_subprocess_resumes_to_the_same_run(tmp_path, reference):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:
            manifest = out / "manifest.json"
            if manifest.exists() and '"index": 1' in manifest.read_text():
                break
            time.sleep(0.05)
        assert child.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)  # into the next shard
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    partial = ecco.load_corpus(out)
    assert not partial.manifest.complete and 2 <= len(partial.manifest.shards) < len(reference.manifest.shards)
    resumed = _lm().run_corpus(texts(), out, **OPTIONS)
    assert resumed.manifest.complete
    assert not [p for p in (out / "shards").iterdir() if p.name.endswith(".tmp")]
    docs = resumed.table.column("doc_id").to_numpy()
    assert sorted(set(docs.tolist())) == list(range(40))
    assert_same_run(resumed, reference)


def test_ctrl_c_mid_shard_keeps_the_complete_shards(tmp_path, reference, monkeypatch):
    calls = {"n": 0}
    real = engine_module.Engine.run

    def interrupted(self, windows):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(self, windows)

    monkeypatch.setattr(engine_module.Engine, "run", interrupted)
    out = tmp_path / "ctrl-c"
    with pytest.raises(KeyboardInterrupt):
        _lm().run_corpus(texts(), out, **OPTIONS)
    shards = sorted(p.name for p in (out / "shards").iterdir())
    listed = ecco.load_corpus(out).manifest.shards
    assert shards == sorted(n for s in listed for n in (Path(s.file).name, Path(s.summary).name))
    monkeypatch.undo()
    torch.manual_seed(0)
    assert_same_run(_lm().run_corpus(texts(), out, **OPTIONS), reference)
