"""The intervention diff view in real Chromium: the highlighted tokens are exactly those of the
non-equal difflib opcodes (computed here), each intervened token's bar has the height and the sign
of its probability change, the tooltip shows the numbers, hostile text renders as text, and two
views on one page are independent."""
from __future__ import annotations

import difflib
import functools
import json

import numpy as np
import pytest

from ecco.causal.diff import InterventionDiff
from ecco.render import render_fragment, standalone_page
from ecco.render.static.html import fmt
from ecco.views.interventions import intervention_diff_data

pytestmark = pytest.mark.browser

EVIL = "<script>window.__pwned=1</script>"
VOCAB = {5: " the", 6: "<b>bold</b>", 7: ' "q\'', 8: " cat", 9: "</div>", 10: " sat", 11: "\n", 12: " on", 20: EVIL, 30: " mat",
         31: " rug"}
CLEAN = [5, 6, 7, 8, 9, 10, 11, 12]
INTERVENED = [5, 20, 7, 8, 11, 12, 30]  # equal, replace, equal, delete, equal, insert
HALF = 10  # px of the largest change's bar


def make_diff(intervened: list[int] = INTERVENED, nan: bool = False) -> InterventionDiff:
    """Two continuations of a 3-token prompt with chosen probabilities (one NaN with ``nan``)."""
    n = len(intervened)
    clean_probs = np.linspace(0.9, 0.2, len(CLEAN))
    probs = np.array([0.8, 0.61, 0.3, 0.05, 0.5, 0.45, 0.7, 0.2][:n])
    before = np.array([0.8, 0.02, 0.4, 0.35, 0.5, 0.2, 0.1, 0.25][:n])
    if nan:
        before[3] = np.nan
    return InterventionDiff(["zero-ablate layer 1 neurons 5, 7", "steer layer 0 by 4 \u00d7 '</b>'"], [1, 2, 3], list(CLEAN),
                            clean_probs, list(intervened), probs, before)


def texts(ids: list[int]) -> list[str]:
    return [VOCAB[i] for i in ids]


@functools.cache
def diff_sample(intervened: tuple[int, ...] = tuple(INTERVENED)) -> dict:
    """The view's data of :func:`make_diff`, with hostile token text."""
    diff = make_diff(list(intervened))
    return intervention_diff_data(diff, ["<i>a</i>", " b", " c"], texts(CLEAN), texts(list(intervened)), "tiny")


def _open(open_html, *datas: dict):
    page = open_html(standalone_page([render_fragment("intervention_diff", d) for d in datas]))
    page.wait_for_selector(".ecco-diff-token")
    return page, [page.locator(".ecco-view-intervention_diff").nth(i) for i in range(len(datas))]


def _non_equal(intervened: list[int]) -> tuple[list[int], list[int]]:
    """Clean and intervened indices in difflib's non-equal opcodes, computed here."""
    ops = difflib.SequenceMatcher(a=CLEAN, b=intervened, autojunk=False).get_opcodes()
    return ([i for tag, i1, i2, _, _ in ops if tag != "equal" for i in range(i1, i2)],
            [j for tag, _, _, j1, j2 in ops if tag != "equal" for j in range(j1, j2)])


def _indices(root, selector: str) -> list[int]:
    return root.locator(selector).evaluate_all("ts => ts.map(t => Number(t.dataset.index))")


