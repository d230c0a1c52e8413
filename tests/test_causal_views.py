"""The causal tracing and intervention diff views without a browser: the data dicts copy the result
types' numbers (checked against the formulas and difflib written out here), NaN and inf become None,
the data is JSON; bad input is refused; the static renderings show every number and escape token
text; the figures plot the data."""
from __future__ import annotations

import difflib
import json
import math
import re
from html import unescape

import numpy as np
import pytest

from ecco.render.static import render_body
from ecco.render.static.html import display_text, fmt, signed
from ecco.views.interventions import intervention_diff_data, intervention_diff_figure
from ecco.views.tracing import trace_data, trace_figure
from tests.browser.test_intervention_view import CLEAN, INTERVENED, make_diff, texts
from tests.browser.test_trace_view import COMPONENTS, COUNTERFACTUAL, TOKENS, make_trace
from tests.test_static_render import table_rows

TRACE_KEYS = ["title", "model", "stack", "tokens", "corrupted", "counterfactual", "target", "clean_prob", "corrupt_prob",
              "noise", "seeds", "window", "layers", "components"]
VALUES = ("indirect", "normalised", "prob")
PROMPT = ["<i>a</i>", " b", " c"]
TOP = 0.85  # the opacity of a heatmap's max


def _nan(grid: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in grid], dtype=float)


def _peak(grid: list[list[float | None]]) -> float:
    return max([v for row in grid for v in row if v is not None and v > 0] + [0.0])


def _alpha(style: str) -> float:
    """The opacity of a static cell's background (0 when it has none)."""
    found = re.search(r"background-color:rgba\(\d+,\d+,\d+,([\d.]+)\)", style or "")
    return float(found.group(1)) if found else 0.0


# ---------------------------------------------------------------- tracing: data

def test_trace_data_copies_the_trace():
    trace = make_trace(0)
    trace.probs["residual"][0, 0] = np.inf
    data = trace_data(trace, TOKENS, " Paris", "tiny")
    json.dumps(data, allow_nan=False)
    assert list(data) == TRACE_KEYS
    assert data["tokens"] == TOKENS and data["corrupted"] == [1, 2, 3] and data["counterfactual"] is None
    assert data["target"] == {"id": 42, "text": " Paris"} and data["title"] == "Causal tracing of p(' Paris')"
    assert (data["clean_prob"], data["corrupt_prob"], data["noise"], data["seeds"], data["window"], data["layers"]) == \
        (0.7, 0.05, 0.42, 5, 3, 6)
    assert [(c["name"], c["label"]) for c in data["components"]] == [
        ("residual", "residual stream"), ("mlp", "MLP"), ("attention", "attention")]
    for component in data["components"]:
        probs = trace.probs[component["name"]]
        for layer in range(6):
            for p in range(len(TOKENS)):
                v = float(probs[layer, p])
                shown = (component["prob"][layer][p], component["indirect"][layer][p], component["normalised"][layer][p])
                if not math.isfinite(v):
                    assert shown == (None, None, None)
                else:
                    assert shown == pytest.approx((v, v - 0.05, (v - 0.05) / (0.7 - 0.05)), rel=1e-12)
    assert data["components"][1]["prob"][2][3] is None  # the NaN cell


def test_normalised_effect_is_none_when_clean_equals_corrupted():
    trace = make_trace(0)
    trace.clean_prob = trace.corrupt_prob
    data = trace_data(trace, TOKENS, " Paris", "tiny")
    json.dumps(data, allow_nan=False)
    assert all(v is None for c in data["components"] for row in c["normalised"] for v in row)
    assert data["components"][0]["indirect"][1][1] == pytest.approx(trace.probs["residual"][1, 1] - trace.corrupt_prob)


def test_counterfactual_trace_data():
    data = trace_data(make_trace(1, counterfactual=True), TOKENS, " Paris", "tiny", COUNTERFACTUAL)
    assert data["counterfactual"] == COUNTERFACTUAL and data["noise"] is None and data["seeds"] == 1
    assert data["title"] == "Activation patching of p(' Paris')" and data["corrupted"] == [3, 4]


@pytest.mark.parametrize("change, args, message", [
    (None, {"tokens": TOKENS[:-1]}, "tokens has 6 texts but the trace has 7 positions"),
    (None, {"counterfactual": COUNTERFACTUAL}, "counterfactual .* must be given exactly when"),
    ("counterfactual", {}, "counterfactual .* must be given exactly when"),
    ("counterfactual", {"counterfactual": COUNTERFACTUAL[:3]}, "counterfactual has 3 texts"),
    ("corrupted", {}, r"Corrupted positions \[7\] are outside"),
    ("component", {}, r"unknown components \['heads'\]"),
    ("shape", {}, "all of one shape"),
    ("empty", {}, "no components"),
])
def test_trace_data_refuses_texts_that_do_not_fit(change, args, message):
    trace = make_trace(0, counterfactual=change == "counterfactual")
    if change == "corrupted":
        trace.corrupted = [1, 7]
    elif change == "component":
        trace.probs["heads"] = trace.probs["mlp"]
    elif change == "shape":
        trace.probs["mlp"] = trace.probs["mlp"][:4]
    elif change == "empty":
        trace.probs = {}
    with pytest.raises(ValueError, match=message):
        trace_data(trace, args.get("tokens", TOKENS), " Paris", "tiny", args.get("counterfactual"))


