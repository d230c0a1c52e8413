"""``ecco attribute`` and ``ecco report --attribution RUN_DIR`` on a tiny model saved to a folder."""
from __future__ import annotations

import json

import ecco
from ecco.cli import main


def test_attribute_command_and_its_report(model_dir, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    items.write_text("\n".join(json.dumps(r) for r in [{"prompt": "a dog", "target": " ran"}, {"prompt": "the cat"}]))
    out = tmp_path / "exp"
    args = ["attribute", "--model", str(model_dir), "--input", str(items), "--methods", "grad_x_input,occlusion",
            "--out", str(out), "--generate", "2", "--steps", "4", "--seeds", "2", "--option", "internal_batch_size=4"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 items" in printed and "Input × gradient" in printed and "random (same items)" in printed
    run = ecco.load_experiment(out)
    assert run.settings["options"] == {"internal_batch_size": 4} and [r["target"] for r in run.rows()] == [" ran", None]
    shards = json.loads((out / "manifest.json").read_text())["shards"]
    assert main(args) == 0  # complete: nothing to do
    assert json.loads((out / "manifest.json").read_text())["shards"] == shards
    report = tmp_path / "report.html"
    assert main(["report", "--attribution", str(out), "--out", str(report)]) == 0
    html = report.read_text()
    assert "Faithfulness" in html and html.count('class="ecco-') > 1


def test_attribute_command_bad_input_is_one_line(model_dir, tmp_path, capsys):
    lines = tmp_path / "prompts.txt"
    lines.write_text("a dog\nthe cat\n")
    base = ["attribute", "--model", str(model_dir), "--out", str(tmp_path / "exp")]
    assert main(base + ["--input", str(tmp_path / "missing.txt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ecco: error:") and "missing.txt" in err[0]
    assert main(base + ["--input", str(lines), "--levels", "0.5,1.5"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("ecco: error: A removal level")
    assert main(base + ["--input", str(lines), "--option", "n_steps"]) == 1
    assert "is not NAME=VALUE" in capsys.readouterr().err
