"""The neuron-activation views in headless Chromium: "nmf" (factor explorer), "neuron" (one neuron
over the text), "top_neurons" (most active neurons for a token) and "similarity" (layer x layer
CKA/SVCCA heatmap)."""

from __future__ import annotations

import colorsys
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ecco.render import View, save_report

pytestmark = pytest.mark.browser

EVIL = "</script><b>x</b>"

# (text, sequence, position, is_input, continues_word, special)
NMF_TOKENS = [
    ("The", 0, 0, True, False, False),
    (" quick", 0, 1, True, False, False),
    (" brown", 0, 2, True, False, False),
    (" fox", 0, 3, True, False, False),
    (EVIL, 0, 4, True, False, False),
    ("\n", 0, 5, False, False, False),
    (" jumps", 0, 6, False, False, False),
    ("<|endoftext|>", 1, 0, True, False, True),
    ("Hello", 1, 1, True, False, False),
    (" wor", 1, 2, True, False, False),
    ("ld", 1, 3, False, True, False),
    (".", 1, 4, False, False, False),
]
# 4 factors x 12 tokens; factor 2 is zero everywhere; tokens 2, 5 and 11 are zero in every factor.
NMF_FACTORS = [
    [1.5, 0.25, 0.0, 0.75, 2.0, 0.0, 0.5, 0.0, 0.125, 1.0, 0.375, 0.0],
    [0.5, 1.25, 0.0, 0.25, 0.5, 0.0, 3.0, 0.0, 0.25, 0.5, 2.5, 0.0],
    [0.0] * 12,
    [0.25, 0.5, 0.0, 1.5, 0.25, 0.0, 0.5, 0.75, 2.0, 0.25, 0.5, 0.0],
]


def tok(text, seq, pos, is_input, cont, special) -> dict:
    return {"text": text, "position": pos, "sequence": seq, "is_input": is_input,
            "continues_word": cont, "special": special}


def nmf_data(factors=None, title: str | None = "distilgpt2", caption: str | None = "NMF, 4 components, layers 0-5 (decoder)",
             **extra) -> dict:
    return {"tokens": [tok(*t) for t in NMF_TOKENS], "factors": NMF_FACTORS if factors is None else factors,
            "method": "nmf", "caption": caption, "title": title, **extra}


NEURON_VALUES = [0.8123456, -0.4, None, 1.6, -2.5, 0.0, 0.05, -0.0123456, 2.0, 0.3, -1.0, 0.7]


def neuron_data(values=NEURON_VALUES, title: str | None = None) -> dict:
    return {"tokens": [tok(*t) for t in NMF_TOKENS], "values": values, "layer": 3, "neuron": 512,
            "stack": "decoder", "title": title}


TOP = [(12, 345, 3.25), (0, 7, 2.5), (5, 1023, 1.0), (11, 3, 0.125), (2, 44, -0.5), (7, 8, -1.625)]


def top_data(neurons=TOP, title: str | None = "Top neurons") -> dict:
    return {"token": {"text": EVIL, "position": 4},
            "neurons": [{"layer": la, "neuron": n, "value": v} for la, n, v in neurons], "title": title}


SIM = [
    [1.0, 0.87, 0.61, 0.42, 0.3],
    [0.87, 1.0, 0.79, 0.55, None],
    [0.61, 0.79, 1.0, 0.8134, 0.6],
    [0.42, 0.55, 0.8134, 1.0, 0.77],
    [0.3, None, 0.6, 0.77, 1.0],
]


def sim_data(matrix=SIM, labels=None, method: str = "cka", title: str | None = "Layer similarity") -> dict:
    return {"labels": labels or [str(i) for i in range(len(matrix))], "matrix": matrix, "method": method, "title": title}


# ---------------------------------------------------------------- helpers -------------------------

def open_view(open_html, tmp_path: Path, view: str, data: dict):
    path = View(view, data).save_html(tmp_path / f"{view}.html")
    return open_html(path.read_text(encoding="utf-8"))


def rgba(color: str) -> tuple[float, float, float, float]:
    parts = [float(v) for v in re.findall(r"[\d.]+", color)]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def hue(color: str) -> float:
    r, g, b, _ = rgba(color)
    return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] * 360


