"""The faithfulness comparison view in headless Chromium, on comparison data built so the answer
is known (tests/test_faithfulness_view.py): two views on one page. The table has a row per method
with the data's numbers, its dots and whiskers where the column's scale puts them, the marks the
rule gives (best, not distinguishable from random, worse than random), the failed method's error;
clicking a row draws that method's deletion / insertion curves (read back from the SVG paths);
hostile labels stay text; each view reacts to its own clicks only. With JavaScript off the static
table shows the same numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecco.render import save_report
from ecco.render.static.html import fmt
from ecco.views.faithfulness import comparison_view
from tests.test_faithfulness_view import BEST, ERROR, EVIL, KEYS, VERDICTS, view_data

pytestmark = pytest.mark.browser

METHOD_FILL = "rgb(45, 112, 230)"
POINT = re.compile(r"([MLZ])(?:(-?[\d.]+),(-?[\d.]+))?")


def reversed_data() -> dict:
    """Another model's comparison with the methods in reverse order (the failed one first)."""
    data = view_data("model-b")
    data["methods"].reverse()
    return data


@pytest.fixture(scope="module")
def datas() -> list[dict]:
    return [view_data("model-a"), reversed_data()]


@pytest.fixture
def page(open_html, datas, tmp_path: Path):
    path = save_report([comparison_view(d) for d in datas], tmp_path / "faithfulness.html", title="faithfulness")
    return open_html(path.read_text(encoding="utf-8"))


def view(page, i: int):
    return page.locator(".ecco-view-faithfulness").nth(i)


def table_dom(root) -> list[dict]:
    return root.locator(".ecco-fa-row").evaluate_all("""rows => rows.map(r => ({
        name: r.dataset.method, label: r.querySelector('.ecco-fa-label').textContent,
        selected: r.getAttribute('aria-selected'),
        error: (r.querySelector('.ecco-fa-error') || {}).textContent || null,
        colspan: (r.querySelector('.ecco-fa-error') || {getAttribute: () => null}).getAttribute('colspan'),
        cells: Array.from(r.querySelectorAll('.ecco-fa-cell')).map(c => {
            const svg = c.querySelector('svg.ecco-fa-dot'), at = (sel, a) => {
                const n = c.querySelector(sel); return n ? Number(n.getAttribute(a)) : null; };
            return {key: c.dataset.key, verdict: c.dataset.verdict, best: c.dataset.best === 'true',
                    num: c.querySelector('.ecco-fa-num').textContent, ci: c.querySelector('.ecco-fa-ci').textContent,
                    mark: (c.querySelector('.ecco-fa-mark') || {}).textContent || null,
                    lo: Number(svg.dataset.lo), hi: Number(svg.dataset.hi), pad: Number(svg.dataset.pad),
                    width: Number(svg.getAttribute('width')),
                    cx: at('.ecco-fa-mean', 'cx'), fill: (c.querySelector('.ecco-fa-mean') || {getAttribute: () => null})
                        .getAttribute('fill'),
                    x1: at('.ecco-fa-whisker', 'x1'), x2: at('.ecco-fa-whisker', 'x2'),
                    tick: at('.ecco-fa-rtick', 'x1'), band: at('.ecco-fa-rband', 'x'), bandw: at('.ecco-fa-rband', 'width')};
        })}))""")


def test_one_row_per_method_with_the_datas_numbers(page, datas) -> None:
    data = datas[0]
    rows = table_dom(view(page, 0))
    assert [r["name"] for r in rows] == [m["name"] for m in data["methods"]]
    assert [r["label"] for r in rows] == [m["label"] for m in data["methods"]]
    for row, method in zip(rows[:4], data["methods"]):
        assert [c["key"] for c in row["cells"]] == KEYS
        for c in row["cells"]:
            s, r = method["metrics"][c["key"]], method["random"][c["key"]]
            assert c["num"] == fmt(s["mean"], 3) and c["ci"] == f"[{fmt(s['low'], 3)}, {fmt(s['high'], 3)}]"

            def x(v: float) -> float:
                return c["pad"] + (v - c["lo"]) / (c["hi"] - c["lo"]) * (c["width"] - 2 * c["pad"])

            assert c["cx"] == pytest.approx(x(s["mean"]), abs=0.01)
            assert (c["x1"], c["x2"]) == (pytest.approx(x(s["low"]), abs=0.01), pytest.approx(x(s["high"]), abs=0.01))
            assert c["tick"] == pytest.approx(x(r["mean"]), abs=0.01)
            assert c["band"] == pytest.approx(x(r["low"]), abs=0.01)
            assert c["bandw"] == pytest.approx(x(r["high"]) - x(r["low"]), abs=0.02)
    for k, key in enumerate(KEYS):  # one scale per column, holding every mean and interval of it
        column = [row["cells"][k] for row in rows[:4]]
        assert len({(c["lo"], c["hi"]) for c in column}) == 1
        values = [m[part][key][s] for m in data["methods"][:4] for part in ("metrics", "random") for s in ("mean", "low", "high")]
        assert column[0]["lo"] < min(values) and column[0]["hi"] > max(values)


