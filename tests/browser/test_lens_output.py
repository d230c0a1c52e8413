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
    assert page.locator("svg.ecco-traj-chart").count() == 3
    assert page.locator("path.ecco-traj-line").count() == 3 * 4
    watch = page.locator(".ecco-view-rankings").nth(1).locator(".ecco-rank-col")
    assert watch.count() == 2