def no_injected_markup(root) -> None:
    assert root.locator("b, i, script").count() == 0
    text = root.inner_text()
    assert "NaN" not in text and "undefined" not in text and "null" not in text and "Infinity" not in text


def token_state(root) -> list[tuple[str | None, str | None]]:
    return [tuple(s) for s in root.locator(".ecco-nmf-text .ecco-token").evaluate_all(
        "els => els.map(e => [e.dataset.factor === undefined ? null : e.dataset.factor,"
        " e.dataset.value === undefined ? null : e.dataset.value])")]


def expected_default() -> list[tuple[str | None, float | None]]:
    f = np.array(NMF_FACTORS)
    out = []
    for i in range(f.shape[1]):
        k = int(np.argmax(f[:, i]))
        out.append((None, None) if f[k, i] <= 0 else (str(k), float(f[k, i])))
    return out


def assert_default(root) -> None:
    got = token_state(root)
    want = expected_default()
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [None if g[1] is None else float(g[1]) for g in got] == [w[1] for w in want]


def assert_isolated(root, k: int) -> None:
    got = token_state(root)
    for i, (factor, value) in enumerate(got):
        v = NMF_FACTORS[k][i]
        if v > 0:
            assert factor == str(k) and float(value) == v, (i, factor, value)
        else:
            assert factor is None and value is None, (i, factor, value)
    rows = root.locator(".ecco-nmf-factor")
    assert rows.evaluate_all("els => els.map(e => e.classList.contains('ecco-selected'))") == [
        j == k for j in range(len(NMF_FACTORS))]
    assert rows.evaluate_all("els => els.map(e => e.classList.contains('ecco-dimmed'))") == [
        j != k for j in range(len(NMF_FACTORS))]


def away(page) -> None:
    """Move the pointer off every factor and token."""
    page.mouse.move(1, 1)


# ---------------------------------------------------------------- nmf -----------------------------

def test_nmf_layout_text_and_sparklines(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "nmf", nmf_data())
    root = page.locator(".ecco-view-nmf")
    assert page.evaluate("typeof window.ecco.views.nmf") == "function"
    tokens = root.locator(".ecco-nmf-text .ecco-token")
    assert tokens.all_text_contents() == [t[0] for t in NMF_TOKENS]
    assert tokens.evaluate_all("els => els.map(e => [Number(e.dataset.position), Number(e.dataset.sequence)])") == [
        [t[2], t[1]] for t in NMF_TOKENS]
    # One paragraph per sequence, in order.
    seqs = root.locator(".ecco-nmf-seq")
    assert seqs.count() == 2
    assert seqs.nth(0).locator(".ecco-token").count() == 7 and seqs.nth(1).locator(".ecco-token").count() == 5
    assert seqs.nth(1).locator(".ecco-token").first.text_content() == "<|endoftext|>"
    assert seqs.nth(1).locator(".ecco-special").count() == 1
    # " wor" + "ld" share one word group.
    assert seqs.nth(1).locator(".ecco-word").nth(2).locator(".ecco-token").all_text_contents() == [" wor", "ld"]
    # One sparkline per factor, labelled and with an area in the factor's colour.
    rows = root.locator(".ecco-nmf-factor")
    assert rows.count() == 4
    assert rows.evaluate_all("els => els.map(e => Number(e.dataset.factor))") == [0, 1, 2, 3]
    assert root.locator(".ecco-nmf-factor-label").all_text_contents() == ["factor 0", "factor 1", "factor 2", "factor 3"]
    assert root.locator(".ecco-nmf-factor-max").all_text_contents() == ["max 2", "max 3", "all zero", "max 2"]
    for k in range(4):
        spark = rows.nth(k).locator("svg.ecco-nmf-spark")
        assert spark.count() == 1
        line = spark.locator(".ecco-nmf-line")
        assert line.get_attribute("stroke") == rows.nth(k).locator(".ecco-nmf-swatch").evaluate(
            "e => getComputedStyle(e).backgroundColor")
        # 12 points: the line goes through every token position.
        assert len(re.findall(r"[ML]", line.get_attribute("d"))) == 12
        # A dashed separator between the two sequences.
        assert spark.locator(".ecco-nmf-seqline").count() == 1
    # The all-zero factor lies flat on the baseline.
    ys = {round(float(y), 2) for y in re.findall(r",([\d.]+)", rows.nth(2).locator(".ecco-nmf-line").get_attribute("d"))}
    assert len(ys) == 1
    # Ten distinct hues for the first factors.
    assert root.locator(".ecco-title").text_content() == "distilgpt2"
    assert root.locator(".ecco-nmf-caption").text_content() == "NMF, 4 components, layers 0-5 (decoder)"
    no_injected_markup(root)