def test_marks_follow_the_rule(page, datas) -> None:
    rows = table_dom(view(page, 0))
    for row in rows[:4]:
        for c in row["cells"]:
            assert c["verdict"] == VERDICTS[row["name"]]
            assert c["best"] == (row["name"] in BEST[c["key"]])
            marks = {"better": None, "same": "\u2248 random", "worse": "\u2717 worse"}
            want = "\u2605 best" if c["best"] else marks[c["verdict"]]
            assert c["mark"] == want, (row["name"], c["key"])
            assert c["fill"] == (METHOD_FILL if c["verdict"] == "better" else "none")  # hollow: not beating random
    rules = view(page, 0).locator(".ecco-fa-rules").text_content()
    assert "excluding 0 on the good side" in rules and "not distinguishable from a random order" in rules
    # the rule, not the means: grad has the best mean of every column but is never marked best
    assert not any(c["best"] for c in rows[1]["cells"])


def test_a_failed_method_shows_its_error_as_text(page) -> None:
    failed = table_dom(view(page, 0))[4]
    assert failed["error"] == f"failed: {ERROR}" and failed["colspan"] == "6" and failed["cells"] == []
    assert failed["selected"] is None  # not selectable


def curve_values(chart: dict, d: str) -> list[list[tuple[float, float]]]:
    """The (fraction, score) points of each piece of path ``d``, read back through the chart's axes."""
    left, top, pw, ph = chart["plot"]
    pieces: list[list[tuple[float, float]]] = []
    for cmd, px, py in POINT.findall(d):
        if cmd == "Z":
            continue
        if cmd == "M":
            pieces.append([])
        pieces[-1].append((chart["x0"] + (float(px) - left) / pw * (chart["x1"] - chart["x0"]),
                           chart["y0"] + (top + ph - float(py)) / ph * (chart["y1"] - chart["y0"])))
    return pieces


def charts(root) -> dict[str, dict]:
    found = root.locator("svg.ecco-fa-curve").evaluate_all("""svgs => svgs.map(s => ({
        kind: s.dataset.kind, method: s.dataset.method, plot: s.dataset.plot.split(' ').map(Number),
        x0: Number(s.dataset.x0), x1: Number(s.dataset.x1), y0: Number(s.dataset.y0), y1: Number(s.dataset.y1),
        line: s.querySelector('.ecco-fa-line').getAttribute('d'), band: s.querySelector('.ecco-fa-band').getAttribute('d'),
        random: s.querySelector('.ecco-fa-random-line').getAttribute('d'),
        random_band: s.querySelector('.ecco-fa-random-band').getAttribute('d'),
        points: Array.from(s.querySelectorAll('.ecco-fa-point'))
            .map(p => [Number(p.dataset.index), Number(p.dataset.value)])}))""")
    return {c["kind"]: c for c in found}


def expected_pieces(fractions: list[float], values: list) -> list[list[tuple[float, float]]]:
    pieces, run = [], []
    for f, v in zip(fractions, values):
        if v is None:
            if run:
                pieces.append(run)
            run = []
        else:
            run.append((f, v))
    return pieces + ([run] if run else [])


def check_curves(chart: dict, method: dict, kind: str, fractions: list[float]) -> None:
    def same(got, want) -> None:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert [p[0] for p in g] == pytest.approx([p[0] for p in w], abs=1e-4)
            assert [p[1] for p in g] == pytest.approx([p[1] for p in w], abs=1e-4)

    own, random = method["curves"][kind], method["random_curves"][kind]
    same(curve_values(chart, chart["line"]), expected_pieces(fractions, own["mean"]))
    same(curve_values(chart, chart["random"]), expected_pieces(fractions, random["mean"]))
    for d, band in ((chart["band"], own), (chart["random_band"], random)):
        for piece, (hi, lo) in zip(curve_values(chart, d), zip(expected_pieces(fractions, band["high"]),
                                                                 expected_pieces(fractions, band["low"]))):
            same([piece], [hi + lo[::-1]])  # the upper edge forward, the lower edge back
    assert chart["points"] == [[i, v] for i, v in enumerate(own["mean"]) if v is not None]


def test_clicking_a_row_draws_that_methods_curves(page, datas) -> None:
    data, root = datas[0], view(page, 0)
    fractions = data["fractions"]
    shown = charts(root)
    assert {c["method"] for c in shown.values()} == {"ig"}  # the first method is selected at first
    for kind in ("deletion", "insertion"):
        check_curves(shown[kind], data["methods"][0], kind, fractions)
    for index in (1, 3, 4):  # grad (its deletion curve has a gap), lrp, then the failed method: ignored
        root.locator(".ecco-fa-row").nth(index).click()
        shown = charts(root)
        want = data["methods"][3 if index == 4 else index]  # a click on the failed row keeps lrp
        assert {c["method"] for c in shown.values()} == {want["name"]}
        for kind in ("deletion", "insertion"):
            check_curves(shown[kind], want, kind, fractions)
        selected = 3 if index == 4 else index
        assert [r["selected"] for r in table_dom(root)] == [str(i == selected).lower() for i in range(4)] + [None]
    assert len(curve_values(shown["deletion"], charts(root)["deletion"]["line"])) == 1
    root.locator(".ecco-fa-row").nth(1).click()
    assert len(curve_values(charts(root)["deletion"], charts(root)["deletion"]["line"])) == 2  # broken at the null


