"""The direct logit attribution view in real Chromium: the bars are the data's numbers, clicking a
layer shows that layer's heads and neurons, hostile token text renders as text."""
from __future__ import annotations

import functools

import pytest

import ecco
from ecco.render import render_fragment, standalone_page
from ecco.render.static.html import fmt
from tests import tiny

pytestmark = pytest.mark.browser
EVIL = "</script><b>x</b><img src=x onerror=alert(1)>"


@functools.cache
def dla_data() -> dict:
    """The view's data for a tiny GPT-2, with hostile text in a prompt token and the target."""
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    data = lm.logit_attribution("heathrow airport is located in the city of", target=" london", foil=" the",
                                top_neurons=3, printJson=True)
    data["prompt"][1] = EVIL
    data["target"]["text"] = EVIL
    return data


def _open(open_html):
    page = open_html(standalone_page([render_fragment("logit_attribution", dla_data())]))
    page.wait_for_selector(".ecco-la-row")
    return page


def test_bars_are_the_data(open_html):
    data = dla_data()
    page = _open(open_html)
    expected = [data["embeddings"]] + [v for layer in data["layers"] for v in (layer["attention"], layer["mlp"])]
    values = page.eval_on_selector_all(".ecco-la-bar", "rs => rs.map(r => Number(r.dataset.value))")
    assert values == pytest.approx(expected, abs=1e-12)
    widths = page.eval_on_selector_all(".ecco-la-bar", "rs => rs.map(r => Number(r.getAttribute('width')))")
    biggest = max(abs(v) for v in expected)
    assert widths == pytest.approx([abs(v) / biggest * widths[max(range(len(expected)), key=lambda i: abs(expected[i]))]
                                    for v in expected], rel=1e-6)
    shown = page.eval_on_selector_all(".ecco-la-value", "ts => ts.map(t => t.textContent)")
    assert shown == [fmt(v) for v in expected]
    assert fmt(data["logit"]) in page.locator(".ecco-la-total").text_content()


def test_clicking_a_layer_shows_its_heads_and_neurons(open_html):
    data = dla_data()
    page = _open(open_html)
    for layer in (0, 1):
        page.locator(f".ecco-la-row[data-layer='{layer}'][data-part='mlp']").click()
        heads = page.eval_on_selector_all(".ecco-la-head", "rs => rs.map(r => Number(r.dataset.value))")
        assert heads == pytest.approx(data["layers"][layer]["heads"], abs=1e-12)
        neurons = page.eval_on_selector_all(".ecco-la-neuron", "rs => rs.map(r => Number(r.dataset.value))")
        chosen = data["layers"][layer]["neurons_up"] + data["layers"][layer]["neurons_down"]
        assert neurons == pytest.approx([n["value"] for n in chosen], abs=1e-12)
        assert page.locator(".ecco-la-detail").text_content().startswith(f"Layer {layer} attention heads")


def test_hostile_token_text_renders_as_text(open_html):
    page = _open(open_html)
    assert page.locator(".ecco-la b, .ecco-la img").count() == 0
    assert EVIL in page.locator(".ecco-la-prompt").text_content()
    assert EVIL in page.locator(".ecco-la-total").text_content()