def test_nmf_default_colours_by_strongest_factor(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "nmf", nmf_data())
    root = page.locator(".ecco-view-nmf")
    assert_default(root)
    f = np.array(NMF_FACTORS)
    # Spot checks against numpy's argmax on tokens where different factors win.
    state = token_state(root)
    for i in (0, 1, 3, 4, 6, 7, 8, 10):
        assert state[i][0] == str(int(np.argmax(f[:, i])))
    assert {s[0] for s in state} == {"0", "1", "3", None}
    # Tokens zero in every factor stay uncoloured.
    tokens = root.locator(".ecco-nmf-text .ecco-token")
    for i in (2, 5, 11):
        assert state[i] == (None, None)
        assert rgba(tokens.nth(i).evaluate("e => getComputedStyle(e).backgroundColor"))[3] == 0
    # A coloured token has its factor's colour, more opaque the closer it is to the factor's max.
    swatches = root.locator(".ecco-nmf-factor .ecco-nmf-swatch").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)")
    alphas = {}
    for i, (k, v) in enumerate(state):
        if k is None:
            continue
        color = tokens.nth(i).evaluate("e => getComputedStyle(e).backgroundColor")
        assert rgba(color)[:3] == rgba(swatches[int(k)])[:3]
        alphas[i] = (float(v) / f[int(k)].max(), rgba(color)[3])
    ordered = sorted(alphas.values())
    assert [a for _, a in ordered] == sorted(a for _, a in ordered)
    assert 0 < ordered[0][1] < ordered[-1][1] <= 0.8  # semi-transparent: text stays readable
    assert root.locator(".ecco-nmf-factor.ecco-selected, .ecco-nmf-factor.ecco-pinned").count() == 0


def test_nmf_hover_isolates_each_factor(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "nmf", nmf_data())
    root = page.locator(".ecco-view-nmf")
    tokens = root.locator(".ecco-nmf-text .ecco-token")
    f = np.array(NMF_FACTORS)
    for k in (0, 1, 3):
        root.locator(f'.ecco-nmf-factor[data-factor="{k}"] svg').hover()
        assert_isolated(root, k)
        # Intensity = value / factor max: the factor's argmax token is the most opaque.
        alphas = tokens.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
        alphas = [rgba(a)[3] for a in alphas]
        assert int(np.argmax(alphas)) == int(np.argmax(f[k]))
        assert root.locator(".ecco-nmf-status").text_content().startswith(f"factor {k}")
    # The all-zero factor: nothing coloured, and the status says so.
    root.locator('.ecco-nmf-factor[data-factor="2"]').hover()
    assert_isolated(root, 2)
    assert all(s == (None, None) for s in token_state(root))
    assert "zero at every token" in root.locator(".ecco-nmf-status").text_content()
    away(page)
    assert_default(root)
    assert root.locator(".ecco-nmf-factor.ecco-selected, .ecco-nmf-factor.ecco-dimmed").count() == 0


