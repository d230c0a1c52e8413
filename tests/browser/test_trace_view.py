"""The causal tracing view in real Chromium: each heatmap cell sits at its (layer, position) and is
shaded by its value over the heatmap's max, the switch changes the shown value, the tooltip shows
the cell's numbers, hostile token text renders as text, two views on one page are independent."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from ecco.causal.trace import Trace
from ecco.render import render_fragment, standalone_page
from ecco.render.static.html import fmt
from ecco.views.tracing import trace_data

pytestmark = pytest.mark.browser

EVIL = "<script>window.__pwned=1</script>"
TOKENS = [EVIL, ' "q\'uote', "</div><b>x</b>", " Space", " Needle", "\n", " is"]
COUNTERFACTUAL = [EVIL, ' "q\'uote', "</div><b>x</b>", " Eiffel", " Tower", "\n", " is"]
COMPONENTS = ("residual", "mlp", "attention")
TOP = 0.85  # the opacity of a heatmap's max


def make_trace(seed: int = 0, counterfactual: bool = False) -> Trace:
    """A trace of 6 layers by the 7 TOKENS with random restored probabilities (some below the
    corrupted probability, so some indirect effects are negative) and one NaN cell."""
    rng = np.random.default_rng(seed)
    probs = {c: rng.uniform(0.01, 0.9, (6, len(TOKENS))) for c in COMPONENTS}
    probs["mlp"][2, 3] = np.nan
    return Trace(token_ids=list(range(10, 10 + len(TOKENS))),
                 counterfactual=[10, 11, 12, 40, 41, 15, 16] if counterfactual else None,
                 corrupted=[3, 4] if counterfactual else [1, 2, 3], target=42, stack="decoder", column=len(TOKENS) - 1,
                 clean_prob=0.7 + 0.1 * seed, corrupt_prob=0.05, probs=probs, window=3, noise=None if counterfactual else 0.42,
                 seeds=1 if counterfactual else 5)


@functools.cache
def trace_sample(seed: int = 0, counterfactual: bool = False) -> dict:
    """The view's data of :func:`make_trace`, with hostile token and target text."""
    return trace_data(make_trace(seed, counterfactual), TOKENS, "</b> Paris", "tiny", COUNTERFACTUAL if counterfactual else None)


def _open(open_html, *datas: dict):
    page = open_html(standalone_page([render_fragment("causal_trace", d) for d in datas]))
    page.wait_for_selector(".ecco-ct-cell")
    return page, [page.locator(".ecco-view-causal_trace").nth(i) for i in range(len(datas))]


def _cells(root) -> list[dict]:
    """Every cell of a view: component, layer, position, shown value, box and background opacity."""
    return root.locator(".ecco-ct-cell").evaluate_all("""cells => cells.map(c => {
        const box = c.getBoundingClientRect(), bg = getComputedStyle(c).backgroundColor;
        const rgba = bg.match(/[\\d.]+/g).map(Number);
        return {component: c.closest('.ecco-ct-panel').dataset.component, layer: Number(c.dataset.layer),
                position: Number(c.dataset.position), value: c.dataset.value === '' ? null : Number(c.dataset.value),
                x: box.x, y: box.y, rgb: rgba.slice(0, 3), alpha: rgba.length === 4 ? rgba[3] : 1};
    })""")


def _check_shading(cells: list[dict], data: dict, key: str) -> None:
    """Each cell holds the data's value for its (component, layer, position) and is shaded by the
    value over its heatmap's max (an independent count of the max); a larger value is darker."""
    for component in data["components"]:
        grid = component[key]
        peak = max(v for row in grid for v in row if v is not None)
        mine = [c for c in cells if c["component"] == component["name"]]
        assert len(mine) == data["layers"] * len(data["tokens"])
        for c in mine:
            v = grid[c["layer"]][c["position"]]
            assert c["value"] == v
            expected = TOP * v / peak if v is not None and v > 0 else 0.0
            assert c["alpha"] == pytest.approx(expected, abs=0.006), (component["name"], c)
        shaded = sorted((c for c in mine if c["value"] is not None and c["value"] > 0), key=lambda c: c["value"])
        assert [c["alpha"] for c in shaded] == sorted(c["alpha"] for c in shaded)
        assert shaded[-1]["alpha"] == pytest.approx(TOP, abs=0.006)


