"""The static renderings (ecco.render.static): what a view shows where scripts do not run.

Checked without a browser: the numbers drawn are the data's, token text is escaped everywhere
(HTML, titles and the SVG inside images), unreadable data never breaks a fragment, big views are
capped and say so."""

from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest

from ecco.render import render_fragment, view_names
from ecco.render.static import NOTE, RENDERERS, render_body, static_html
from ecco.render.static.attention import TILE
from ecco.render.static.html import display_text, fmt, pct
from ecco.views.faithfulness import comparison_view
from tests.browser.test_attention_views import head_data, model_data, neuron_data, softmax
from tests.browser.test_attribution_view import attribution_data
from tests.browser.test_corpus_views import dashboard_sample
from tests.browser.test_intervention_view import diff_sample
from tests.browser.test_lens_views import lp_data, rankings_data, traj_data
from tests.browser.test_logit_attribution_view import dla_data
from tests.browser.test_neuron_views import NEURON_VALUES, nmf_data, sim_data, top_data
from tests.browser.test_neuron_views import neuron_data as neuron_view_data
from tests.browser.test_trace_view import trace_sample
from tests.test_faithfulness_view import view_data
from tests.test_render import DATA as TOKENS_DATA

EVIL = "</script><b>x</b>"
SAMPLES = {
    "tokens": TOKENS_DATA, "attribution": attribution_data(style="detailed", foil=EVIL), "nmf": nmf_data(),
    "neuron": neuron_view_data(), "layer_predictions": lp_data(), "rankings": rankings_data(), "trajectory": traj_data(),
    "top_neurons": top_data(), "similarity": sim_data(), "attention_head": head_data(), "attention_model": model_data(),
    "attention_neuron": neuron_data(), "neuron_dashboard": dashboard_sample(),
    "faithfulness": comparison_view(view_data(), printJson=True), "logit_attribution": dla_data(),
    "causal_trace": trace_sample(), "intervention_diff": diff_sample(),
}