def test_nmf_click_pins_and_unpins(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "nmf", nmf_data())
    root = page.locator(".ecco-view-nmf")
    f1 = root.locator('.ecco-nmf-factor[data-factor="1"]')
    f3 = root.locator('.ecco-nmf-factor[data-factor="3"]')
    f1.click()
    assert f1.get_attribute("class").split().count("ecco-pinned") == 1
    assert f1.get_attribute("aria-pressed") == "true"
    # The pin survives leaving the sparklines (even hovering tokens).
    root.locator(".ecco-nmf-text .ecco-token").nth(8).hover()
    assert_isolated(root, 1)
    # Hovering another factor previews it; the pinned one keeps its mark.
    f3.hover()
    assert_isolated(root, 3)
    assert "ecco-pinned" in f1.get_attribute("class") and "ecco-pinned" not in f3.get_attribute("class")
    assert "factor 1 is pinned" in root.locator(".ecco-nmf-status").text_content()
    away(page)
    assert_isolated(root, 1)
    # Clicking another factor moves the pin.
    f3.click()
    away(page)
    assert_isolated(root, 3)
    assert root.locator(".ecco-nmf-factor.ecco-pinned").evaluate_all("els => els.map(e => e.dataset.factor)") == ["3"]
    # Clicking the pinned factor again unpins it: back to the default once the pointer leaves.
    f3.click()
    assert root.locator(".ecco-nmf-factor.ecco-pinned").count() == 0
    assert f3.get_attribute("aria-pressed") == "false"
    away(page)
    assert_default(root)
    # Keyboard: Enter on a focused factor pins it.
    f1.focus()
    page.keyboard.press("Enter")
    away(page)
    assert_isolated(root, 1)
    assert "ecco-pinned" in f1.get_attribute("class")


def test_nmf_token_tooltip_lists_every_factor(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "nmf", nmf_data())
    root = page.locator(".ecco-view-nmf")
    tip = root.locator(".ecco-tooltip")
    assert tip.is_hidden()
    gmax = max(max(r) for r in NMF_FACTORS)
    for i in (4, 8):
        root.locator(".ecco-nmf-text .ecco-token").nth(i).hover()
        assert tip.is_visible()
        assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(NMF_TOKENS[i][0])
        rows = tip.locator(".ecco-nmf-tip-row")
        assert rows.count() == 4
        got = rows.evaluate_all("els => els.map(e => [e.querySelector('.ecco-nmf-tip-label').textContent,"
                                " e.querySelector('.ecco-nmf-tip-value').textContent,"
                                " parseFloat(e.querySelector('.ecco-nmf-tip-bar').style.width)])")
        want = [[f"factor {k}", f"{NMF_FACTORS[k][i]:g}", round(100 * NMF_FACTORS[k][i] / gmax, 1)] for k in range(4)]
        assert got == want
        # The factor whose colour the token shows is marked.
        argmax = int(np.argmax([r[i] for r in NMF_FACTORS]))
        assert tip.locator(".ecco-nmf-tip-shown").get_attribute("data-factor") == str(argmax)
        assert f"position {NMF_TOKENS[i][2]} (sequence {NMF_TOKENS[i][1]})" in tip.text_content()
        # The token's position is marked on every sparkline.
        assert root.locator('.ecco-nmf-marker[visibility="visible"]').count() == 4
    # The generated newline shows as a marker glyph and is labelled generated.
    root.locator(".ecco-nmf-text .ecco-token").nth(5).hover()
    assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps("\n")
    assert "generated" in tip.text_content()
    away(page)
    assert tip.is_hidden()
    assert root.locator('.ecco-nmf-marker[visibility="visible"]').count() == 0
    no_injected_markup(root)


def test_nmf_many_factors_get_distinct_colours(open_html, tmp_path: Path) -> None:
    n = 14
    factors = [[float((i + k) % 5 == 0) * (1 + k) for i in range(len(NMF_TOKENS))] for k in range(n)]
    page = open_view(open_html, tmp_path, "nmf", nmf_data(factors=factors, factor_labels=[f"{k}+" for k in range(n)]))
    root = page.locator(".ecco-view-nmf")
    colors = root.locator(".ecco-nmf-factor .ecco-nmf-swatch").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(colors)) == n
    hues = sorted(hue(c) for c in colors[:10])
    gaps = [b - a for a, b in zip(hues, hues[1:])] + [360 - hues[-1] + hues[0]]
    assert min(gaps) > 4  # ten distinct hues
    assert root.locator(".ecco-nmf-factor-label").nth(3).text_content() == "factor 3+"
    root.locator('.ecco-nmf-factor[data-factor="12"]').hover()
    state = token_state(root)
    assert [i for i, s in enumerate(state) if s[0] is not None] == [i for i in range(len(NMF_TOKENS)) if factors[12][i] > 0]
    no_injected_markup(root)