def test_cells_sit_at_their_layer_and_position_and_are_shaded_by_value(open_html):
    data = trace_sample()
    page, (root,) = _open(open_html, data)
    cells = _cells(root)
    _check_shading(cells, data, "indirect")
    for name in COMPONENTS:
        mine = [c for c in cells if c["component"] == name]
        # Layers left to right, positions top to bottom, in a grid.
        for layer in range(data["layers"]):
            column = [c for c in mine if c["layer"] == layer]
            assert len({round(c["x"]) for c in column}) == 1
        for position in range(len(data["tokens"])):
            row = sorted((c for c in mine if c["position"] == position), key=lambda c: c["layer"])
            assert len({round(c["y"]) for c in row}) == 1
            assert [c["x"] for c in row] == sorted(c["x"] for c in row) and len({c["x"] for c in row}) == len(row)
        ys = [next(c["y"] for c in mine if c["position"] == p and c["layer"] == 0) for p in range(len(data["tokens"]))]
        assert ys == sorted(ys) and len(set(ys)) == len(ys)
    assert root.locator(".ecco-ct-mode[aria-pressed='true']").text_content() == "indirect effect"
    header = root.locator(".ecco-ct-header").text_content()
    for text in (f"p clean {fmt(data['clean_prob'])}", f"p corrupted {fmt(data['corrupt_prob'])}", "\u03c3 0.42", "5 seeds",
                 "window 3", "</b> Paris", "(id 42)"):
        assert text in header


def test_switch_changes_the_value_of_one_view_only(open_html):
    a, b = trace_sample(0), trace_sample(1, counterfactual=True)
    page, (root_a, root_b) = _open(open_html, a, b)
    for key, label in (("normalised", "normalised effect"), ("prob", "probability")):
        root_a.locator(f".ecco-ct-mode[data-value='{key}']").click()
        assert root_a.locator(".ecco-ct-mode[aria-pressed='true']").text_content() == label
        _check_shading(_cells(root_a), a, key)
        maxima = root_a.locator(".ecco-ct-max").evaluate_all("ms => ms.map(m => m.textContent)")
        assert maxima == [fmt(max(v for row in c[key] for v in row if v is not None)) for c in a["components"]]
        _check_shading(_cells(root_b), b, "indirect")  # the other view is untouched
        assert root_b.locator(".ecco-ct-mode[aria-pressed='true']").text_content() == "indirect effect"
    corruption = root_b.locator(".ecco-ct-corruption")
    assert corruption.text_content() == "counterfactual prompt " + "".join(COUNTERFACTUAL)
    assert corruption.locator(".ecco-ct-corrupted").evaluate_all("ts => ts.map(t => t.textContent)") == [" Eiffel", " Tower"]


def test_tooltip_shows_the_cells_numbers_in_its_own_view(open_html):
    a, b = trace_sample(0), trace_sample(1)
    page, (root_a, root_b) = _open(open_html, a, b)
    for root, data, (name, layer, position) in ((root_a, a, ("mlp", 4, 2)), (root_b, b, ("attention", 1, 5)),
                                                (root_a, a, ("mlp", 2, 3))):
        panel = root.locator(f".ecco-ct-panel[data-component='{name}']")
        panel.locator(f".ecco-ct-cell[data-layer='{layer}'][data-position='{position}']").hover()
        tip = root.locator(".ecco-tooltip")
        assert tip.is_visible()
        component = next(c for c in data["components"] if c["name"] == name)
        rows = tip.locator(".ecco-tooltip-row").evaluate_all("rs => rs.map(r => r.textContent)")
        corrupted = " (corrupted)" if position in data["corrupted"] else ""
        assert rows == [f"position {position}{corrupted}", f"layer {layer}", f"component {component['label']}",
                        f"p restored {fmt(component['prob'][layer][position])}",
                        f"indirect effect {fmt(component['indirect'][layer][position])}",
                        f"normalised effect {fmt(component['normalised'][layer][position])}"]
        assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(TOKENS[position])
        other = root_b if root is root_a else root_a
        assert other.locator(".ecco-tooltip").count() == 0 or other.locator(".ecco-tooltip").is_hidden()
    assert "p restored \u2013" in root_a.locator(".ecco-tooltip").text_content()  # the NaN cell


def test_hostile_token_text_renders_as_text(open_html):
    data = trace_sample(0)
    page, (root,) = _open(open_html, data)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert root.locator(".ecco-ct b, .ecco-ct script").count() == 0
    for name in COMPONENTS:
        rows = root.locator(f".ecco-ct-panel[data-component='{name}'] th.ecco-ct-row")
        assert rows.locator(".ecco-ct-text").evaluate_all("ts => ts.map(t => t.textContent)") == TOKENS
        stars = rows.evaluate_all("rs => rs.map(r => r.classList.contains('ecco-ct-corrupted') && r.textContent.endsWith('*'))")
        assert stars == [p in data["corrupted"] for p in range(len(TOKENS))]
    assert root.locator(".ecco-ct-target .ecco-ct-token").text_content() == "</b> Paris"
