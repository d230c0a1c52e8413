"""The attribution view of a real OutputSeq (tiny model) in Chromium: Python data -> DOM."""
from __future__ import annotations

import pytest

import ecco
from tests import tiny

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("llama"), tiny.tokenizer(), verbose=False)
    return lm.generate("the quick brown fox", generate=3, attribution=["ig", "grad_x_input"], min_new_tokens=3)


def _values(page):
    return page.locator(".ecco-source").evaluate_all("els => els.map(e => [+e.dataset.position, +e.dataset.value])")


def test_hover_shows_each_targets_attributions(output, open_html):
    view = output.primary_attributions(attr_method="ig")
    page = open_html(ecco.render.standalone_page([view.html]))
    result = output.attributions["ig"]
    seq = output.sequences[0]
    for k, position in enumerate(result.targets[0]):
        page.locator(f'.ecco-target[data-position="{position}"]').hover()
        shown = dict(_values(page))
        expected = result.values[0][k]
        assert sorted(shown) == list(range(position))
        for source, value in shown.items():
            assert value == pytest.approx(expected[source], abs=1e-12)
    assert page.locator(".ecco-token").count() == len(seq)


def test_detailed_style_and_ignore_tokens(output, open_html):
    view = output.primary_attributions(attr_method="ig", style="detailed", ignore_tokens=[0])
    page = open_html(ecco.render.standalone_page([view.html]))
    assert page.locator('.ecco-token[data-position="0"]').count() == 0
    bars = page.locator(".ecco-bar")
    assert bars.count() == output.attributions["ig"].targets[0][0] - 1
    assert "completeness" in page.locator(".ecco-attr-completeness").inner_text()