def test_nmf_missing_values_and_empty_data(open_html, tmp_path: Path) -> None:
    factors = [list(r) for r in NMF_FACTORS]
    factors[0][4] = None  # token 4 now strongest in factor 1 (0.5 > 0.25)
    factors[3] = factors[3][:6]  # a short row: the rest is missing
    page = open_view(open_html, tmp_path, "nmf", nmf_data(factors=factors, title=None, caption=None))
    root = page.locator(".ecco-view-nmf")
    state = token_state(root)
    assert state[4] == ("1", "0.5")
    assert state[7] == (None, None)  # only factor 3 had a value there
    root.locator(".ecco-nmf-text .ecco-token").nth(4).hover()
    values = root.locator(".ecco-tooltip .ecco-nmf-tip-value").all_text_contents()
    assert values == ["\u2013", "0.5", "0", "0.25"]
    no_injected_markup(root)
    assert root.locator(".ecco-title").count() == 0
    page = open_view(open_html, tmp_path, "nmf", {"tokens": [], "factors": [], "method": "nmf", "caption": None, "title": None})
    assert page.locator(".ecco-view-nmf .ecco-note").text_content() == "no tokens to show"


# ---------------------------------------------------------------- neuron --------------------------

def test_neuron_values_and_diverging_colours(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "neuron", neuron_data(title="<i>neuron</i>"))
    root = page.locator(".ecco-view-neuron")
    tokens = root.locator(".ecco-token")
    assert tokens.all_text_contents() == [t[0] for t in NMF_TOKENS]
    assert root.locator(".ecco-neuron-seq").count() == 2
    got = tokens.evaluate_all("els => els.map(e => e.dataset.value === undefined ? null : Number(e.dataset.value))")
    assert got == NEURON_VALUES
    assert tokens.evaluate_all("els => els.map(e => Number(e.dataset.position))") == [t[2] for t in NMF_TOKENS]
    classes = tokens.evaluate_all(
        "els => els.map(e => ['ecco-pos', 'ecco-neg', 'ecco-zero', 'ecco-missing'].find(c => e.classList.contains(c)))")
    assert classes == [None if v is None else "ecco-pos" if v > 0 else "ecco-neg" if v < 0 else "ecco-zero" for v in
                       NEURON_VALUES][:2] + ["ecco-missing"] + classes[3:]
    assert classes[3:] == ["ecco-pos" if v > 0 else "ecco-neg" if v < 0 else "ecco-zero" for v in NEURON_VALUES[3:]]
    colors = tokens.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    max_abs = max(abs(v) for v in NEURON_VALUES if v is not None)
    pos_hues = {round(hue(c)) for c, v in zip(colors, NEURON_VALUES) if v is not None and v > 0}
    neg_hues = {round(hue(c)) for c, v in zip(colors, NEURON_VALUES) if v is not None and v < 0}
    assert len(pos_hues) == 1 and len(neg_hues) == 1
    pos_hue, neg_hue = pos_hues.pop(), neg_hues.pop()
    assert 10 <= pos_hue <= 50 and 200 <= neg_hue <= 240  # orange vs blue
    # Intensity = |v| / max|v|: -2.5 (the max) is the most opaque, 0 is transparent.
    alphas = [rgba(c)[3] for c in colors]
    assert alphas[4] == max(alphas) and alphas[5] == 0
    for (v1, a1), (v2, a2) in zip(*[[(abs(v), a) for v, a in zip(NEURON_VALUES, alphas) if v is not None]] * 2):
        assert (v1 < v2) == (a1 < a2) or v1 == v2
    assert abs(alphas[3] / alphas[4] - 1.6 / max_abs) < 0.01
    legend = root.locator(".ecco-neuron-legend").text_content()
    assert "max |value| 2.5" in legend and "\u22122.5" in legend and "+2.5" in legend and "no value" in legend
    assert root.locator(".ecco-neuron-name").text_content() == "layer 3 \u00b7 neuron 512"
    assert root.locator(".ecco-neuron-stack").text_content() == "decoder"
    assert root.locator(".ecco-title").text_content() == "<i>neuron</i>"
    no_injected_markup(root)