# ---------------------------------------------------------------- tracing: static rendering and figure

def test_trace_static_rendering_shows_every_cell():
    data = trace_data(make_trace(0), TOKENS, "</b> Paris", "tiny")
    html = str(render_body("causal_trace", data))
    assert "<script" not in html and "<b>" not in html and "</div><b>" not in html
    labels = [display_text(t) + ("*" if p in data["corrupted"] else "") for p, t in enumerate(TOKENS)]
    for key in VALUES:
        rows = table_rows(html, f"ecco-s-ct-{key}")
        assert len(rows) == len(COMPONENTS) * (1 + len(TOKENS))
        for i, component in enumerate(data["components"]):
            head, *body = rows[i * (1 + len(TOKENS)): (i + 1) * (1 + len(TOKENS))]
            assert [text for text, _ in head] == [""] + [str(layer) for layer in range(6)]
            assert [row[0][0] for row in body] == labels
            grid, peak = component[key], _peak(component[key])
            for p, row in enumerate(body):
                assert [text for text, _ in row[1:]] == [fmt(grid[layer][p], 2) for layer in range(6)]
                for layer, (_, attrs) in enumerate(row[1:]):
                    v = grid[layer][p]
                    assert _alpha(attrs["style"]) == pytest.approx(TOP * v / peak if v is not None and v > 0 else 0, abs=6e-4)
    text = unescape(html)
    for part in ("</b> Paris", "(id 42)", f"p clean {fmt(0.7)}", f"p corrupted {fmt(0.05)}", "\u03c3 0.42", "5 seeds",
                 "window 3"):
        assert part in text
    counterfactual = unescape(str(render_body("causal_trace", trace_data(make_trace(1, True), TOKENS, " x", "tiny",
                                                                              COUNTERFACTUAL))))
    assert "counterfactual prompt" in counterfactual and " Eiffel" in counterfactual and "noise" not in counterfactual


@pytest.mark.parametrize("value", VALUES)
def test_trace_figure_plots_the_data(value):
    data = trace_data(make_trace(0), TOKENS, " Paris", "tiny")
    figure = trace_figure(data, value)
    images = [image for ax in figure.axes for image in ax.images]
    assert [image.get_gid() for image in images] == [f"heatmap:{c['label']}" for c in data["components"]]
    for image, component in zip(images, data["components"]):
        np.testing.assert_array_equal(np.ma.filled(image.get_array().astype(float), np.nan), _nan(component[value]).T)
        assert image.get_clim() == pytest.approx((0, _peak(component[value])))
    labels = [t.get_text() for t in images[0].axes.get_yticklabels()]
    cut = [t if len(t) <= 24 else t[:23] + "\u2026" for t in TOKENS]  # long tokens cut, their star kept
    assert labels == [display_text(t) + ("*" if p in data["corrupted"] else "") for p, t in enumerate(cut)]
    with pytest.raises(ValueError, match="value must be one of"):
        trace_figure(data, "logit")


# ---------------------------------------------------------------- intervention diff

def _ops(intervened: list[int]) -> list[list]:
    return [list(op) for op in difflib.SequenceMatcher(a=CLEAN, b=intervened, autojunk=False).get_opcodes()]


def test_diff_data_copies_the_diff():
    diff = make_diff(nan=True)
    data = intervention_diff_data(diff, PROMPT, texts(CLEAN), texts(INTERVENED), "tiny")
    json.dumps(data, allow_nan=False)
    ops = _ops(INTERVENED)
    assert data["ops"] == ops and {op[0] for op in ops} == {"equal", "replace", "delete", "insert"}
    assert data["changed"] == sum(j2 - j1 for tag, _, _, j1, j2 in ops if tag != "equal") == 2
    assert data["prompt"] == PROMPT and data["interventions"] == diff.descriptions and data["model"] == "tiny"
    assert data["clean"] == [{"id": i, "text": t, "prob": pytest.approx(p)}
                             for i, t, p in zip(CLEAN, texts(CLEAN), np.linspace(0.9, 0.2, len(CLEAN)))]
    probs, before = [0.8, 0.61, 0.3, 0.05, 0.5, 0.45, 0.7], [0.8, 0.02, 0.4, None, 0.5, 0.2, 0.1]
    for j, token in enumerate(data["intervened"]):
        assert (token["id"], token["text"], token["prob"], token["clean_prob"]) == (INTERVENED[j], texts(INTERVENED)[j], probs[j],
                                                                                    before[j])
        assert token["change"] == (None if before[j] is None else pytest.approx(probs[j] - before[j], abs=1e-15))


