"""``ecco corpus`` on a tiny model saved to a folder: the run it writes, continuing it, and one
clear line for bad input."""
from __future__ import annotations

import json

import numpy as np

import ecco
from ecco.cli import main
from ecco.corpus.predicates import code_queries


def test_corpus_command_writes_a_run_and_continues_it(model_dir, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text(f"file {i}: " + "for item in items: total += item\n" * (i + 1))
    out = tmp_path / "run"
    args = ["corpus", "--model", str(model_dir), "--input", str(docs), "--out", str(out), "--layers", "0,2",
            "--max-tokens", "32", "--overlap", "4", "--batch-tokens", "64"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 documents" in printed
    run = ecco.load_corpus(out)
    assert run.columns == ["ffn.decoder.0", "ffn.decoder.2"]
    lm = ecco.from_pretrained(str(model_dir), activations=True, verbose=False)
    text = (docs / "0.txt").read_text()
    expected = lm(text).activations["decoder"][0, 2].T  # (batch, layers, neurons, positions) -> layer 2
    stored = run.activations(2, 0).astype(np.float32)
    assert stored.shape == expected.shape  # every token stored (the file is longer than one window) ...
    np.testing.assert_allclose(stored[:32], expected[:32], atol=2e-3, rtol=2e-3)  # ... the first window as read whole
    manifest = json.loads((out / "manifest.json").read_text())
    assert main(args) == 0  # a complete run: nothing to do, same manifest
    assert json.loads((out / "manifest.json").read_text())["shards"] == manifest["shards"]


def test_corpus_command_bad_input_is_one_line(model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["corpus", "--model", str(model_dir), "--input", str(tmp_path / "missing"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ecco: error:") and "missing" in err[0]  # before the model loads
    assert main(["corpus", "--model", str(model_dir), "--input", "stdlib", "--max-files", "1", "--out", str(out),
                 "--layers", "7"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ecco: error:") and "0..2" in err[-1]


def test_corpus_report(model_dir, tmp_path, capsys):
    docs = tmp_path / "code"
    docs.mkdir()
    for i in range(3):
        (docs / f"m{i}.py").write_text(f"def f{i}(x):\n    if x:\n        return [x, 'a{i}']\n    return (x)\n" * 3)
    out = tmp_path / "run"
    assert main(["corpus", "--model", str(model_dir), "--input", str(docs), "--out", str(out), "--layers", "0,1",
                 "--max-tokens", "32", "--overlap", "4"]) == 0
    page = tmp_path / "report.html"
    assert main(["report", "--corpus", str(out), "--out", str(page), "--top", "3", "--neurons", "1:7",
                 "--factors", "2", "--factor-layers", "1"]) == 0
    html = page.read_text()
    run = ecco.load_corpus(out)
    for name, predicate in code_queries().items():
        best = run.search(predicate, top=1)[0]
        assert name in html and f"layer {best.layer} neuron {best.neuron}" in html
    assert html.count('class="ecco-view ecco-view-neuron_dashboard') == 3 * 2 + 1 + 2  # searches, best, 1:7, factors
    assert "m0.py" in html and "not loaded" not in html  # documents named; the model loaded, direct effects shown

    assert main(["report", "--corpus", str(out), "--out", str(page), "--search", "never=^zzz$", "--search", r"paren=\(",
                 "--no-model"]) == 0
    err = capsys.readouterr().err
    assert "'never' skipped" in err and "matches no token" in err
    html = page.read_text()
    assert "paren" in html and "not loaded: no direct effects" in html
    assert main(["report", "--corpus", str(out), "--out", str(page), "--neurons", "1-7", "--no-model"]) == 1
    assert "is not LAYER:NEURON" in capsys.readouterr().err
    assert main(["report", "--corpus", str(tmp_path / "nothing"), "--out", str(page)]) == 1
    assert "holds no ecco corpus run" in capsys.readouterr().err