def test_neuron_tooltip(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "neuron", neuron_data())
    root = page.locator(".ecco-view-neuron")
    tip = root.locator(".ecco-tooltip")
    tokens = root.locator(".ecco-token")
    cases = {0: "+0.8123", 4: "-2.5", 7: "-0.01235", 2: "\u2013", 5: "0"}
    for i, shown in cases.items():
        tokens.nth(i).hover()
        assert tip.is_visible()
        assert tip.locator(".ecco-tooltip-title").text_content() == json.dumps(NMF_TOKENS[i][0])
        assert f"value {shown}" in tip.text_content()
        assert "layer 3" in tip.text_content() and "neuron 512" in tip.text_content()
    no_injected_markup(root)


# ---------------------------------------------------------------- top_neurons ---------------------

def test_top_neurons_order_labels_and_bars(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "top_neurons", top_data())
    root = page.locator(".ecco-view-top_neurons")
    rows = root.locator(".ecco-top-neuron")
    assert rows.count() == len(TOP)
    got = rows.evaluate_all("els => els.map(e => [Number(e.dataset.layer), Number(e.dataset.neuron), Number(e.dataset.value)])")
    assert got == [list(t) for t in TOP]
    assert root.locator(".ecco-tn-label").all_text_contents() == [f"L{la} \u00b7 n{n}" for la, n, _ in TOP]
    assert root.locator(".ecco-tn-value").all_text_contents() == [f"{v:g}" for _, _, v in TOP]
    max_abs = max(abs(v) for _, _, v in TOP)
    widths = root.locator(".ecco-top-neuron .ecco-bar").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert widths == pytest.approx([100 * abs(v) / max_abs for _, _, v in TOP], abs=0.01)
    # Diverging: negative bars sit in the left half, in another colour.
    halves = root.locator(".ecco-top-neuron .ecco-bar").evaluate_all(
        "els => els.map(e => e.parentElement.classList.contains('ecco-tn-half-neg'))")
    assert halves == [v < 0 for _, _, v in TOP]
    colors = root.locator(".ecco-top-neuron .ecco-bar").evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    assert len({colors[0], colors[-1]}) == 2 and hue(colors[0]) < 60 and 180 < hue(colors[-1]) < 260
    # Rendered widths follow: the rank-1 bar fills its half.
    half = root.locator(".ecco-top-neuron").first.locator(".ecco-tn-half-pos").bounding_box()["width"]
    bar = root.locator(".ecco-top-neuron").first.locator(".ecco-bar").bounding_box()["width"]
    assert abs(bar - half) < 1.5
    header = root.locator(".ecco-tn-header")
    assert header.locator(".ecco-tn-chip").text_content() == EVIL and "position 4" in header.text_content()
    rows.nth(1).hover()
    tip = root.locator(".ecco-tooltip")
    assert tip.locator(".ecco-tooltip-title").text_content() == "layer 0, neuron 7"
    assert "value 2.5" in tip.text_content() and "rank 2" in tip.text_content()
    no_injected_markup(root)


def test_top_neurons_all_positive_and_nulls(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "top_neurons", top_data(neurons=[(1, 2, 4.0), (3, 4, 1.0), (5, 6, None)], title=None))
    root = page.locator(".ecco-view-top_neurons")
    assert root.locator(".ecco-tn-half-neg").count() == 0
    widths = root.locator(".ecco-bar").evaluate_all("els => els.map(e => e.style.width)")
    assert widths == ["100%", "25%", "0%"]
    assert root.locator(".ecco-top-neuron").nth(2).get_attribute("data-value") is None
    assert root.locator(".ecco-tn-value").all_text_contents() == ["4", "1", "\u2013"]
    no_injected_markup(root)


# ---------------------------------------------------------------- similarity ----------------------

