"""The logit-lens views in headless Chromium: "layer_predictions" (top-k per layer at one position),
"rankings" (rank heatmap, layers x tokens; also rankings_watch) and "trajectory" (per-layer curves)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ecco.render import View, save_report

pytestmark = pytest.mark.browser

EVIL = "</script><b>x</b>"
PARIS = 6342


# ---------------------------------------------------------------- data ----------------------------

def lp_data(n_layers: int = 13, topk: int = 5, actual: bool = True, context_len: int = 6,
            title: str | None = "Layer predictions") -> dict:
    """Top-k candidates at layers 0..n_layers-1. " Paris" climbs from outside the top-k (early
    layers) to rank 1 (last layers); EVIL is a candidate at every layer; " the" appears at some."""
    pool = [(" the", 262), (EVIL, 999), (" a", 257), (" France", 4881), ("\n", 198), (" Lyon", 25303),
            (" London", 3576), (" it", 340), (" Berlin", 11307), (" Rome", 10598), (" Madrid", 14708),
            (" Nice", 18460)]
    layers, by_layer = [], []
    for layer in range(n_layers):
        paris_rank = max(1, 9 - layer)  # outside the top-5 for layers 0..3, rank 1 from layer 8
        ids = [t for t in pool if (t[1] != 262 or layer % 3 == 0)]
        ranked = ids[: topk]
        if paris_rank <= topk:
            ranked = ranked[: paris_rank - 1] + [(" Paris", PARIS)] + ranked[paris_rank - 1: topk - 1]
        probs = [round(0.6 / (r + 1) ** 1.3 * (0.4 + layer / n_layers), 6) for r in range(topk)]
        layers.append({"layer": layer, "candidates": [
            {"text": text, "id": tid, "prob": probs[r], "rank": r + 1} for r, (text, tid) in enumerate(ranked)]})
        by_layer.append({"layer": layer, "prob": probs[paris_rank - 1] if paris_rank <= topk else 0.00123 / (layer + 1),
                         "rank": paris_rank if paris_rank <= topk else 40 * (9 - layer)})
    context = [{"text": t, "position": i} for i, t in enumerate(
        (["The", " capital", " of", " France", " is", " the", " city", " of"] * 4)[:context_len])]
    return {
        "position": context_len,
        "context": context,
        "actual": {"text": " Paris", "id": PARIS} if actual else None,
        "layers": layers,
        "actual_by_layer": by_layer if actual else None,
        "title": title,
    }


RANK_COLUMNS = [(" Paris", 6342), (".", 13), (EVIL, 999), ("\n", 198), (" It", 632), (" internationally", 11)]


def rank_of(layer: int, col: int) -> int:
    """A rank per (layer, column): large early, 1 at the last layers; column 2 stays poor."""
    if col == 2:
        return 1000 + 37 * (layer % 5)
    return max(1, int(round(30000 * math.exp(-0.45 * layer) * (1 + col / 3))))


def rankings_data(n_layers: int = 31, caption: str | None = "Rank of each generated token at every layer",
                  title: str | None = None) -> dict:
    layers = list(range(n_layers))
    ranks = [[rank_of(layer, c) for c in range(len(RANK_COLUMNS))] for layer in layers]
    probs = [[round(1 / (r + 0.5) ** 0.9, 8) for r in row] for row in ranks]
    return {
        "layers": layers,
        "columns": [{"text": t, "id": i, "position": 7 + c} for c, (t, i) in enumerate(RANK_COLUMNS)],
        "ranks": ranks,
        "probs": probs,
        "caption": caption,
        "title": title,
    }


TRAJ_TOKENS = [" Paris", EVIL, " is", "\n"]


def traj_data(n_layers: int = 13, title: str | None = "Logit lens trajectories") -> dict:
    layers = list(range(n_layers))

    def entropy(t: int, layer: int) -> float | None:
        if t == 2 and layer == 5:
            return None  # a gap
        return round(8.5 * math.exp(-layer / (3 + t)) + 0.3 * t, 5)

    def kl(t: int, layer: int) -> float | None:
        return round(6 * (1 - layer / (n_layers - 1)) ** (1.5 + t / 2), 5)

    def prob(t: int, layer: int) -> float | None:
        if t == 3 and layer < 2:
            return None
        return round(min(1.0, (layer / (n_layers - 1)) ** (1 + t)), 5)

    fns = [("entropy", "Entropy", "nats", entropy), ("kl", "KL to the last layer", "nats", kl),
           ("prob", "Probability of the next token", "", prob)]
    return {
        "layers": layers,
        "tokens": [{"text": text, "position": 4 + t} for t, text in enumerate(TRAJ_TOKENS)],
        "series": [{"key": key, "label": label, "unit": unit,
                    "values": [[fn(t, layer) for layer in layers] for t in range(len(TRAJ_TOKENS))]}
                   for key, label, unit, fn in fns],
        "title": title,
    }


# ---------------------------------------------------------------- helpers -------------------------

def open_view(open_html, tmp_path: Path, view: str, data: dict):
    path = View(view, data).save_html(tmp_path / f"{view}.html")
    return open_html(path.read_text(encoding="utf-8"))


def luminance(locator) -> float:
    """Relative luminance of an element's computed (opaque) background colour."""
    color = locator.evaluate("e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(v) for v in re.findall(r"[\d.]+", color)[:3])
    assert "rgba" not in color or color.endswith(", 1)"), color

    def lin(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def no_injected_markup(root) -> None:
    assert root.locator("b, i, script").count() == 0
    text = root.inner_text()
    assert "NaN" not in text and "undefined" not in text and "null" not in text


# ---------------------------------------------------------------- layer_predictions ---------------

def test_lp_columns_candidates_and_attributes(open_html, tmp_path: Path) -> None:
    data = lp_data()
    page = open_view(open_html, tmp_path, "layer_predictions", data)
    root = page.locator(".ecco-view-layer_predictions")
    columns = root.locator(".ecco-lp-column")
    assert columns.count() == len(data["layers"])
    assert columns.evaluate_all("els => els.map(e => Number(e.dataset.layer))") == [e["layer"] for e in data["layers"]]
    for i, entry in enumerate(data["layers"]):
        col = columns.nth(i)
        assert col.locator(".ecco-lp-head").text_content() == f"layer {entry['layer']}"
        boxes = col.locator(".ecco-lp-candidate")
        got = boxes.evaluate_all(
            "els => els.map(e => [e.querySelector('.ecco-lp-text').textContent, Number(e.dataset.tokenId),"
            " Number(e.dataset.rank), Number(e.dataset.prob)])")
        assert got == [[c["text"], c["id"], c["rank"], c["prob"]] for c in entry["candidates"]]
        shown = col.locator(".ecco-lp-prob").all_text_contents()
        assert shown == [f"{c['prob'] * 100:.1f}%" for c in entry["candidates"]]
        # The actual token is outlined exactly where it is in the top-k.
        actual = [c["id"] == PARIS for c in entry["candidates"]]
        assert boxes.evaluate_all("els => els.map(e => e.classList.contains('ecco-lp-actual'))") == actual
        footer = root.locator(f'.ecco-lp-rank[data-layer="{entry["layer"]}"]')
        assert footer.text_content() == f"rank {data['actual_by_layer'][i]['rank']}"
        # Candidates are shaded by probability: the more probable, the more opaque.
        alphas = boxes.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
        alphas = [float(re.findall(r"[\d.]+", a)[3]) for a in alphas]
        assert alphas == sorted(alphas, reverse=True) and alphas[0] > alphas[-1]
    assert root.locator(".ecco-lp-actual").count() == sum(
        c["id"] == PARIS for e in data["layers"] for c in e["candidates"])
    assert root.locator(".ecco-lp-actual").count() == 9  # layers 4..12
    # Actual-token boxes look different from the others.
    actual_border = root.locator(".ecco-lp-actual").first.evaluate("e => getComputedStyle(e).borderTopWidth")
    other_border = root.locator(".ecco-lp-candidate:not(.ecco-lp-actual)").first.evaluate(
        "e => getComputedStyle(e).borderTopWidth")
    assert actual_border == "2px" and other_border == "1px"
    assert root.locator(".ecco-title").text_content() == "Layer predictions"
    no_injected_markup(root)


def test_lp_hover_tooltip_and_same_token(open_html, tmp_path: Path) -> None:
    data = lp_data()
    page = open_view(open_html, tmp_path, "layer_predictions", data)
    root = page.locator(".ecco-view-layer_predictions")
    tip = root.locator(".ecco-tooltip")
    assert tip.is_hidden()
    cand = data["layers"][7]["candidates"][1]
    assert cand["id"] == PARIS
    box = root.locator('.ecco-lp-column[data-layer="7"] .ecco-lp-candidate').nth(1)
    box.hover()
    assert tip.is_visible()
    text = tip.text_content()
    assert text.startswith(json.dumps(" Paris"))
    assert f"id {PARIS}" in text and f"prob {cand['prob'] * 100:.2f}%" in text
    assert "rank 2" in text and "layer 7" in text and "actual next token" in text
    same = root.locator(".ecco-lp-same")
    assert same.count() == 9
    assert set(same.evaluate_all("els => els.map(e => Number(e.dataset.tokenId))")) == {PARIS}
    assert set(same.evaluate_all("els => els.map(e => Number(e.closest('.ecco-lp-column').dataset.layer))")) == set(range(4, 13))
    assert same.first.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    # Another token: the highlight follows it; the evil token is shown as a JSON string.
    root.locator('.ecco-lp-column[data-layer="0"] .ecco-lp-candidate[data-token-id="999"]').hover()
    assert same.count() == len(data["layers"])
    assert set(same.evaluate_all("els => els.map(e => e.dataset.tokenId)")) == {"999"}
    assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(EVIL)
    evil0 = next(c for c in data["layers"][0]["candidates"] if c["id"] == 999)
    assert f"prob {evil0['prob'] * 100:.2f}%" in tip.text_content() and "layer 0" in tip.text_content()
    page.mouse.move(0, 0)
    assert same.count() == 0 and tip.is_hidden()


def test_lp_caption_context_and_escaping(open_html, tmp_path: Path) -> None:
    data = lp_data(context_len=30, title="<b>not bold</b>")
    data["context"][-1]["text"] = EVIL
    page = open_view(open_html, tmp_path, "layer_predictions", data)
    root = page.locator(".ecco-view-layer_predictions")
    shown = root.locator(".ecco-lp-context-token")
    assert shown.all_text_contents() == [t["text"] for t in data["context"][-12:]]
    assert shown.evaluate_all("els => els.map(e => Number(e.dataset.position))") == list(range(18, 30))
    assert root.locator(".ecco-lp-ellipsis").text_content() == "\u2026"
    assert root.locator(".ecco-lp-position").text_content() == "30"
    assert root.locator(".ecco-lp-actual-chip").text_content() == " Paris"
    assert root.locator(".ecco-title").text_content() == "<b>not bold</b>"
    evil_boxes = root.locator('.ecco-lp-candidate[data-token-id="999"] .ecco-lp-text')
    assert evil_boxes.count() == len(data["layers"]) and set(evil_boxes.all_text_contents()) == {EVIL}
    # "\n" is shown as a visible marker, but its text is still exactly "\n".
    newline = root.locator('.ecco-lp-candidate[data-token-id="198"] .ecco-lp-text').first
    assert newline.text_content() == "\n"
    assert newline.locator(".ecco-ctrl").get_attribute("data-glyph") == "\\n"
    assert newline.locator(".ecco-ctrl").evaluate("e => getComputedStyle(e, '::before').content") == '"\\\\n"'
    no_injected_markup(root)


def test_lp_short_context_no_actual(open_html, tmp_path: Path) -> None:
    data = lp_data(actual=False, context_len=3, title=None)
    page = open_view(open_html, tmp_path, "layer_predictions", data)
    root = page.locator(".ecco-view-layer_predictions")
    assert root.locator(".ecco-lp-ellipsis").count() == 0
    assert root.locator(".ecco-lp-context-token").count() == 3
    assert root.locator(".ecco-lp-actual, .ecco-lp-rank, .ecco-lp-actual-chip, .ecco-title").count() == 0
    assert root.locator(".ecco-lp-none").text_content() == "none"
    assert root.locator(".ecco-lp-column").count() == 13
    no_injected_markup(root)


def test_lp_many_layers_scroll_inside_view(open_html, tmp_path: Path) -> None:
    data = lp_data(n_layers=31, topk=10)
    page = open_view(open_html, tmp_path, "layer_predictions", data)
    page.set_viewport_size({"width": 900, "height": 700})
    root = page.locator(".ecco-view-layer_predictions")
    assert root.locator(".ecco-lp-column").count() == 31
    assert root.locator(".ecco-lp-candidate").count() == 310
    assert root.locator(".ecco-lp-rank").count() == 31
    scroller = root.locator(".ecco-lp-scroll")
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth + 1000")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    # Columns keep their width (no squeezing) and sit side by side.
    boxes = [root.locator(f'.ecco-lp-column[data-layer="{i}"]').bounding_box() for i in (0, 1, 30)]
    assert boxes[0]["width"] == boxes[2]["width"] and boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] - 1
    # The last column can be scrolled to and hovered.
    last = root.locator('.ecco-lp-column[data-layer="30"] .ecco-lp-candidate').first
    last.scroll_into_view_if_needed()
    last.hover()
    assert "layer 30" in root.locator(".ecco-tooltip").text_content()
    assert root.locator('.ecco-lp-rank[data-layer="30"]').text_content() == "rank 1"


def test_lp_two_views_independent(open_html, tmp_path: Path) -> None:
    views = [View("layer_predictions", lp_data()), View("layer_predictions", lp_data(title="second"))]
    page = open_html(save_report(views, tmp_path / "two.html").read_text(encoding="utf-8"))
    roots = page.locator(".ecco-view-layer_predictions")
    a, b = roots.nth(0), roots.nth(1)
    assert a.get_attribute("id") != b.get_attribute("id")
    a.locator('.ecco-lp-column[data-layer="9"] .ecco-lp-candidate').first.hover()
    assert a.locator(".ecco-lp-same").count() == 9 and b.locator(".ecco-lp-same").count() == 0
    assert a.locator(".ecco-tooltip").is_visible() and b.locator(".ecco-tooltip").is_hidden()
    b.locator('.ecco-lp-column[data-layer="0"] .ecco-lp-candidate').first.hover()
    assert a.locator(".ecco-lp-same").count() == 0 and b.locator(".ecco-lp-same").count() > 0
    assert "layer 0" in b.locator(".ecco-tooltip").text_content()


# ---------------------------------------------------------------- rankings ------------------------

def test_rankings_grid_and_attributes(open_html, tmp_path: Path) -> None:
    data = rankings_data()
    page = open_view(open_html, tmp_path, "rankings", data)
    root = page.locator(".ecco-view-rankings")
    n_cols = len(data["columns"])
    cells = root.locator(".ecco-rank-cell")
    assert cells.count() == 31 * n_cols
    assert root.locator(".ecco-rank-row").count() == 31
    assert root.locator(".ecco-rank-row").all_text_contents() == [str(layer) for layer in range(31)]
    heads = root.locator(".ecco-rank-col")
    assert heads.all_text_contents() == [c["text"] for c in data["columns"]]
    assert heads.evaluate_all("els => els.map(e => Number(e.dataset.col))") == list(range(n_cols))
    got = cells.evaluate_all(
        "els => els.map(e => [Number(e.dataset.layer), Number(e.dataset.col), Number(e.dataset.rank),"
        " Number(e.dataset.prob), e.textContent])")
    want = [[layer, c, data["ranks"][layer][c], data["probs"][layer][c], str(data["ranks"][layer][c])]
            for layer in range(31) for c in range(n_cols)]
    assert got == want
    assert root.locator(".ecco-rank-caption").text_content() == data["caption"]
    # Headers are rotated when a token is long (" internationally").
    assert "ecco-rank-rotated" in root.locator(".ecco-rank-table").get_attribute("class")
    no_injected_markup(root)


def test_rankings_colour_darker_is_better(open_html, tmp_path: Path) -> None:
    data = rankings_data()
    data["ranks"][30][0], data["ranks"][0][2] = 1, 1000
    page = open_view(open_html, tmp_path, "rankings", data)
    root = page.locator(".ecco-view-rankings")
    top = root.locator('.ecco-rank-cell[data-layer="30"][data-col="0"]')
    poor = root.locator('.ecco-rank-cell[data-layer="0"][data-col="2"]')
    assert top.get_attribute("data-rank") == "1" and poor.get_attribute("data-rank") == "1000"
    assert luminance(top) < luminance(poor) - 0.1
    # Monotonic: a better rank is never lighter.
    pairs = root.locator(".ecco-rank-cell").evaluate_all("els => els.map(e => Number(e.dataset.rank))")
    lums = [luminance(root.locator(".ecco-rank-cell").nth(i)) for i in range(0, len(pairs), 7)]
    ranks = pairs[::7]
    for r1, l1 in zip(ranks, lums):
        for r2, l2 in zip(ranks, lums):
            if r1 < r2:
                assert l1 <= l2 + 1e-9, (r1, r2, l1, l2)
    # Text stays readable: white on the dark (rank 1) end, black on the light end.
    assert top.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    worst = max(ranks)
    light = root.locator(f'.ecco-rank-cell[data-rank="{max(pairs)}"]').first
    assert light.evaluate("e => getComputedStyle(e).color") == "rgb(0, 0, 0)" and worst <= max(pairs)


def test_rankings_hover_tooltip_and_headers(open_html, tmp_path: Path) -> None:
    data = rankings_data()
    page = open_view(open_html, tmp_path, "rankings", data)
    root = page.locator(".ecco-view-rankings")
    tip = root.locator(".ecco-tooltip")
    cell = root.locator('.ecco-rank-cell[data-layer="12"][data-col="2"]')
    cell.hover()
    text = tip.text_content()
    rank, prob = data["ranks"][12][2], data["probs"][12][2]
    assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(EVIL)
    assert "layer 12" in text and f"rank {rank}" in text and f"prob {prob * 100:.2f}%" in text
    active = root.locator(".ecco-active")
    assert active.count() == 2
    assert root.locator('.ecco-rank-row[data-layer="12"]').get_attribute("class").split().count("ecco-active") == 1
    assert "ecco-active" in root.locator('.ecco-rank-col[data-col="2"]').get_attribute("class")
    root.locator('.ecco-rank-cell[data-layer="30"][data-col="0"]').hover()
    assert "ecco-active" not in root.locator('.ecco-rank-row[data-layer="12"]').get_attribute("class")
    assert "ecco-active" in root.locator('.ecco-rank-row[data-layer="30"]').get_attribute("class")
    assert "rank 1" in tip.text_content() and "layer 30" in tip.text_content()
    page.mouse.move(0, 0)
    assert active.count() == 0 and tip.is_hidden()


def test_rankings_missing_values_and_short_headers(open_html, tmp_path: Path) -> None:
    data = {
        "layers": [0, 1, 2],
        "columns": [{"text": " a", "id": 1, "position": 3}, {"text": "b", "id": 2, "position": 3}],
        "ranks": [[5, None], [2, 7], [1, 1]],
        "probs": [[0.1, None], [0.2, 0.01], [0.9, 0.5]],
        "caption": "Candidates for position 3 after '<b>x</b>'",
        "title": None,
    }
    page = open_view(open_html, tmp_path, "rankings", data)
    root = page.locator(".ecco-view-rankings")
    missing = root.locator(".ecco-rank-cell.ecco-rank-missing")
    assert missing.count() == 1 and missing.get_attribute("data-rank") is None
    assert missing.text_content() == "\u2013"
    assert "ecco-rank-rotated" not in root.locator(".ecco-rank-table").get_attribute("class")
    assert root.locator(".ecco-rank-caption").text_content() == data["caption"]
    missing.hover()
    assert "rank \u2013" in root.locator(".ecco-tooltip").text_content()
    no_injected_markup(root)


def test_rankings_two_views_independent(open_html, tmp_path: Path) -> None:
    watch = rankings_data(n_layers=13, caption="Candidates for position 7 after 'The keys to the cabinet'")
    views = [View("rankings", rankings_data()), View("rankings", watch)]
    page = open_html(save_report(views, tmp_path / "two.html").read_text(encoding="utf-8"))
    a, b = page.locator(".ecco-view-rankings").nth(0), page.locator(".ecco-view-rankings").nth(1)
    assert a.locator(".ecco-rank-cell").count() == 31 * 6 and b.locator(".ecco-rank-cell").count() == 13 * 6
    a.locator('.ecco-rank-cell[data-layer="3"][data-col="1"]').hover()
    assert a.locator(".ecco-active").count() == 2 and b.locator(".ecco-active").count() == 0
    assert a.locator(".ecco-tooltip").is_visible() and b.locator(".ecco-tooltip").is_hidden()
    b.locator('.ecco-rank-cell[data-layer="3"][data-col="1"]').hover()
    assert a.locator(".ecco-active").count() == 0 and b.locator(".ecco-active").count() == 2


# ---------------------------------------------------------------- trajectory ----------------------

def test_traj_charts_lines_and_points(open_html, tmp_path: Path) -> None:
    data = traj_data()
    page = open_view(open_html, tmp_path, "trajectory", data)
    root = page.locator(".ecco-view-trajectory")
    charts = root.locator("svg.ecco-traj-chart")
    assert charts.evaluate_all("els => els.map(e => e.dataset.key)") == ["entropy", "kl", "prob"]
    assert root.locator(".ecco-traj-title").all_text_contents() == [
        "Entropy (nats)", "KL to the last layer (nats)", "Probability of the next token"]
    for s, chart in zip(data["series"], charts.all()):
        lines = chart.locator("path.ecco-traj-line")
        assert lines.evaluate_all("els => els.map(e => Number(e.dataset.token))") == list(range(len(TRAJ_TOKENS)))
        for t in range(len(TRAJ_TOKENS)):
            values = s["values"][t]
            points = chart.locator(f'.ecco-traj-point[data-token="{t}"]')
            assert points.evaluate_all("els => els.map(e => [Number(e.dataset.layer), Number(e.dataset.value)])") == [
                [layer, v] for layer, v in enumerate(values) if v is not None]
            # Higher values are drawn higher up (smaller y).
            cys = points.evaluate_all("els => els.map(e => Number(e.getAttribute('cy')))")
            vals = [v for v in values if v is not None]
            for (v1, y1), (v2, y2) in zip(zip(vals, cys), zip(vals[1:], cys[1:])):
                assert (v1 - v2) * (y2 - y1) >= -1e-9
            # A null value breaks the line into separate pieces.
            d = lines.nth(t).get_attribute("d")
            inner_gap = any(v is None for v in values[1:-1]) and values[0] is not None
            assert d.count("M") == (2 if inner_gap else 1)
        # Axes: ticks and labels.
        assert chart.locator(".ecco-traj-xtick").count() >= 3 and chart.locator(".ecco-traj-ytick").count() >= 3
        assert "layer" in chart.locator(".ecco-traj-label").all_text_contents()
    # Distinct colours per token, the same in every chart and in the legend.
    colours = charts.first.locator("path.ecco-traj-line").evaluate_all("els => els.map(e => e.getAttribute('stroke'))")
    assert len(set(colours)) == len(TRAJ_TOKENS)
    assert charts.nth(2).locator("path.ecco-traj-line").evaluate_all(
        "els => els.map(e => e.getAttribute('stroke'))") == colours
    legend = root.locator(".ecco-traj-legend-item")
    assert legend.count() == len(TRAJ_TOKENS)
    assert root.locator(".ecco-traj-legend-text").all_text_contents() == TRAJ_TOKENS
    no_injected_markup(root)


def test_traj_legend_click_toggles_lines(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "trajectory", traj_data())
    root = page.locator(".ecco-view-trajectory")
    lines1 = root.locator('path.ecco-traj-line[data-token="1"]')
    assert lines1.count() == 3 and all(line.is_visible() for line in lines1.all())
    item = root.locator('.ecco-traj-legend-item[data-token="1"]')
    item.click()
    assert all("ecco-hidden" in line.get_attribute("class") for line in lines1.all())
    assert all(not line.is_visible() for line in lines1.all())
    assert all(not p.is_visible() for p in root.locator('.ecco-traj-point[data-token="1"]').all())
    assert item.get_attribute("aria-pressed") == "false" and "ecco-off" in item.get_attribute("class")
    others = root.locator('path.ecco-traj-line:not([data-token="1"])')
    assert others.count() == 9 and all(line.is_visible() for line in others.all())
    item.click()
    assert all(line.is_visible() and "ecco-hidden" not in line.get_attribute("class") for line in lines1.all())
    assert item.get_attribute("aria-pressed") == "true"
    # Keyboard: the legend entries are buttons.
    root.locator('.ecco-traj-legend-item[data-token="3"]').focus()
    page.keyboard.press("Enter")
    assert not root.locator('path.ecco-traj-line[data-token="3"]').first.is_visible()


def test_traj_emphasis_and_tooltip(open_html, tmp_path: Path) -> None:
    data = traj_data()
    page = open_view(open_html, tmp_path, "trajectory", data)
    root = page.locator(".ecco-view-trajectory")
    emph_tokens = lambda: sorted(set(root.locator("path.ecco-traj-line.ecco-emph").evaluate_all(  # noqa: E731
        "els => els.map(e => Number(e.dataset.token))")))
    root.locator('.ecco-traj-legend-item[data-token="2"]').hover()
    assert emph_tokens() == [2] and root.locator("path.ecco-traj-line.ecco-emph").count() == 3
    # The dimming is a 0.1 s CSS transition: finish it before reading (a loaded machine may not be done).
    dimmed = root.locator('path.ecco-traj-line[data-token="0"]').first.evaluate(
        "e => { e.getAnimations().forEach(a => a.finish()); return Number(getComputedStyle(e).opacity); }")
    assert dimmed < 0.5
    page.mouse.move(0, 0)
    assert emph_tokens() == []
    # Hovering a line (its wide hover target) emphasises that token in all charts.
    root.locator('svg.ecco-traj-chart[data-key="kl"] path.ecco-traj-hit[data-token="0"]').dispatch_event("mouseover")
    assert emph_tokens() == [0]
    # Hovering a point shows its numbers.
    tip = root.locator(".ecco-tooltip")
    point = root.locator('svg.ecco-traj-chart[data-key="entropy"] .ecco-traj-point[data-token="1"][data-layer="4"]')
    point.hover()
    value = data["series"][0]["values"][1][4]
    text = tip.text_content()
    assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(EVIL)
    assert "layer 4" in text and f"Entropy {value:.4g} nats" in text and "position 5" in text
    assert emph_tokens() == [1]
    prob_point = root.locator('svg.ecco-traj-chart[data-key="prob"] .ecco-traj-point[data-token="0"][data-layer="6"]')
    prob_point.hover()
    assert "layer 6" in tip.text_content() and str(data["series"][2]["values"][0][6]) in tip.text_content()
    page.mouse.move(0, 0)
    assert tip.is_hidden()


def test_traj_two_views_independent(open_html, tmp_path: Path) -> None:
    views = [View("trajectory", traj_data()), View("trajectory", traj_data(n_layers=31, title="second"))]
    page = open_html(save_report(views, tmp_path / "two.html").read_text(encoding="utf-8"))
    a, b = page.locator(".ecco-view-trajectory").nth(0), page.locator(".ecco-view-trajectory").nth(1)
    assert b.locator('.ecco-traj-point[data-layer="30"]').count() == 3 * len(TRAJ_TOKENS)
    a.locator('.ecco-traj-legend-item[data-token="0"]').click()
    assert not a.locator('path.ecco-traj-line[data-token="0"]').first.is_visible()
    assert b.locator('path.ecco-traj-line[data-token="0"]').first.is_visible()
    b.locator('.ecco-traj-legend-item[data-token="2"]').hover()
    assert a.locator(".ecco-emph").count() == 0 and b.locator("path.ecco-traj-line.ecco-emph").count() == 3


def test_traj_degenerate_data(open_html, tmp_path: Path) -> None:
    data = {"layers": [0, 1, 2], "tokens": [{"text": "x", "position": 0}],
            "series": [{"key": "kl", "label": "KL", "unit": "nats", "values": [[None, None, None]]},
                       {"key": "prob", "label": "p", "unit": "", "values": [[0.5, 0.5, 0.5]]}],
            "title": None}
    page = open_view(open_html, tmp_path, "trajectory", data)
    root = page.locator(".ecco-view-trajectory")
    assert root.locator("svg.ecco-traj-chart").count() == 2
    assert root.locator('svg[data-key="kl"] .ecco-traj-point').count() == 0
    assert root.locator('svg[data-key="prob"] .ecco-traj-point').count() == 3
    html = root.evaluate("e => e.innerHTML")
    assert "NaN" not in html and "Infinity" not in html


# ---------------------------------------------------------------- screenshots ---------------------

def test_screenshots(open_html, tmp_path: Path) -> None:
    """Pictures for a human check (light, then dark theme)."""
    shots = [("layer_predictions", lp_data(n_layers=31, topk=8, context_len=20), tmp_path / "lp"),
             ("rankings", rankings_data(), tmp_path / "rankings"),
             ("trajectory", traj_data(n_layers=25), tmp_path / "traj")]
    for view, data, stem in shots:
        page = open_view(open_html, tmp_path, view, data)
        page.set_viewport_size({"width": 1100, "height": 600})
        root = page.locator(f".ecco-view-{view}")
        if view == "layer_predictions":
            root.locator('.ecco-lp-column[data-layer="6"] .ecco-lp-candidate').nth(2).hover()
        elif view == "rankings":
            root.locator('.ecco-rank-cell[data-layer="9"][data-col="2"]').hover()
        else:
            root.locator('.ecco-traj-legend-item[data-token="3"]').click()
            root.locator('svg[data-key="entropy"] .ecco-traj-point[data-token="1"][data-layer="6"]').hover()
        page.screenshot(path=f"{stem}.png", full_page=True)
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=f"{stem}_dark.png", full_page=True)
        assert root.locator(".ecco-tooltip").is_visible()
