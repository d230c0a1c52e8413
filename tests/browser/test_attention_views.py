"""The attention views in headless Chromium: "attention_head" (lines between two token columns),
"attention_model" (layer x head thumbnails) and "attention_neuron" (how the weights arise from
queries and keys). Weights arrive packed: base64 of uint8 in C order over [L, H, Q, K], value / 255."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from ecco.render import View, save_report

pytestmark = pytest.mark.browser

EVIL = "</script><b>x</b>"
DEC_TOKENS = ["The", " cat", EVIL, " sat", "\n", " mat"]
ENC_TOKENS = ["Le", " chat", " dort", "."]
L, H = 3, 4


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def random_attention(rng, layers: int, heads: int, q: int, k: int, causal: bool, sharpness: float = 3.0) -> np.ndarray:
    logits = rng.normal(size=(layers, heads, q, k)) * sharpness
    if causal:
        logits = np.where(np.tril(np.ones((q, k), dtype=bool)), logits, -np.inf)
    return softmax(logits)


def pack(name: str, label: str, queries: list[str], keys: list[str], att: np.ndarray) -> tuple[dict, np.ndarray]:
    """A packed set and its bytes (what the view must show)."""
    packed = np.round(np.clip(att, 0, 1) * 255).astype(np.uint8)
    entry = {
        "name": name, "label": label,
        "queries": [{"text": t, "position": i} for i, t in enumerate(queries)],
        "keys": [{"text": t, "position": i} for i, t in enumerate(keys)],
        "layers": list(range(att.shape[0])), "heads": int(att.shape[1]), "shape": list(packed.shape),
        "weights": base64.b64encode(packed.tobytes()).decode("ascii"),
    }
    return entry, packed


RNG = np.random.default_rng(7)
DEC_SET, DEC_BYTES = pack("decoder", "decoder self-attention", DEC_TOKENS, DEC_TOKENS,
                          random_attention(RNG, L, H, 6, 6, causal=True))
CROSS_SET, CROSS_BYTES = pack("cross", "cross-attention", DEC_TOKENS, ENC_TOKENS,
                              random_attention(RNG, L, H, 6, 4, causal=False))


def head_data(**extra) -> dict:
    return {"sets": [DEC_SET, CROSS_SET], "set": 0, "layer": 0, "heads": None, "title": "tiny model", **extra}


def model_data(**extra) -> dict:
    return {"sets": [DEC_SET, CROSS_SET], "set": 0, "title": "tiny model", **extra}


def open_view(open_html, tmp_path: Path, view: str, data: dict):
    path = View(view, data).save_html(tmp_path / f"{view}.html")
    return open_html(path.read_text(encoding="utf-8"))


def away(page) -> None:
    page.mouse.move(1, 1)


def lines(page, scope: str = ".ecco-view-attention_head") -> list[tuple[int, int, int, float]]:
    found = page.evaluate(
        """(scope) => Array.from(document.querySelectorAll(scope + " line.ecco-att-line")).map(l =>
             [Number(l.dataset.head), Number(l.dataset.q), Number(l.dataset.k), Number(l.dataset.weight)])""", scope)
    return [tuple(f) for f in found]


def expected_lines(packed: np.ndarray, layer: int, heads=None, q=None, k=None) -> list[tuple[int, int, int, float]]:
    out = []
    for h in range(packed.shape[1]) if heads is None else heads:
        for qi in range(packed.shape[2]) if q is None else [q]:
            for ki in range(packed.shape[3]) if k is None else [k]:
                w = packed[layer, h, qi, ki] / 255
                if w >= 0.01:
                    out.append((h, qi, ki, round(w, 3)))
    return sorted(out)


def assert_lines(page, packed, layer, scope=".ecco-view-attention_head", **kw) -> None:
    got = sorted(tuple(g) for g in lines(page, scope))
    want = expected_lines(packed, layer, **kw)
    assert [g[:3] for g in got] == [w[:3] for w in want]
    assert np.allclose([g[3] for g in got], [w[3] for w in want], atol=5e-4)


# ---------------------------------------------------------------- head view -----------------------

def test_head_view_lines_match_weights(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_head", head_data())
    root = page.locator(".ecco-view-attention_head")
    assert page.evaluate("typeof window.ecco.views.attention_head") == "function"
    # Small weights are not drawn; there are some in the causal data (zeros above the diagonal).
    assert (DEC_BYTES[0] < 3).any()
    assert_lines(page, DEC_BYTES, 0)
    assert root.locator(".ecco-head-tile").count() == H
    assert root.locator(".ecco-head-tile.ecco-off").count() == 0
    assert root.locator("select.ecco-layer-select option").all_text_contents() == ["0", "1", "2"]
    assert root.locator("select.ecco-set-select option").all_text_contents() == ["decoder self-attention", "cross-attention"]
    left = root.locator('.ecco-att-token[data-side="left"]')
    right = root.locator('.ecco-att-token[data-side="right"]')
    assert left.all_text_contents() == DEC_TOKENS and right.all_text_contents() == DEC_TOKENS
    assert [left.nth(i).get_attribute("data-position") for i in range(6)] == [str(i) for i in range(6)]
    # Heavier lines are more opaque.
    opacities = page.evaluate("""() => Array.from(document.querySelectorAll("line.ecco-att-line"))
        .map(l => [Number(l.dataset.weight), Number(l.getAttribute("stroke-opacity"))])""")
    order = np.argsort([o[0] for o in opacities])
    assert np.all(np.diff(np.array([o[1] for o in opacities])[order]) >= -1e-9)
    assert root.locator("b").count() == 0 and page.locator("b").count() == 0


def test_head_view_layer_and_initial_state(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_head", head_data(layer=2, heads=[0, 2]))
    root = page.locator(".ecco-view-attention_head")
    assert root.locator("select.ecco-layer-select").input_value() == "2"
    assert_lines(page, DEC_BYTES, 2, heads=[0, 2])
    assert [t.get_attribute("data-head") for t in root.locator(".ecco-head-tile.ecco-off").all()] == ["1", "3"]
    before = lines(page)
    root.locator("select.ecco-layer-select").select_option("1")
    assert_lines(page, DEC_BYTES, 1, heads=[0, 2])
    assert sorted(lines(page)) != sorted(before)


def test_head_view_toggle_and_isolate_heads(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_head", head_data())
    root = page.locator(".ecco-view-attention_head")
    tile = root.locator('.ecco-head-tile[data-head="2"]')
    tile.click()
    assert "ecco-off" in tile.get_attribute("class") and tile.get_attribute("aria-pressed") == "false"
    assert root.locator('line.ecco-att-line[data-head="2"]').count() == 0
    assert_lines(page, DEC_BYTES, 0, heads=[0, 1, 3])
    tile.click()
    assert_lines(page, DEC_BYTES, 0)
    # Double-click isolates a head; double-clicking the only head shown brings all back.
    root.locator('.ecco-head-tile[data-head="1"]').dblclick()
    assert_lines(page, DEC_BYTES, 0, heads=[1])
    assert {t.get_attribute("data-head") for t in root.locator(".ecco-head-tile.ecco-off").all()} == {"0", "2", "3"}
    root.locator('.ecco-head-tile[data-head="1"]').dblclick()
    assert_lines(page, DEC_BYTES, 0)
    # All heads off: no lines.
    for h in range(H):
        root.locator(f'.ecco-head-tile[data-head="{h}"]').click()
    assert root.locator("line.ecco-att-line").count() == 0


def test_head_view_hover_filters_from_and_to(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_head", head_data())
    root = page.locator(".ecco-view-attention_head")
    root.locator('.ecco-att-token[data-side="left"]').nth(3).hover()
    assert {q for _, q, _, _ in lines(page)} == {3}
    assert_lines(page, DEC_BYTES, 0, q=3)
    # The right column shows one mark per head and key, opacity from the weight.
    marks = page.evaluate("""() => Array.from(document.querySelectorAll('.ecco-att-token[data-side="right"] .ecco-att-mark'))
        .map(m => [Number(m.closest(".ecco-att-token").dataset.index), Number(m.dataset.head), Number(m.dataset.weight)])""")
    assert len(marks) == 6 * H
    for k, h, w in marks:
        assert w == pytest.approx(round(DEC_BYTES[0, h, 3, k] / 255, 3), abs=5e-4)
    away(page)
    assert_lines(page, DEC_BYTES, 0)
    assert root.locator(".ecco-att-mark").count() == 0
    root.locator('.ecco-att-token[data-side="right"]').nth(1).hover()
    assert {k for _, _, k, _ in lines(page)} == {1}
    assert_lines(page, DEC_BYTES, 0, k=1)
    # Straight from one token to another.
    root.locator('.ecco-att-token[data-side="left"]').nth(5).hover()
    assert_lines(page, DEC_BYTES, 0, q=5)
    away(page)
    assert_lines(page, DEC_BYTES, 0)


def test_head_view_switch_set(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_head", head_data())
    root = page.locator(".ecco-view-attention_head")
    root.locator('.ecco-head-tile[data-head="3"]').click()
    root.locator("select.ecco-layer-select").select_option("1")
    root.locator("select.ecco-set-select").select_option("1")
    right = root.locator('.ecco-att-token[data-side="right"]')
    assert right.all_text_contents() == ENC_TOKENS
    assert root.locator('.ecco-att-token[data-side="left"]').all_text_contents() == DEC_TOKENS
    # Layer and head selection carry over.
    assert root.locator("select.ecco-layer-select").input_value() == "1"
    assert_lines(page, CROSS_BYTES, 1, heads=[0, 1, 2])
    root.locator('.ecco-att-token[data-side="right"]').nth(2).hover()
    assert_lines(page, CROSS_BYTES, 1, heads=[0, 1, 2], k=2)
    away(page)
    root.locator("select.ecco-set-select").select_option("0")
    assert right.all_text_contents() == DEC_TOKENS
    assert_lines(page, DEC_BYTES, 1, heads=[0, 1, 2])


def test_head_view_bad_shape_reports_error(open_html, tmp_path: Path, chromium) -> None:
    bad = dict(DEC_SET, shape=[3, 4, 6, 5])
    page = chromium.new_page()
    path = View("attention_head", head_data(sets=[bad])).save_html(tmp_path / "bad.html")
    page.goto(path.as_uri())
    text = page.locator(".ecco-view-attention_head").text_content()
    assert "could not render" in text and "do not match shape" in text
    page.close()


# ---------------------------------------------------------------- model view ----------------------

def test_model_view_thumbnails(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_model", model_data())
    root = page.locator(".ecco-view-attention_model")
    thumbs = root.locator("canvas.ecco-thumb")
    assert thumbs.count() == L * H
    pairs = [(t.get_attribute("data-layer"), t.get_attribute("data-head")) for t in thumbs.all()]
    assert pairs == [(str(la), str(h)) for la in range(L) for h in range(H)]
    # Each thumbnail holds its matrix: one pixel per weight, alpha = the packed byte.
    alphas = page.evaluate("""() => Array.from(document.querySelectorAll("canvas.ecco-thumb")).map(c => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, out = [];
        for (let i = 3; i < d.length; i += 4) out.push(d[i]);
        return [c.width, c.height, out]; })""")
    for (w, h_, alpha), (la, h) in zip(alphas, [(la, h) for la in range(L) for h in range(H)]):
        assert (w, h_) == (6, 6)
        assert alpha == DEC_BYTES[la, h].ravel().tolist()
    assert root.locator(".ecco-att-grid-head").all_text_contents() == [str(h) for h in range(H)]
    assert root.locator(".ecco-att-grid-layer").all_text_contents() == [str(la) for la in range(L)]
    assert page.locator("b").count() == 0


def test_model_view_zoom(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_model", model_data())
    root = page.locator(".ecco-view-attention_model")
    assert root.locator(".ecco-att-zoom").count() == 0
    root.locator('canvas.ecco-thumb[data-layer="1"][data-head="2"]').click()
    zoom = root.locator(".ecco-att-zoom")
    assert zoom.count() == 1
    assert (zoom.get_attribute("data-layer"), zoom.get_attribute("data-head")) == ("1", "2")
    assert zoom.get_attribute("data-max") == f"{DEC_BYTES[1, 2].max() / 255:.3f}"
    assert zoom.locator(".ecco-att-zoom-row").all_text_contents() == DEC_TOKENS
    assert zoom.locator(".ecco-att-zoom-col").all_text_contents() == DEC_TOKENS
    # The panel sits right under its layer's row.
    assert page.evaluate("""() => document.querySelector(".ecco-att-zoom").previousElementSibling.dataset.layer""") == "1"
    # Hovering a cell shows its weight.
    canvas = zoom.locator("canvas.ecco-att-zoom-canvas")
    box = canvas.bounding_box()
    q, k = 4, 1
    page.mouse.move(box["x"] + (k + 0.5) * box["width"] / 6, box["y"] + (q + 0.5) * box["height"] / 6)
    tip = root.locator(".ecco-tooltip")
    assert tip.is_visible()
    assert f"{DEC_BYTES[1, 2, q, k] / 255:.3f}" in tip.text_content()
    assert zoom.locator(".ecco-att-zoom-row.ecco-active").text_content() == DEC_TOKENS[q]
    assert zoom.locator(".ecco-att-zoom-col.ecco-active").text_content() == DEC_TOKENS[k]
    away(page)
    # Click again closes; another thumbnail replaces; the close button closes.
    root.locator('canvas.ecco-thumb[data-layer="1"][data-head="2"]').click()
    assert root.locator(".ecco-att-zoom").count() == 0
    root.locator('canvas.ecco-thumb[data-layer="2"][data-head="0"]').click()
    root.locator('canvas.ecco-thumb[data-layer="0"][data-head="3"]').click()
    assert root.locator(".ecco-att-zoom").count() == 1
    assert zoom.get_attribute("data-max") == f"{DEC_BYTES[0, 3].max() / 255:.3f}"
    assert root.locator("canvas.ecco-thumb.ecco-selected").count() == 1
    root.locator(".ecco-att-zoom-close").click()
    assert root.locator(".ecco-att-zoom").count() == 0
    # Keyboard: Enter opens, Escape closes.
    root.locator('canvas.ecco-thumb[data-layer="2"][data-head="1"]').focus()
    page.keyboard.press("Enter")
    assert zoom.get_attribute("data-head") == "1"
    page.keyboard.press("Escape")
    assert root.locator(".ecco-att-zoom").count() == 0


def test_model_view_switch_set_and_scale(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_model", model_data())
    root = page.locator(".ecco-view-attention_model")
    root.locator('canvas.ecco-thumb[data-layer="0"][data-head="0"]').click()
    root.locator("select.ecco-set-select").select_option("1")
    assert root.locator(".ecco-att-zoom").count() == 0
    thumbs = root.locator("canvas.ecco-thumb")
    assert thumbs.count() == L * H
    sizes = """() => [...new Set(Array.from(document.querySelectorAll("canvas.ecco-thumb"))
        .map(c => c.width + "x" + c.height))]"""
    assert page.evaluate(sizes) == ["4x6"]
    root.locator('canvas.ecco-thumb[data-layer="2"][data-head="3"]').click()
    zoom = root.locator(".ecco-att-zoom")
    assert zoom.get_attribute("data-max") == f"{CROSS_BYTES[2, 3].max() / 255:.3f}"
    assert zoom.locator(".ecco-att-zoom-col").all_text_contents() == ENC_TOKENS
    # Square-root scale: small weights get more opacity; the zoom stays open.
    root.locator("select.ecco-att-scale-select").select_option("sqrt")
    assert zoom.get_attribute("data-head") == "3"
    alpha = page.evaluate("""() => { const c = document.querySelector('canvas.ecco-thumb[data-layer="2"][data-head="3"]');
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data).filter((_, i) => i % 4 === 3); }""")
    assert alpha == np.round(np.sqrt(CROSS_BYTES[2, 3].ravel() / 255) * 255).astype(int).tolist()


def test_model_view_large(open_html, tmp_path: Path) -> None:
    """30 layers x 9 heads x 100 tokens: every thumbnail, the zoom of the last head, a small DOM
    (load time is measured in benchmarks/attention_view.py, not asserted here)."""
    rng = np.random.default_rng(1)
    toks = [f" t{i}" for i in range(100)]
    entry, packed = pack("decoder", "decoder self-attention", toks, toks,
                         random_attention(rng, 30, 9, 100, 100, causal=True, sharpness=2.0).astype(np.float32))
    path = View("attention_model", {"sets": [entry], "set": 0, "title": "30 x 9 x 100"}).save_html(tmp_path / "big.html")
    page = open_html(path.read_text(encoding="utf-8"))
    assert page.locator("canvas.ecco-thumb").count() == 270
    page.locator('canvas.ecco-thumb[data-layer="29"][data-head="8"]').click()
    zoom = page.locator(".ecco-att-zoom")
    assert zoom.get_attribute("data-max") == f"{packed[29, 8].max() / 255:.3f}"
    # No token nodes per weight: the DOM stays small.
    assert page.evaluate("document.getElementsByTagName('*').length") < 2000


# ---------------------------------------------------------------- neuron view ---------------------

D = 8
NRNG = np.random.default_rng(3)
QV = NRNG.normal(size=(6, D)).round(4)
KV = NRNG.normal(size=(6, D)).round(4)
SCALE = 1 / np.sqrt(D)
POS_BIAS = NRNG.normal(size=(6, 6)).round(4) * 0.5
CAUSAL = np.tril(np.ones((6, 6), dtype=bool))


def neuron_numpy(bias_on: bool = True):
    scores = QV @ KV.T * SCALE + (POS_BIAS if bias_on else 0)
    if bias_on:
        scores = np.where(CAUSAL, scores, -np.inf)
    return scores, softmax(scores)


def neuron_data(bias_on: bool = True, selected: int = 4, **extra) -> dict:
    scores, weights = neuron_numpy(bias_on)
    toks = [{"text": t, "position": i} for i, t in enumerate(DEC_TOKENS)]
    bias = [[float(POS_BIAS[i, j]) if CAUSAL[i, j] else None for j in range(6)] for i in range(6)] if bias_on else None
    return {"queries": toks, "keys": toks, "layer": 1, "head": 2, "set": "decoder", "query": QV.tolist(), "key": KV.tolist(),
            "scale": float(SCALE), "bias": bias, "weights": weights.round(6).tolist(), "selected": selected,
            "title": "tiny model", **extra}


def key_rows(page, scope: str = ".ecco-view-attention_neuron") -> list[dict]:
    return page.evaluate("""(scope) => Array.from(document.querySelectorAll(scope + " .ecco-nv-key")).map(r => ({
        index: Number(r.dataset.index), score: r.dataset.score, weight: r.dataset.weight,
        model: r.dataset.modelWeight, masked: r.classList.contains("ecco-masked")}))""", scope)


def assert_query(page, qi: int, bias_on: bool = True, scope: str = ".ecco-view-attention_neuron") -> None:
    scores, weights = neuron_numpy(bias_on)
    rows = key_rows(page, scope)
    assert [r["index"] for r in rows] == list(range(6))
    for r in rows:
        j = r["index"]
        if np.isfinite(scores[qi, j]):
            assert not r["masked"]
            assert float(r["score"]) == pytest.approx(scores[qi, j], abs=1.01e-4)
            assert r["score"] == f"{scores[qi, j]:.4f}" or abs(float(r["score"]) - scores[qi, j]) < 1e-4
        else:
            assert r["masked"] and r["score"] == "-Infinity" and float(r["score"]) == -np.inf
        assert float(r["weight"]) == pytest.approx(weights[qi, j], abs=1.01e-4)
        assert float(r["model"]) == pytest.approx(weights[qi, j], abs=1e-6)
    sel = page.locator(f"{scope} .ecco-nv-query.ecco-selected")
    assert sel.count() == 1 and sel.get_attribute("data-index") == str(qi)


def test_neuron_view_scores_and_softmax(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_neuron", neuron_data())
    root = page.locator(".ecco-view-attention_neuron")
    assert root.locator(".ecco-nv-query").all_text_contents() == DEC_TOKENS
    assert_query(page, 4)
    # Keys after the query are masked (null bias): greyed, weight 0.
    masked = root.locator(".ecco-nv-key.ecco-masked")
    assert [m.get_attribute("data-index") for m in masked.all()] == ["5"]
    assert masked.get_attribute("data-weight") == "0.0000"
    assert root.locator(".ecco-nv-bias").count() == 6  # a position bias: its own column
    # Cells: the query vector, then per key its vector and the product.
    assert root.locator(".ecco-nv-qrow .ecco-nv-cell").count() == D
    assert root.locator(".ecco-nv-key .ecco-nv-cell").count() == 6 * 2 * D
    colours = page.evaluate("""() => Array.from(document.querySelectorAll(".ecco-nv-qrow .ecco-nv-cell"))
        .map(c => getComputedStyle(c).backgroundColor)""")
    for v, c in zip(QV[4], colours):  # diverging: orange positive, blue negative
        assert ("240, 120, 20" in c) if v > 0 else ("45, 112, 230" in c)
    assert float(root.locator(".ecco-nv-agree").get_attribute("data-max-diff")) < 1e-4
    # Another query: everything updates.
    root.locator('.ecco-nv-query[data-index="2"]').click()
    assert_query(page, 2)
    assert [m.get_attribute("data-index") for m in masked.all()] == ["3", "4", "5"]
    # Hover previews; leaving the list returns to the clicked query.
    root.locator('.ecco-nv-query[data-index="5"]').hover()
    assert_query(page, 5)
    away(page)
    assert_query(page, 2)
    # Cell tooltip: q, k and their product.
    root.locator('.ecco-nv-key[data-index="1"] .ecco-nv-pvec .ecco-nv-cell[data-dim="3"]').hover()
    tip = root.locator(".ecco-tooltip").text_content()
    assert "dim 3" in tip and f"{QV[2, 3] * KV[1, 3]:.3f}".replace("-", "\u2212") in tip
    assert page.locator("b").count() == 0


def test_neuron_view_without_bias(open_html, tmp_path: Path) -> None:
    page = open_view(open_html, tmp_path, "attention_neuron", neuron_data(bias_on=False, selected=1))
    root = page.locator(".ecco-view-attention_neuron")
    assert_query(page, 1, bias_on=False)
    assert root.locator(".ecco-nv-key.ecco-masked").count() == 0
    assert root.locator(".ecco-nv-bias").count() == 0


# ---------------------------------------------------------------- together ------------------------

def test_views_on_one_page_are_independent(open_html, tmp_path: Path) -> None:
    views = [View("attention_head", head_data()), View("attention_head", head_data(layer=1)),
             View("attention_model", model_data()), View("attention_model", model_data()),
             View("attention_neuron", neuron_data()), View("attention_neuron", neuron_data(selected=3))]
    page = open_html(save_report(views, tmp_path / "report.html").read_text(encoding="utf-8"))
    heads = page.locator(".ecco-view-attention_head")
    first, second = (f"#{heads.nth(i).get_attribute('id')}" for i in range(2))
    assert_lines(page, DEC_BYTES, 0, scope=first)
    assert_lines(page, DEC_BYTES, 1, scope=second)
    heads.nth(0).locator('.ecco-head-tile[data-head="0"]').click()
    heads.nth(0).locator('.ecco-att-token[data-side="left"]').nth(2).hover()
    assert_lines(page, DEC_BYTES, 0, scope=first, heads=[1, 2, 3], q=2)
    assert_lines(page, DEC_BYTES, 1, scope=second)
    away(page)
    models = page.locator(".ecco-view-attention_model")
    models.nth(1).locator('canvas.ecco-thumb[data-layer="2"][data-head="2"]').click()
    assert models.nth(0).locator(".ecco-att-zoom").count() == 0
    assert models.nth(1).locator(".ecco-att-zoom").count() == 1
    neurons = page.locator(".ecco-view-attention_neuron")
    n0, n1 = (f"#{neurons.nth(i).get_attribute('id')}" for i in range(2))
    assert_query(page, 4, scope=n0)
    assert_query(page, 3, scope=n1)
    neurons.nth(0).locator('.ecco-nv-query[data-index="1"]').click()
    assert_query(page, 1, scope=n0)
    assert_query(page, 3, scope=n1)
    assert page.locator("b").count() == 0
    assert page.get_by_text(EVIL, exact=True).count() > 0


# ---------------------------------------------------------------- screenshots ---------------------

def patterned_attention(rng, layers: int, heads: int, n: int) -> np.ndarray:
    """Causal attention with typical head patterns: sink on the first token, previous token,
    self, broad, sharp random."""
    idx = np.arange(n)
    kinds = [
        lambda: np.where(idx[None, :] == 0, 4.0, 0.0) + rng.normal(size=(n, n)) * 0.6,
        lambda: np.where(idx[None, :] == idx[:, None] - 1, 5.0, 0.0) + rng.normal(size=(n, n)) * 0.5,
        lambda: np.where(idx[None, :] == idx[:, None], 4.0, 0.0) + rng.normal(size=(n, n)) * 0.7,
        lambda: rng.normal(size=(n, n)) * 0.3,
        lambda: rng.normal(size=(n, n)) * 2.5,
    ]
    logits = np.stack([np.stack([kinds[(la + h * 2) % len(kinds)]() for h in range(heads)]) for la in range(layers)])
    return softmax(np.where(np.tril(np.ones((n, n), dtype=bool)), logits, -np.inf))


SENTENCE = ["<|endoftext|>", "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", "\n",
            "It", " was", " not", " amused", EVIL, "!"]


def test_screenshots(open_html, tmp_path: Path) -> None:
    """Pictures for a human check (light, then dark theme)."""
    rng = np.random.default_rng(5)
    n = len(SENTENCE)
    entry, _ = pack("decoder", "decoder self-attention", SENTENCE, SENTENCE, patterned_attention(rng, 6, 9, n))
    enc = ["Le", " renard", " brun", " saute", "."]
    cross, _ = pack("cross", "cross-attention", SENTENCE, enc, random_attention(rng, 6, 9, n, len(enc), causal=False))
    d = 32
    q, k = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    k[:, :4] += 1.5
    q[:, :4] += 1.2
    scores = q @ k.T / np.sqrt(d)
    w = softmax(np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf))
    toks = [{"text": t, "position": i} for i, t in enumerate(SENTENCE)]
    neuron = {"queries": toks, "keys": toks, "layer": 3, "head": 5, "set": "decoder", "query": q.round(4).tolist(),
              "key": k.round(4).tolist(), "scale": 1 / np.sqrt(d),
              "bias": [[0.0 if j <= i else None for j in range(n)] for i in range(n)], "weights": w.round(6).tolist(),
              "selected": 9, "title": "SmolLM2-135M"}
    shots = [
        (
            "attention_head",
            {"sets": [entry, cross], "set": 0, "layer": 2, "heads": None, "title": "SmolLM2-135M"},
            tmp_path / "att_head",
        ),
        ("attention_model", {"sets": [entry, cross], "set": 0, "title": "SmolLM2-135M"}, tmp_path / "att_model"),
        ("attention_neuron", neuron, tmp_path / "att_neuron"),
    ]
    for view, data, stem in shots:
        page = open_view(open_html, tmp_path, view, data)
        page.set_viewport_size({"width": 1000, "height": 700})
        root = page.locator(f".ecco-view-{view}")
        if view == "attention_head":
            page.screenshot(path=f"{stem}_all.png", full_page=True)
            root.locator('.ecco-att-token[data-side="left"]').nth(9).hover()
        elif view == "attention_model":
            root.locator('canvas.ecco-thumb[data-layer="1"][data-head="2"]').click()
            box = root.locator("canvas.ecco-att-zoom-canvas").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.55)
        else:
            root.locator('.ecco-nv-key[data-index="4"] .ecco-nv-pvec .ecco-nv-cell[data-dim="2"]').hover()
        page.screenshot(path=f"{stem}.png", full_page=True)
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=f"{stem}_dark.png", full_page=True)
        for suffix in ("", "_dark"):
            assert Path(f"{stem}{suffix}.png").stat().st_size > 5000, f"{view}{suffix}: empty screenshot"


def test_neuron_view_mask_only_bias(open_html, tmp_path: Path) -> None:
    """A bias that is only the causal mask (0 or null) gets no column; masked keys still get 0."""
    data = neuron_data(bias_on=False, selected=3)
    data["bias"] = [[0.0 if j <= i else None for j in range(6)] for i in range(6)]
    scores = np.where(CAUSAL, QV @ KV.T * SCALE, -np.inf)
    data["weights"] = softmax(scores).round(6).tolist()
    page = open_view(open_html, tmp_path, "attention_neuron", data)
    root = page.locator(".ecco-view-attention_neuron")
    assert root.locator(".ecco-nv-bias").count() == 0
    rows = key_rows(page)
    assert [r["masked"] for r in rows] == [False] * 4 + [True] * 2
    for r in rows:
        assert float(r["weight"]) == pytest.approx(softmax(scores)[3, r["index"]], abs=1.01e-4)


# ---------------------------------------------------------------- real outputs --------------------

@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
def test_views_of_a_real_output(arch, open_html, tmp_path: Path) -> None:
    """Tiny models end to end: every set shows, and the page's softmax agrees with the model."""
    import ecco
    from tests import tiny

    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), attention=True, verbose=False)
    output = lm.generate("the quick brown fox", generate=3, min_new_tokens=3)
    names = list(output.attention)
    views = [output.attention_head_view(), output.attention_model_view()]
    views += [output.attention_neuron_view(layer=1, head=0, attention_set=name) for name in names]
    page = open_html(save_report(views, tmp_path / "real.html").read_text(encoding="utf-8"))
    head = page.locator(".ecco-view-attention_head")
    assert head.locator("select.ecco-set-select option").count() == (len(names) if len(names) > 1 else 0)
    assert head.locator("line.ecco-att-line").count() > 0
    model = page.locator(".ecco-view-attention_model")
    weights = output.attention[names[0]]
    assert model.locator("canvas.ecco-thumb").count() == weights.shape[1] * weights.shape[2]
    for i in range(len(names)):
        neuron = page.locator(".ecco-view-attention_neuron").nth(i)
        assert float(neuron.locator(".ecco-nv-agree").get_attribute("data-max-diff")) < 1e-3
        neuron.locator(".ecco-nv-query").nth(0).click()
        assert float(neuron.locator(".ecco-nv-agree").get_attribute("data-max-diff")) < 1e-3