def test_similarity_cells_match_matrix(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "similarity", sim_data())
    root = page.locator(".ecco-view-similarity")
    cells = root.locator(".ecco-sim-cell")
    n = len(SIM)
    assert cells.count() == n * n
    got = cells.evaluate_all(
        "els => els.map(e => [Number(e.dataset.row), Number(e.dataset.col),"
        " e.dataset.value === undefined ? null : Number(e.dataset.value), e.textContent])")
    want = [[r, c, SIM[r][c], "\u2013" if SIM[r][c] is None else f"{SIM[r][c]:.2f}"] for r in range(n) for c in range(n)]
    assert got == want
    for i in range(n):
        assert root.locator(f'.ecco-sim-cell[data-row="{i}"][data-col="{i}"]').text_content() == "1.00"
    # Labels on both axes.
    assert root.locator(".ecco-sim-label.ecco-sim-col").all_text_contents() == [str(i) for i in range(n)]
    assert root.locator(".ecco-sim-label.ecco-sim-row").all_text_contents() == [str(i) for i in range(n)]
    # Viridis: 1.0 is the bright yellow end, lower values darker; readable text colour.
    one = rgba(root.locator('.ecco-sim-cell[data-row="0"][data-col="0"]').evaluate("e => getComputedStyle(e).backgroundColor"))
    low = rgba(root.locator('.ecco-sim-cell[data-row="0"][data-col="4"]').evaluate("e => getComputedStyle(e).backgroundColor"))
    assert one[:3] == (253, 231, 37) and sum(low[:3]) < sum(one[:3])
    assert root.locator('.ecco-sim-cell[data-row="0"][data-col="0"]').evaluate("e => getComputedStyle(e).color") == "rgb(0, 0, 0)"
    cell = root.locator('.ecco-sim-cell[data-row="0"][data-col="4"]')
    assert cell.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    missing = root.locator('.ecco-sim-cell[data-row="1"][data-col="4"]')
    assert "ecco-missing" in missing.get_attribute("class") and missing.get_attribute("data-value") is None
    assert "CKA" in root.locator(".ecco-sim-header").inner_text()
    no_injected_markup(root)


def test_similarity_hover_tooltip_and_labels(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "similarity", sim_data())
    root = page.locator(".ecco-view-similarity")
    tip = root.locator(".ecco-tooltip")
    root.locator('.ecco-sim-cell[data-row="0"][data-col="1"]').hover()
    assert tip.locator(".ecco-sim-tip").text_content() == "layer 0 vs layer 1: 0.87 (cka)"
    active = root.locator(".ecco-sim-label.ecco-active")
    assert active.evaluate_all("els => els.map(e => [e.dataset.axis, e.dataset.index])") == [["col", "1"], ["row", "0"]]
    root.locator('.ecco-sim-cell[data-row="2"][data-col="3"]').hover()
    assert tip.locator(".ecco-sim-tip").text_content() == "layer 2 vs layer 3: 0.81 (cka)"
    assert "exact 0.8134" in tip.text_content()
    assert sorted(active.evaluate_all("els => els.map(e => e.dataset.axis + e.dataset.index)")) == ["col3", "row2"]
    root.locator('.ecco-sim-cell[data-row="4"][data-col="1"]').hover()
    assert tip.locator(".ecco-sim-tip").text_content() == "layer 4 vs layer 1: \u2013 (cka)"
    away(page)
    assert active.count() == 0 and tip.is_hidden()
    # Named labels are used as they are; an evil label stays text.
    page = open_view(open_html, tmp_path, "similarity",
                     sim_data(matrix=[[1.0, 0.5], [0.5, 1.0]], labels=["embed", EVIL], method="svcca", title=None))
    root = page.locator(".ecco-view-similarity")
    root.locator('.ecco-sim-cell[data-row="1"][data-col="0"]').hover()
    assert root.locator(".ecco-sim-tip").text_content() == f"{EVIL} vs embed: 0.50 (svcca)"
    no_injected_markup(root)


# ---------------------------------------------------------------- many views on one page ----------

