"""Views where scripts do not run (untrusted notebook, GitHub/nbviewer, an export without scripts),
in headless Chromium with JavaScript disabled: every view shows a static rendering with the real
numbers of a tiny model's output; with JavaScript on, the interactive view replaces it. Also: a
tooltip at the right edge of a view keeps its natural width."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import ecco
from ecco.render import View, save_report, standalone_page
from ecco.render.static.html import display_text, fmt, pct
from tests import tiny
from tests.browser.conftest import LOCAL_SCHEMES
from tests.browser.test_lens_views import EVIL, lp_data, rankings_data

pytestmark = pytest.mark.browser

# A selector that only the interactive view draws, per view.
INTERACTIVE = {
    "tokens": ".ecco-token", "attribution": ".ecco-target", "layer_predictions": ".ecco-lp-candidate",
    "rankings": ".ecco-rank-cell", "trajectory": "svg.ecco-traj-chart", "nmf": ".ecco-nmf-factor",
    "neuron": ".ecco-neuron-token", "top_neurons": ".ecco-top-neuron", "similarity": ".ecco-sim-cell",
    "attention_head": "svg.ecco-att-svg", "attention_model": "canvas.ecco-thumb", "attention_neuron": ".ecco-nv-key",
    "neuron_dashboard": ".ecco-nd-context", "faithfulness": ".ecco-fa-row", "logit_attribution": ".ecco-la-row",
    "causal_trace": ".ecco-ct-cell", "intervention_diff": ".ecco-diff-token",
}
SCRIPTS_AND_STYLES = re.compile(r"<(script|style)\b.*?</\1>", re.S)


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, attention=True, verbose=False)
    return lm.generate("the quick brown fox", generate=4, min_new_tokens=4, attribution=["grad_x_input"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    texts = ["def f(x):\n    return [x, '<b>' + x]\n" * 3, "the quick brown fox jumps over the lazy dog. " * 4]
    return lm.run_corpus(texts, tmp_path_factory.mktemp("static-run"), layers=[1], max_tokens=48, overlap=8,
                         top_k=4, progress=False)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.attribute_dataset(["the quick brown fox", ("a <b>dog</b>", " ran")], ["grad_x_input", "occlusion"],
                                tmp_path_factory.mktemp("static-experiment"), generate=3, steps=4, seeds=2, progress=False)


@pytest.fixture(scope="module")
def views(output, run, experiment) -> dict[str, View]:
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    built = {
        "tokens": output.tokens_view(), "attribution": output.primary_attributions(attr_method="grad_x_input"),
        "layer_predictions": output.layer_predictions(position=6, topk=5), "rankings": output.rankings(),
        "trajectory": output.trajectories(), "nmf": output.run_nmf(n_components=3).explore(),
        "neuron": output.neuron_view(layer=1, neuron=5), "top_neurons": output.top_neurons(position=3, k=8),
        "similarity": output.layer_similarity(), "attention_head": output.attention_head_view(),
        "attention_model": output.attention_model_view(), "attention_neuron": output.attention_neuron_view(layer=1, head=2),
        "neuron_dashboard": run.neuron(1, 5), "faithfulness": experiment.compare(),
        "logit_attribution": lm.logit_attribution("the quick brown fox", target=" jumps"),
        "causal_trace": lm.trace("the quick <b>brown</b> fox", target=" jumps", corrupt="brown", seeds=2),
        "intervention_diff": lm.generate("the quick brown fox", generate=4, min_new_tokens=4,
                                         interventions=[ecco.Ablate(1, neurons=list(range(40)))]).intervention_diff(),
    }
    assert set(built) == set(ecco.render.view_names())
    return built


@pytest.fixture
def open_static(chromium, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """open_static(html, sanitize=False) -> page, with JavaScript disabled and the network blocked;
    sanitize=True also drops every <script> and <style> element, as JupyterLab does for an
    untrusted notebook."""
    context = chromium.new_context(java_script_enabled=False)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES) else route.abort())
    pages = iter(range(1000))

    def open_page(html: str, sanitize: bool = False):
        path = tmp_path / f"static{next(pages)}.html"
        path.write_text(SCRIPTS_AND_STYLES.sub("", html) if sanitize else html, encoding="utf-8")
        page = context.new_page()
        page.goto(path.as_uri())
        return page

    yield open_page
    context.close()


def cells(root, table: str) -> list[list[str]]:
    """Text of each cell of the body rows of the static table of class ``table``."""
    return root.locator(f"table.{table} tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))")


# ---------------------------------------------------------------- without JavaScript

def test_every_view_is_shown_without_javascript(views, open_static, tmp_path: Path) -> None:
    page = open_static(save_report(list(views.values()), tmp_path / "all.html").read_text(encoding="utf-8"))
    for name in views:
        root = page.locator(f".ecco-view-{name}")
        static = root.locator(".ecco-static")
        assert static.is_visible(), name
        assert "File \u2192 Trust Notebook" in static.locator(".ecco-static-note").text_content()
        assert root.locator(INTERACTIVE[name]).count() == 0
        assert len(static.text_content()) > 200, name
    loaded = page.locator(".ecco-static img").evaluate_all("els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert len(loaded) >= 10 and all(loaded)


def test_rankings_show_the_models_ranks(output, views, open_static) -> None:
    page = open_static(views["rankings"].html)
    ranks = output.rankings(printJson=True)["rankings"]
    shown = cells(page.locator(".ecco-view-rankings"), "ecco-s-rankings")
    assert [[int(x) for x in row[1:]] for row in shown] == ranks.tolist()
    assert [int(row[0]) for row in shown] == list(range(ranks.shape[0]))


def test_layer_predictions_show_the_lens_top_k(output, views, open_static) -> None:
    page = open_static(views["layer_predictions"].html)
    rows = output.layer_predictions(position=6, topk=5, printJson=True)
    titles = page.locator(".ecco-s-candidate").evaluate_all("els => els.map(e => e.title)")
    assert titles == [f"rank {c['ranking']} \u00b7 id {c['token_id']} \u00b7 p {pct(c['prob'], 2)}" for row in rows for c in row]
    shown = cells(page, "ecco-s-lp")
    assert [row[1] for row in shown] == ["".join(f"{display_text(c['token'])} {pct(c['prob'])}" for c in row) for row in rows]
    actual = views["layer_predictions"].data["actual_by_layer"]
    assert [int(row[2]) for row in shown] == [r["rank"] for r in actual]


def test_attribution_colours_the_last_target(output, views, open_static) -> None:
    page = open_static(views["attribution"].html)
    result = output.attributions["grad_x_input"]
    k = len(result.targets[0]) - 1
    target = result.targets[0][k]
    titles = page.locator(".ecco-view-attribution .ecco-s-tokens .ecco-s-token[title^='attribution']").evaluate_all(
        "els => els.map(e => e.title)")
    assert titles == [f"attribution {pct(float(v))} \u00b7 position {p}" for p, v in enumerate(result.values[0][k][:target])]
    top = cells(page, "ecco-s-attr-top")
    strongest = sorted(result.values[0][k][:target].tolist(), reverse=True)[:10]
    assert [row[2] for row in top] == [pct(v) for v in strongest]


def test_neuron_views_show_the_activations(output, views, open_static, tmp_path: Path) -> None:
    page = open_static(save_report([views["neuron"], views["top_neurons"], views["similarity"], views["nmf"]],
                                   tmp_path / "neurons.html").read_text(encoding="utf-8"))
    values = output.neuron_view(layer=1, neuron=5, printJson=True)
    assert page.locator(".ecco-s-value").all_text_contents() == [fmt(float(v), 3) for v in values]
    top = output.top_neurons(position=3, k=8, printJson=True)
    assert [row[3] for row in cells(page, "ecco-s-top-neurons")] == [fmt(n["value"]) for n in top]
    matrix = output.layer_similarity(printJson=True)
    assert [row[1:] for row in cells(page, "ecco-s-similarity")] == [[f"{v:.2f}" for v in row] for row in matrix]
    factors = views["nmf"].data["factors"]
    assert page.locator(".ecco-view-nmf img.ecco-s-spark").count() == len(factors)
    titles = page.locator(".ecco-view-nmf .ecco-s-token").evaluate_all("els => els.map(e => e.title)")
    for i, title in enumerate(titles):
        assert all(f"factor {k}: {fmt(max(0.0, row[i]), 3)}" in title for k, row in enumerate(factors))


def test_attention_views_show_the_models_weights(output, views, open_static, tmp_path: Path) -> None:
    page = open_static(save_report([views["attention_head"], views["attention_model"], views["attention_neuron"]],
                                   tmp_path / "attention.html").read_text(encoding="utf-8"))
    weights = output.attention["decoder"][0].float().numpy()  # (layers, heads, queries, keys)
    n = len(output.sequences[0])
    strongest = [float(row[1].split()[-1]) for row in cells(page, "ecco-s-att-top")]
    packed = np.round(weights[0, :, :n, :n].clip(0, 1) * 255) / 255
    assert strongest == pytest.approx(packed.mean(axis=0).max(axis=1), abs=5e-4)
    assert page.locator("img.ecco-s-att-layer").count() == weights.shape[0]
    # The neuron view's softmax, computed in Python from the captured q and k, is the model's weight.
    rows = cells(page, "ecco-s-nv")
    model = [float(row[-1].rstrip("%")) for row in rows]
    assert model == pytest.approx([100 * w for w in weights[1, 2, n - 1, :n]], abs=0.051)
    assert [float(row[-2].strip().rstrip("%")) for row in rows] == pytest.approx(model, abs=0.11)


def test_static_views_survive_a_sanitizer(views, open_static, tmp_path: Path) -> None:
    html = save_report([views["rankings"], views["trajectory"], views["nmf"]], tmp_path / "s.html").read_text(encoding="utf-8")
    page = open_static(html, sanitize=True)
    assert page.locator("style, script").count() == 0
    cell = page.locator("table.ecco-s-rankings td").first
    assert cell.evaluate("e => getComputedStyle(e).backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
    charts = page.locator("img.ecco-s-chart, img.ecco-s-spark").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert len(charts) == 6 + 3 and all(w > 0 for w in charts)  # 6 trajectory series, 3 NMF factors


def test_nasty_token_text_stays_text(open_static, tmp_path: Path) -> None:
    page = open_static(save_report([View("rankings", rankings_data()), View("layer_predictions", lp_data())],
                                   tmp_path / "evil.html").read_text(encoding="utf-8"))
    assert page.locator(".ecco-static b, .ecco-static script").count() == 0
    heads = page.locator("table.ecco-s-rankings thead th").all_text_contents()
    assert EVIL in heads
    assert page.locator(".ecco-view-layer_predictions .ecco-s-candidate", has_text=EVIL).count() == 13


# ---------------------------------------------------------------- with JavaScript

def test_interactive_view_replaces_the_static_one(views, open_html, tmp_path: Path) -> None:
    page = open_html(save_report(list(views.values()), tmp_path / "all.html").read_text(encoding="utf-8"))
    assert page.locator(".ecco-static").count() == 0
    for name, selector in INTERACTIVE.items():
        assert page.locator(f".ecco-view-{name} {selector}").count() > 0, name


def test_a_view_that_fails_keeps_its_static_rendering(views, chromium, tmp_path: Path) -> None:
    data = json.loads(json.dumps(views["attention_model"].data))
    data["sets"][0]["weights"] = base64.b64encode(b"\x00" * 7).decode()  # does not match the shape
    page = chromium.new_page()
    page.goto(View("attention_model", data).save_html(tmp_path / "bad.html").as_uri())
    root = page.locator(".ecco-view-attention_model")
    assert "could not render" in root.text_content()
    assert root.locator(".ecco-static").is_visible() and root.locator(".ecco-static-note").count() == 0
    assert "do not match their shape" in root.locator(".ecco-static").text_content()
    page.close()


def test_tooltip_at_the_right_edge_keeps_its_width(open_html) -> None:
    """A view in a narrow container that is the containing block of fixed elements (as notebook
    panels are): the tooltip of its rightmost token is not squeezed and stays in the viewport."""
    tokens = [{"text": f" word{i}", "id": i, "position": i, "is_input": True, "continues_word": False, "special": False}
              for i in range(40)]
    fragment = View("tokens", {"tokens": tokens, "n_input_tokens": 40, "title": None}).html
    panel = '<div style="transform: translateZ(0); width: 420px; margin-left: 300px">{}</div>'
    page = open_html(standalone_page([panel.format(fragment)]))
    page.set_viewport_size({"width": 760, "height": 600})
    spans = page.locator(".ecco-token")
    rights = spans.evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
    for i in (0, int(np.argmax(rights))):
        spans.nth(i).hover()
        tip = page.locator(".ecco-tooltip")
        box = tip.bounding_box()
        natural = tip.evaluate("""t => { const c = t.cloneNode(true); c.style.left = "0px"; c.style.top = "0px";
            t.parentNode.appendChild(c); const r = c.getBoundingClientRect(); c.remove(); return [r.width, r.height]; }""")
        assert box["width"] == pytest.approx(natural[0], abs=0.5) and box["height"] == pytest.approx(natural[1], abs=0.5)
        one_line = "rows => rows.map(r => r.getBoundingClientRect().height <= 1.2 * parseFloat(getComputedStyle(r).lineHeight))"
        assert all(tip.locator(".ecco-tooltip-row").evaluate_all(one_line))
        assert 0 <= box["x"] and box["x"] + box["width"] <= 760