def test_highlights_and_bars_are_the_data(open_html):
    data = diff_sample()
    page, (root,) = _open(open_html, data)
    removed, added = _non_equal(INTERVENED)
    assert removed == [1, 4, 5] and added == [1, 6]  # replace, delete, insert: every kind is drawn
    assert _indices(root, ".ecco-diff-token.ecco-diff-removed") == removed
    assert _indices(root, ".ecco-diff-token.ecco-diff-added") == added
    assert _indices(root, ".ecco-diff-token[data-side='clean']") == list(range(len(CLEAN)))
    assert _indices(root, ".ecco-diff-token[data-side='intervened']") == list(range(len(INTERVENED)))
    assert root.locator(".ecco-diff-token[data-side='clean']").evaluate_all(
        "ts => ts.map(t => getComputedStyle(t).textDecorationLine)") == [
        "line-through" if i in removed else "none" for i in range(len(CLEAN))]
    bars = root.locator(".ecco-diff-bar").evaluate_all("""bs => bs.map(b => {
        const r = b.getBoundingClientRect(), box = b.parentNode.getBoundingClientRect();
        return {height: r.height, top: r.top, bottom: r.bottom, middle: box.top + box.height / 2, change: b.dataset.change,
                colour: getComputedStyle(b).backgroundColor};
    })""")
    changes = [p - q for p, q in zip([0.8, 0.61, 0.3, 0.05, 0.5, 0.45, 0.7], [0.8, 0.02, 0.4, 0.35, 0.5, 0.2, 0.1])]
    extent = max(abs(c) for c in changes)
    assert [float(b["change"]) for b in bars] == pytest.approx(changes, abs=1e-12)
    for bar, change in zip(bars, changes):  # layout snaps to 1/64 px
        assert bar["height"] == pytest.approx(0 if change == 0 else max(1, abs(change) / extent * HALF), abs=0.02)
        if change > 0:
            assert bar["bottom"] == pytest.approx(bar["middle"], abs=0.02) and bar["colour"] == "rgb(45, 112, 230)"
        elif change < 0:
            assert bar["top"] == pytest.approx(bar["middle"], abs=0.02) and bar["colour"] == "rgb(240, 120, 20)"
    assert root.locator(".ecco-diff-summary").text_content() == "2 of 7 tokens changed; first change at token 1"
    # Clean and intervened tokens of one segment share a column: the equal pairs line up.
    xs = root.locator(".ecco-diff-seg[data-tag='equal']").evaluate_all(
        "ss => ss.map(s => Array.from(s.querySelectorAll('.ecco-diff-token')).map(t => t.getBoundingClientRect().x))")
    assert xs and all(len(pair) == 2 and pair[0] == pytest.approx(pair[1]) for pair in xs)


def test_tooltips_and_two_views_on_one_page(open_html):
    a, b = diff_sample(), diff_sample((5, 31, 7, 8, 9, 10, 11, 12))
    page, (root_a, root_b) = _open(open_html, a, b)
    assert root_b.locator(".ecco-diff-summary").text_content() == "1 of 8 tokens changed; first change at token 1"
    assert _indices(root_b, ".ecco-diff-token.ecco-diff-added") == [1]
    for root, data, j in ((root_a, a, 1), (root_b, b, 3), (root_a, a, 6)):
        root.locator(f".ecco-diff-token[data-side='intervened'][data-index='{j}']").hover()
        tip = root.locator(".ecco-tooltip")
        token = data["intervened"][j]
        assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(token["text"])
        assert tip.locator(".ecco-tooltip-row").evaluate_all("rs => rs.map(r => r.textContent)") == [
            f"intervened token {j}", f"id {token['id']}", f"p intervened {fmt(token['prob'])}",
            f"p clean, same prefix {fmt(token['clean_prob'])}",
            f"change {'+' if token['change'] > 0 else ''}{fmt(token['change'])}"]
        other = root_b if root is root_a else root_a
        assert other.locator(".ecco-tooltip").count() == 0 or other.locator(".ecco-tooltip").is_hidden()
    root_a.locator(".ecco-diff-token[data-side='clean'][data-index='4']").hover()
    assert root_a.locator(".ecco-tooltip .ecco-tooltip-row").evaluate_all("rs => rs.map(r => r.textContent)") == [
        "clean token 4", "id 9", f"p clean {fmt(a['clean'][4]['prob'])}"]


def test_hostile_text_renders_as_text(open_html):
    page, (root,) = _open(open_html, diff_sample())
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert root.locator(".ecco-diff b, .ecco-diff i, .ecco-diff script").count() == 0
    shown = root.locator(".ecco-diff-token[data-side='intervened']").evaluate_all("ts => ts.map(t => t.textContent)")
    assert shown == texts(INTERVENED)
    assert root.locator(".ecco-diff-prompt").text_content() == "prompt <i>a</i> b c"
    assert "steer layer 0 by 4 \u00d7 '</b>'" in root.locator(".ecco-diff-interventions").text_content()
