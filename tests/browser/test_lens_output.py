"""Lens views of a real OutputSeq (tiny model) rendered in Chromium."""
from __future__ import annotations

import pytest

import ecco
from ecco.render import save_report
from tests import tiny

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.generate("the quick brown fox", generate=4, min_new_tokens=4)


def test_lens_views_render_the_numbers(output, open_html, tmp_path):
    path = save_report(
        [output.rankings(), output.layer_predictions(position=6, topk=5), output.trajectories(),
         output.rankings_watch(watch=[" fox", " dog"], position=5)],
        tmp_path / "lens.html",
    )
    page = open_html(path.read_text(encoding="utf-8"))
    ranks = output.rankings(printJson=True)["rankings"]
    rankings = page.locator(".ecco-view-rankings").first
    cells = rankings.locator(".ecco-rank-cell")
    assert cells.count() == ranks.size
    shown = cells.evaluate_all("els => els.map(e => [+e.dataset.layer, +e.dataset.col, +e.dataset.rank])")
    assert all(ranks[layer, col] == rank for layer, col, rank in shown)
    rows = output.layer_predictions(position=6, topk=5, printJson=True)
    columns = page.locator(".ecco-lp-column")
    assert columns.count() == len(rows)
    first = columns.first.locator(".ecco-lp-candidate")
    assert [int(x) for x in first.evaluate_all("els => els.map(e => e.dataset.tokenId)")] == [
        c["token_id"] for c in rows[0]
    ]
    assert page.locator("svg.ecco-traj-chart").count() == 6
    assert page.locator("path.ecco-traj-line").count() == 6 * 4
    watch = page.locator(".ecco-view-rankings").nth(1).locator(".ecco-rank-col")
    assert watch.count() == 2


def test_tuned_lens_views_and_the_evaluation_render(open_html, tmp_path):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False, model_name="tiny-gpt2")
    texts = ["def add(a, b):\n    return a + b\n", "the quick brown fox jumps over the lazy dog."] * 6
    lens = ecco.train_lens(lm, texts, held_out=0.0, epochs=2, rows=16, progress=False)
    output = lm("the quick brown fox")
    evaluation = ecco.evaluate_lens(lm, lens, texts[:4], progress=False)
    numbers = ecco.evaluate_lens(lm, lens, texts[:4], progress=False, printJson=True)
    path = save_report([output.rankings(lens=lens), evaluation], tmp_path / "tuned.html")
    page = open_html(path.read_text(encoding="utf-8"))
    ranks = output.rankings(printJson=True, lens=lens)["rankings"]
    cells = page.locator(".ecco-view-rankings .ecco-rank-cell")
    shown = cells.evaluate_all("els => els.map(e => [+e.dataset.layer, +e.dataset.col, +e.dataset.rank])")
    assert len(shown) == ranks.size and all(ranks[layer, col] == rank for layer, col, rank in shown)
    view = page.locator(".ecco-view-trajectory")
    assert "logit lens vs tuned lens" in view.locator(".ecco-title").inner_text()
    charts = view.locator("svg.ecco-traj-chart")
    assert charts.evaluate_all("els => els.map(e => e.dataset.key)") == ["kl", "ce"]
    assert view.locator(".ecco-traj-legend-text").all_inner_texts() == ["logit lens", "tuned lens"]
    assert view.locator(".ecco-traj-legend-pos").count() == 0
    lines = charts.first.locator("path.ecco-traj-line")
    assert lines.count() == 2
    points = charts.first.locator(".ecco-traj-point")
    assert points.count() == 2 * len(numbers["layers"])