class Cells(HTMLParser):
    """The rows of the tables of one class: each row a list of (text, attributes) per cell."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls, self.depth, self.rows, self.cell = cls, 0, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and self.cls in (attrs.get("class") or "").split():
            self.depth = 1
        elif tag == "tr" and self.depth:
            self.rows.append([])
        elif tag in ("td", "th") and self.depth:
            self.cell = ["", attrs]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((self.cell[0], self.cell[1]))
            self.cell = None
        elif tag == "table":
            self.depth = 0

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def table_rows(html: str, cls: str) -> list[list[tuple[str, dict]]]:
    parser = Cells(cls)
    parser.feed(html)
    return parser.rows


def images(html: str, cls: str) -> list[bytes]:
    """The decoded data of every image of class ``cls``."""
    return [base64.b64decode(m) for m in re.findall(rf'<img class="{cls}" src="data:[^;]+;base64,([^"]+)"', html)]


def png_pixels(data: bytes) -> np.ndarray:
    """RGBA pixels of a PNG written by ecco (8-bit RGBA, filter 0 on every row)."""
    width, height = struct.unpack(">II", data[16:24])
    raw = zlib.decompress(data[data.index(b"IDAT") + 4: data.index(b"IEND") - 8])
    return np.frombuffer(raw, np.uint8).reshape(height, 1 + 4 * width)[:, 1:].reshape(height, width, 4)


# ---------------------------------------------------------------- every view

def test_every_view_has_a_static_renderer() -> None:
    assert set(RENDERERS) == set(view_names())
    assert set(SAMPLES) == set(view_names())


@pytest.mark.parametrize("view", sorted(SAMPLES))
def test_fragment_root_holds_the_static_rendering_and_the_quick_fix(view: str) -> None:
    html = render_fragment(view, SAMPLES[view])
    root = re.search(r'<div class="ecco-view ecco-view-[a-z_]+" id="ecco-[0-9a-f]+">(.*?)</div>\n<script', html, re.S).group(1)
    assert root.startswith('<div class="ecco-static"')
    assert "File \u2192 Trust Notebook" in root and "re-run the cell" in root and NOTE in root
    assert "run the notebook (trusted)" not in html
    assert "<script" not in root and "<style" not in root and "<svg" not in root  # sanitizers drop these
    assert len(render_body(view, SAMPLES[view])) > 200


@pytest.mark.parametrize("view", sorted(SAMPLES))
def test_empty_or_odd_data_never_breaks_a_fragment(view: str) -> None:
    for data in ({}, {"tokens": None, "sets": [None], "layers": "x", "matrix": [[None]], "title": None}):
        render_body(view, data)  # every renderer reads missing data as "nothing to show"
        assert NOTE in static_html(view, data)


@pytest.mark.parametrize("view", sorted(SAMPLES))
def test_token_text_is_escaped_in_html_titles_and_images(view: str) -> None:
    html = str(static_html(view, SAMPLES[view]))
    assert "<b>" not in html and "</script" not in html and "<!--" not in html
    for image in images(html, "ecco-s-[a-z-]+"):
        if image.startswith(b"<svg"):
            ET.fromstring(image)  # well-formed XML: the token text in it is escaped
            assert b"<b>" not in image


def test_evil_text_shows_as_text() -> None:
    html = str(render_body("tokens", TOKENS_DATA))
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;!-- &lt;b&gt;x&lt;/b&gt; &amp;amp;" in html


def test_display_text_shows_control_characters_and_drops_lone_surrogates() -> None:
    assert display_text("a\nb\tc\r\x00\x7f") == "a\\nb\\tc\\r\\x00\\x7f"
    assert display_text("x\ud800y") == "x\ufffdy"
    html = render_fragment("tokens", dict(TOKENS_DATA, tokens=[dict(TOKENS_DATA["tokens"][0], text="\ud83d\x01")]))
    html.encode("utf-8")  # a lone surrogate in token text must not make the page unwritable


def test_number_formats_match_the_views() -> None:
    assert [fmt(v) for v in (0.8123456, -2.5, 1e-7, 123456.0, 0, None)] == [
        "0.8123", "\u22122.5", "1e\u22127", "123500", "0", "\u2013"]
    assert [pct(p) for p in (0.5, 0.0004, 0.0, None)] == ["50.0%", "<0.1%", "0.0%", "\u2013"]


# ---------------------------------------------------------------- the numbers of each view

def test_rankings_cells_are_the_ranks() -> None:
    data = rankings_data()
    rows = table_rows(str(render_body("rankings", data)), "ecco-s-rankings")
    assert len(rows) == 1 + len(data["layers"])
    for r, layer in enumerate(data["layers"]):
        shown = rows[1 + r]
        assert shown[0][0] == str(layer)
        assert [int(text) for text, _ in shown[1:]] == data["ranks"][r]
        assert all(f"p {pct(p, 2)}" in attrs["title"] for (_, attrs), p in zip(shown[1:], data["probs"][r]))


def test_layer_predictions_rows_are_the_candidates_and_ranks() -> None:
    data = lp_data()
    html = str(render_body("layer_predictions", data))
    rows = table_rows(html, "ecco-s-lp")[1:]
    assert [int(r[0][0]) for r in rows] == [entry["layer"] for entry in data["layers"]]
    assert [int(r[2][0]) for r in rows] == [r["rank"] for r in data["actual_by_layer"]]
    for row, entry in zip(rows, data["layers"]):
        expected = "".join(f"{display_text(c['text'])} {pct(c['prob'])}" for c in entry["candidates"])
        assert row[1][0] == expected


def test_attribution_colours_the_last_target() -> None:
    data = attribution_data()
    html = str(render_body("attribution", data))
    k = len(data["targets"]) - 1
    while data["tokens"][data["targets"][k]].get("hidden"):
        k -= 1
    target = data["targets"][k]
    titles = {int(p): unescape(t) for t, p in re.findall(r'title="attribution ([^"]+?) \u00b7 position (\d+)"', html)}
    expected = {p: pct(v) for p, v in enumerate(data["attributions"][k][:target]) if not data["tokens"][p].get("hidden")}
    assert titles == expected and len(expected) > 3
    assert f"position {target}, the last target" in html
    top = table_rows(html, "ecco-s-attr-top")[1:]
    values = sorted((v for p, v in enumerate(data["attributions"][k][:target]) if not data["tokens"][p].get("hidden")),
                    reverse=True)
    assert [r[2][0] for r in top] == [pct(v) for v in values[: len(top)]]


def test_neuron_values_under_the_tokens() -> None:
    html = str(render_body("neuron", neuron_view_data()))
    shown = re.findall(r'<span class="ecco-s-value"[^>]*>([^<]*)</span>', html)
    assert shown == [fmt(v, 3) for v in NEURON_VALUES]


def test_similarity_cells_and_large_matrices() -> None:
    data = sim_data()
    rows = table_rows(str(render_body("similarity", data)), "ecco-s-similarity")[1:]
    for row, expected in zip(rows, data["matrix"]):
        assert [t for t, _ in row[1:]] == ["\u2013" if v is None else f"{v:.2f}" for v in expected]
    big = np.linspace(0, 1, 60 * 60).reshape(60, 60)
    html = str(render_body("similarity", {"labels": [str(i) for i in range(60)], "matrix": big.tolist(), "method": "cka"}))
    assert "ecco-s-similarity" not in html and "60 layers: drawn as an image" in html
    pixels = png_pixels(images(html, "ecco-s-heatmap")[0])
    assert pixels.shape == (480, 480, 4) and tuple(pixels[0, 0, :3]) == (68, 1, 84)


def test_top_neurons_values() -> None:
    data = top_data()
    rows = table_rows(str(render_body("top_neurons", data)), "ecco-s-top-neurons")[1:]
    assert [r[3][0] for r in rows] == [fmt(n["value"]) for n in data["neurons"]]
    assert [r[1][0] for r in rows] == [f"L{n['layer']} \u00b7 n{n['neuron']}" for n in data["neurons"]]


def test_attention_neuron_softmax_is_computed_from_the_vectors() -> None:
    data = neuron_data(selected=3)
    rows = table_rows(str(render_body("attention_neuron", data)), "ecco-s-nv")[1:]
    q, k = np.array(data["query"]), np.array(data["key"])
    bias = np.array([[-np.inf if b is None else b for b in row] for row in data["bias"]])
    expected = softmax(q @ k.T * data["scale"] + bias)[3]
    assert [r[-2][0].strip() for r in rows] == [pct(w) for w in expected]
    assert [r[-1][0] for r in rows] == [pct(w) for w in data["weights"][3]]


def test_attention_model_pixels_are_the_weights() -> None:
    data = model_data()
    s = data["sets"][data["set"]]
    weights = np.frombuffer(base64.b64decode(s["weights"]), np.uint8).reshape(s["shape"])
    n_layers, n_heads, n_q, n_k = weights.shape
    strips = [png_pixels(p) for p in images(str(render_body("attention_model", data)), "ecco-s-att-layer")]
    assert len(strips) == n_layers
    f = TILE // max(n_q, n_k)
    for layer, strip in enumerate(strips):
        for h in range(n_heads):
            x = h * (n_k * f + 4)
            assert np.array_equal(strip[::f, x: x + n_k * f: f, 3], weights[layer, h])


def test_attention_head_lines_and_strongest_keys() -> None:
    data = head_data()
    html = str(render_body("attention_head", data))
    s = data["sets"][data["set"]]
    weights = np.frombuffer(base64.b64decode(s["weights"]), np.uint8).reshape(s["shape"])[data["layer"]]
    svg = images(html, "ecco-s-att-lines")[0].decode()
    heads = data["heads"] if data["heads"] is not None else range(weights.shape[0])
    expected = sum(int((weights[h] >= 5).sum()) for h in heads)
    assert svg.count("<path ") == expected
    mean = weights[list(heads)].astype(float).mean(axis=0) / 255
    rows = table_rows(html, "ecco-s-att-top")[1:]
    assert [float(r[1][0].split()[-1]) for r in rows] == pytest.approx(mean.max(axis=1), abs=5e-4)


def packed_set(layers: int, heads: int, n: int) -> dict:
    rng = np.random.default_rng(0)
    packed = np.round(rng.dirichlet(np.full(n, 0.3), size=(layers, heads, n)) * 255).astype(np.uint8)
    tokens = [{"text": f"t{i}", "position": i} for i in range(n)]
    return {"name": "decoder", "label": "self-attention", "queries": tokens, "keys": tokens, "layers": list(range(layers)),
            "heads": heads, "shape": list(packed.shape), "weights": base64.b64encode(packed.tobytes()).decode()}


def test_big_attention_is_capped_and_says_so() -> None:
    s = packed_set(24, 16, 100)
    head = str(render_body("attention_head", {"sets": [s], "set": 0, "layer": 3, "heads": None}))
    assert "showing the first 64 of 100 queries" in head and "drawn: the 1500 strongest of" in head
    assert images(head, "ecco-s-att-lines")[0].count(b"<path ") == 1500
    model = str(render_body("attention_model", {"sets": [s], "set": 0}))
    assert len(images(model, "ecco-s-att-layer")) == 24
    assert len(head) < 400_000 and len(model) < 0.15 * len(s["weights"])
    many = str(render_body("attention_model", {"sets": [packed_set(60, 64, 8)], "set": 0}))
    shown = len(images(many, "ecco-s-att-layer"))
    assert 0 < shown < 60 and f"showing the first {shown} of 60 layers" in many


def test_trajectory_charts_and_numbers() -> None:
    data = traj_data()
    html = str(render_body("trajectory", data))
    charts = images(html, "ecco-s-chart")
    assert len(charts) == len(data["series"])
    for chart in charts:
        assert ET.fromstring(chart).tag.endswith("svg")
        assert chart.count(b"<path d=\"M") >= len(data["tokens"])
    rows = table_rows(html, "ecco-s-traj-values")
    first = data["series"][0]["values"][0]
    assert [t for t, _ in rows[1][1:]] == [fmt(v) for v in first]


def test_numpy_values_are_read_like_the_json_the_view_gets() -> None:
    data = rankings_data()
    as_numpy = dict(data, ranks=np.array(data["ranks"], dtype=np.int64), probs=np.array(data["probs"], dtype=np.float32))
    rows = table_rows(render_fragment("rankings", as_numpy), "ecco-s-rankings")[1:]
    assert [[int(t) for t, _ in row[1:]] for row in rows] == data["ranks"]


def test_long_texts_are_capped_and_say_so() -> None:
    tokens = [dict(TOKENS_DATA["tokens"][0], text=f" w{i}", position=i) for i in range(2500)]
    html = str(render_body("tokens", dict(TOKENS_DATA, tokens=tokens)))
    assert html.count('class="ecco-s-token"') == 2000 and "showing the first 2000 of 2500 tokens" in html