def test_views_on_one_page_are_independent(open_html, tmp_path: Path) -> None:
    other = [[v * 2 for v in row] for row in reversed(NMF_FACTORS)]
    views = [View("nmf", nmf_data()), View("nmf", nmf_data(factors=other)), View("neuron", neuron_data()),
             View("similarity", sim_data()), View("top_neurons", top_data()), View("similarity", sim_data())]
    path = save_report(views, tmp_path / "report.html")
    page = open_html(path.read_text(encoding="utf-8"))
    first, second = page.locator(".ecco-view-nmf").nth(0), page.locator(".ecco-view-nmf").nth(1)
    ids = page.locator(".ecco-view").evaluate_all("els => els.map(e => e.id)")
    assert len(set(ids)) == len(views)
    before = token_state(second)
    first.locator('.ecco-nmf-factor[data-factor="1"]').click()
    away(page)
    assert_isolated(first, 1)
    assert token_state(second) == before
    assert second.locator(".ecco-nmf-factor.ecco-pinned, .ecco-nmf-factor.ecco-selected").count() == 0
    # Each view's tooltip is its own.
    second.locator(".ecco-nmf-text .ecco-token").nth(0).hover()
    assert second.locator(".ecco-tooltip").is_visible() and first.locator(".ecco-tooltip").is_hidden()
    assert second.locator(".ecco-nmf-tip-value").all_text_contents() == [f"{r[0]:g}" for r in other]
    sims = page.locator(".ecco-view-similarity")
    sims.nth(0).locator('.ecco-sim-cell[data-row="1"][data-col="2"]').hover()
    assert sims.nth(0).locator(".ecco-active").count() == 2 and sims.nth(1).locator(".ecco-active").count() == 0
    assert page.locator(".ecco-view-neuron .ecco-token[data-value]").count() == 11
    assert page.locator(".ecco-view b, .ecco-view i, .ecco-view script").count() == 0


# ---------------------------------------------------------------- screenshots ---------------------

def long_nmf() -> dict:
    words = ("Frameworks for Machine Learning include : 1 . TensorFlow \n 2 . PyTorch \n 3 . Scikit - learn "
             "\n 4 . Keras \n 5 . JAX").split(" ")
    toks = [tok(("" if i == 0 or w in ".-" else " ") + w if w != "\n" else "\n", 0, i, i < 20, w in ".-", False)
            for i, w in enumerate(words)]
    toks += [tok(t, 1, i, True, False, False) for i, t in enumerate(["The", " capital", " of", " France", " is", EVIL])]
    rng = np.random.default_rng(0)
    n = len(toks)
    factors = []
    for k in range(6):
        base = rng.random(n) ** 4 * (k + 1)
        base[rng.random(n) < 0.4] = 0
        factors.append(np.round(base, 4).tolist())
    factors.append([0.0] * n)
    return {"tokens": toks, "factors": factors, "method": "nmf",
            "caption": "NMF, 7 components, layers 0-5 (decoder)", "title": "distilgpt2"}


def test_screenshots(open_html, tmp_path: Path) -> None:
    """Pictures for a human check (light, then dark theme), written under pytest's tmp_path
    (`pytest --basetemp=DIR` keeps them in DIR)."""
    vals = np.sin(np.arange(len(NMF_TOKENS)) * 1.3) * 2.2
    shots = [
        ("nmf", long_nmf(), tmp_path / "nmf"),
        ("neuron", neuron_data(values=[round(float(v), 4) for v in vals[:2]] + [None] + [round(float(v), 4) for v in vals[3:]],
                               title="Neuron 512, layer 3"), tmp_path / "neuron"),
        ("similarity", sim_data(matrix=[[round(float(np.exp(-abs(i - j) / 4)), 4) for j in range(12)] for i in range(12)]),
         tmp_path / "sim"),
        ("top_neurons", top_data(), tmp_path / "top_neurons"),
    ]
    for view, data, stem in shots:
        page = open_view(open_html, tmp_path, view, data)
        page.set_viewport_size({"width": 1000, "height": 560})
        root = page.locator(f".ecco-view-{view}")
        if view == "nmf":
            root.locator(".ecco-nmf-text .ecco-token").nth(7).hover()
            page.screenshot(path=f"{stem}_default.png", full_page=True)
            root.locator('.ecco-nmf-factor[data-factor="2"]').click()
            root.locator(".ecco-nmf-text .ecco-token").nth(7).hover()
        elif view == "neuron":
            root.locator(".ecco-token").nth(4).hover()
        elif view == "similarity":
            root.locator('.ecco-sim-cell[data-row="3"][data-col="7"]').hover()
        else:
            root.locator(".ecco-top-neuron").nth(4).hover()
        page.screenshot(path=f"{stem}.png", full_page=True)
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=f"{stem}_dark.png", full_page=True)
        assert root.locator(".ecco-tooltip").is_visible()