def test_hover_shows_the_numbers(page, datas) -> None:
    data, root = datas[0], view(page, 0)
    grad = data["methods"][1]
    root.locator('.ecco-fa-row[data-method="grad"] .ecco-fa-cell[data-key="soft_nc"]').hover()
    tip = root.locator(".ecco-tooltip")
    text = tip.text_content()
    s, d = grad["metrics"]["soft_nc"], grad["delta"]["soft_nc"]
    assert tip.is_visible() and text.startswith(EVIL + " \u00b7 Soft-NC")
    assert f"{fmt(s['mean'], 3)} [{fmt(s['low'], 3)}, {fmt(s['high'], 3)}]" in text
    assert f"{fmt(d['mean'], 3)} [{fmt(d['low'], 3)}, {fmt(d['high'], 3)}]" in text and "not distinguishable from random" in text
    root.locator('svg.ecco-fa-curve[data-kind="insertion"] .ecco-fa-hit').nth(4).hover()
    ig = data["methods"][0]["curves"]["insertion"]
    text = tip.text_content()
    assert text.startswith("insertion \u00b7 fraction 0.4")
    assert f"Integrated gradients {fmt(ig['mean'][4], 3)} [{fmt(ig['low'][4], 3)}, {fmt(ig['high'][4], 3)}]" in text


def test_hostile_labels_render_as_text(page) -> None:
    assert page.evaluate("window.__pwned") is None
    for i in range(2):
        root = view(page, i)
        assert root.locator("script").count() == 0
        assert root.locator("b").evaluate_all("bs => bs.filter(b => b.textContent === 'bold').length") == 0
        assert root.locator('.ecco-fa-row[data-method="grad"] .ecco-fa-label').text_content() == EVIL
        assert ERROR in root.locator(".ecco-fa-error").text_content()


def test_two_views_on_one_page_are_independent(page, datas) -> None:
    a, b = view(page, 0), view(page, 1)
    assert charts(a)["deletion"]["method"] == "ig"
    assert charts(b)["deletion"]["method"] == "lrp"  # view b lists the failed method first: its first working one
    assert [r["name"] for r in table_dom(b)] == [m["name"] for m in datas[1]["methods"]]
    b.locator(".ecco-fa-row").nth(3).click()  # grad in b
    assert charts(b)["deletion"]["method"] == "grad" and charts(a)["deletion"]["method"] == "ig"
    assert [r["selected"] for r in table_dom(a)][:4] == ["true", "false", "false", "false"]
    a.locator(".ecco-fa-row").nth(2).click()
    assert charts(a)["deletion"]["method"] == "occ" and charts(b)["deletion"]["method"] == "grad"
    b.locator(".ecco-fa-row").nth(2).focus()
    page.keyboard.press("Enter")  # the keyboard selects too
    assert charts(b)["deletion"]["method"] == "occ" and charts(a)["deletion"]["method"] == "occ"
    b.locator(".ecco-fa-row").nth(1).press(" ")
    assert charts(b)["deletion"]["method"] == "lrp"
    a.locator(".ecco-fa-cell").first.hover()
    assert a.locator(".ecco-tooltip").is_visible() and not b.locator(".ecco-tooltip").is_visible()
    assert a.locator(".ecco-title").text_content() == "Faithfulness \u00b7 model-a"
    assert b.locator(".ecco-title").text_content() == "Faithfulness \u00b7 model-b"


def test_without_javascript_the_static_table_shows_the_numbers(chromium, datas, tmp_path: Path) -> None:
    path = save_report([comparison_view(datas[0])], tmp_path / "static.html")
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(path.as_uri())
        root = page.locator(".ecco-view-faithfulness")
        assert root.locator(".ecco-fa-row").count() == 0
        cells = root.locator("table.ecco-s-faithfulness tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")
        assert len(cells) == 5 and cells[1][0].startswith(EVIL)
        ig = datas[0]["methods"][0]["metrics"]["aopc_comprehensiveness"]
        assert cells[0][1].startswith(f"{fmt(ig['mean'], 3)} [{fmt(ig['low'], 3)}, {fmt(ig['high'], 3)}]")
        assert cells[0][1].endswith("\u2605 best") and cells[1][1].endswith("\u2248 random")
        assert cells[4][1] == f"failed: {ERROR}"
        assert page.evaluate("window.__pwned") is None
    finally:
        context.close()