@pytest.mark.parametrize("where, message", [
    ("prompt", "prompt has 2 token texts but the diff has 3"),
    ("clean", "clean has 7 token texts but the diff has 8"),
    ("intervened", "intervened has 6 token texts but the diff has 7"),
    ("probs", r"intervened probabilities have shape \(6,\)"),
])
def test_diff_data_refuses_texts_that_do_not_fit(where, message):
    diff = make_diff()
    if where == "probs":
        diff.intervened_probs = diff.intervened_probs[:-1]
    texts_ = {"prompt": PROMPT, "clean": texts(CLEAN), "intervened": texts(INTERVENED)}
    if where in texts_:
        texts_[where] = texts_[where][:-1]
    with pytest.raises(ValueError, match=message):
        intervention_diff_data(diff, texts_["prompt"], texts_["clean"], texts_["intervened"], "tiny")


def test_diff_static_rendering_shows_every_number():
    data = intervention_diff_data(make_diff(nan=True), PROMPT, texts(CLEAN), texts(INTERVENED), "tiny")
    html = str(render_body("intervention_diff", data))
    assert "<script" not in html and "<b>" not in html and "<i>" not in html
    text = unescape(html)
    assert "2 of 7 tokens changed; first change at token 1" in text and "steer layer 0 by 4 \u00d7 '</b>'" in text
    removed = {i for tag, i1, i2, _, _ in _ops(INTERVENED) if tag != "equal" for i in range(i1, i2)}
    added = {j for tag, _, _, j1, j2 in _ops(INTERVENED) if tag != "equal" for j in range(j1, j2)}
    rows = table_rows(html, "ecco-s-diff-intervened")[1:]
    assert [[text for text, _ in row] for row in rows] == [
        [str(j), display_text(t["text"]), str(t["id"]), fmt(t["prob"]), fmt(t["clean_prob"]), signed(t["change"]),
         "changed" if j in added else ""] for j, t in enumerate(data["intervened"])]
    rows = table_rows(html, "ecco-s-diff-clean")[1:]
    assert [[text for text, _ in row] for row in rows] == [
        [str(i), display_text(t["text"]), str(t["id"]), fmt(t["prob"]), "removed" if i in removed else ""]
        for i, t in enumerate(data["clean"])]
    # The aligned rows: every token of an equal op alone, every other op as one highlighted block.
    expected = []
    for tag, i1, i2, j1, j2 in _ops(INTERVENED):
        spans = list(zip(range(i1, i2), range(j1, j2))) if tag == "equal" else [(range(i1, i2), range(j1, j2))]
        for a, b in spans:
            a, b = (range(a, a + 1), range(b, b + 1)) if tag == "equal" else (a, b)
            expected.append((tag, "".join(display_text(data["clean"][i]["text"]) for i in a),
                             "".join(display_text(data["intervened"][j]["text"]) for j in b)))
    clean_row, intervened_row = table_rows(html, "ecco-s-diff-align")
    assert [(attrs["data-tag"], c, i) for (c, attrs), (i, _) in zip(clean_row[1:], intervened_row[1:])] == expected
    struck = re.findall(r'text-decoration:line-through" title="clean token (\d+)', html)
    assert sorted({int(i) for i in struck}) == sorted(removed)
    same = intervention_diff_data(make_diff(CLEAN), PROMPT, texts(CLEAN), texts(CLEAN), "tiny")
    assert "nothing changed: the two continuations are the same 8 tokens" in str(render_body("intervention_diff", same))


def test_diff_figure_plots_the_changes():
    data = intervention_diff_data(make_diff(nan=True), PROMPT, texts(CLEAN), texts(INTERVENED), "tiny")
    figure = intervention_diff_figure(data)
    ax = figure.axes[0]
    assert ax.get_title() == "2 of 7 tokens changed; first change at token 1"
    heights = [patch.get_height() for patch in ax.patches]
    np.testing.assert_allclose(heights, [np.nan if t["change"] is None else t["change"] for t in data["intervened"]])
    added = {j for tag, _, _, j1, j2 in _ops(INTERVENED) if tag != "equal" for j in range(j1, j2)}
    assert [patch.get_linewidth() > 0 for patch in ax.patches] == [j in added for j in range(len(INTERVENED))]
    assert [t.get_fontweight() == "bold" for t in ax.get_xticklabels()] == [j in added for j in range(len(INTERVENED))]
    colours = [patch.get_facecolor()[:3] for patch in ax.patches]
    assert [c == pytest.approx((45 / 255, 112 / 255, 230 / 255)) for c in colours] == [
        not (t["change"] or 0) < 0 for t in data["intervened"]]
