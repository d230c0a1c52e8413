"""`ecco demo` end to end: the README's command writes a report that works offline."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_demo_writes_offline_report(tmp_path: Path, open_html) -> None:
    out = tmp_path / "report.html"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ecco.cli", "demo", "--prompt", "The capital of France is", "--generate", "4",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"report: {out.resolve()}" in done.stdout
    continuation = done.stdout.splitlines()[0]
    assert continuation.startswith("The capital of France is") and len(continuation) > len("The capital of France is")
    page = open_html(out.read_text(encoding="utf-8"))
    tokens = page.locator(".ecco-view-tokens .ecco-token")
    assert tokens.count() >= 6
    assert page.locator(".ecco-view-tokens .ecco-output").count() == 4
    assert "Paris" in page.locator(".ecco-view-tokens").inner_text()
    attribution = page.locator(".ecco-view-attribution")
    assert attribution.locator(".ecco-target").count() == 4
    values = [float(v) for v in attribution.locator(".ecco-source").evaluate_all("els => els.map(e => e.dataset.value)")]
    assert len(values) >= 5 and abs(sum(values) - 1) < 1e-6  # first target selected, normalised scores
    # The report opens with what was run, and each view's title says what it shows.
    rows = dict(zip(page.locator(".ecco-page-summary th").all_inner_texts(),
                    page.locator(".ecco-page-summary td").all_inner_texts()))
    assert rows["Prompt"] == "The capital of France is"
    assert rows["Model"].startswith("smollm2-135m (llama, causal, 30 layers)")
    assert "4 new tokens" in rows["Settings"] and "grad_x_input" in rows["Settings"]
    assert all(part in rows["Time"] for part in ("load the model", "generate and attribute", "view: nmf"))
    titles = page.locator(".ecco-title").all_inner_texts()
    assert len(set(titles)) == len(titles) == 5, titles
    assert "Input × gradient attribution · smollm2-135m" in titles
    assert "Rank of each output token per layer · smollm2-135m" in titles


def test_demo_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ecco.cli", "demo", "--prompt", "   ", "--out", str(tmp_path / "x.html")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("ecco: error: the prompt is empty")
    assert "Traceback" not in done.stderr


def test_report_for_an_encoder_skips_what_it_cannot_show(tmp_path: Path, open_html) -> None:
    out = tmp_path / "minilm.html"
    done = subprocess.run(
        [sys.executable, "-m", "ecco.cli", "report", "--model", "minilm-l6", "--prompt", "The cat sat on the mat.",
         "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipping: view 'rankings' needs an LM head" in done.stderr
    page = open_html(out.read_text(encoding="utf-8"))
    for view in ("tokens", "attention_head", "attention_model", "nmf", "similarity"):
        assert page.locator(f".ecco-view-{view}").count() == 1, view
    assert page.locator(".ecco-view-rankings").count() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--views", "tokens,rankings"], "view 'rankings' needs an LM head"),
        (["--views", "tokens,sparkles"], "unknown view(s) ['sparkles']"),
    ],
)
def test_report_errors_are_one_line(tmp_path: Path, args, message) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ecco.cli", "report", "--model", "minilm-l6", "--prompt", "hello",
         "--out", str(tmp_path / "x.html"), *args],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ecco: error: ") and message in last
