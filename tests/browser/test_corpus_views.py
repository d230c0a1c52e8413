"""The corpus views (``neuron_dashboard``: neuron dashboards and the neuron search) in headless
Chromium, on a real tiny-GPT-2 corpus run: two dashboards and a search view on one page. The DOM
shows the data's contexts (token text escaped), marks the peaks, colours the tokens by their
values, draws one histogram bar per bin, and each view reacts to its own clicks only. With
JavaScript off, the static rendering shows the same contexts and numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import ecco
from ecco.render import save_report
from ecco.render.static.html import display_text
from tests import tiny
from tests.test_corpus_run import TEXTS

pytestmark = pytest.mark.browser

EVIL_TEXT = 'x <b>bold</b> "q" & </script><script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2">'
EVIL_DOC = len(TEXTS)
ORANGE, BLUE = (240, 120, 20), (45, 112, 230)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.run_corpus(TEXTS + [EVIL_TEXT], tmp_path_factory.mktemp("corpus-views"), max_tokens=48, overlap=8,
                         batch_tokens=160, shard_tokens=60, top_k=6, progress=False)


@pytest.fixture(scope="module")
def views(run) -> dict:
    """Dashboard A: a layer-1 neuron whose top token is in the evil document (its whole text in the
    window); dashboard B: another neuron; and a search."""
    summary = run.summary.neurons["ffn.decoder.1"]
    first = int(np.flatnonzero(summary.top_doc_ids[:, 0] == EVIL_DOC)[0])
    other = (first + 1) % summary.n_neurons
    return {"a": run.neuron(1, first, width=150, effects=4), "b": run.neuron(1, other, k=4, width=3, effects=4),
            "search": run.search({"(", ")", " ("}, top=6).view(contexts=3, width=4)}


@pytest.fixture(scope="module")
def report(views, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "corpus.html"
    return save_report([views["a"], views["b"], views["search"]], path, title="corpus views")


def rgba(css: str) -> tuple[float, float, float, float]:
    parts = [float(x) for x in re.findall(r"[\d.]+", css)]
    return tuple(parts) if len(parts) == 4 else (*parts, 1.0)


def expected_colour(v: float | None, max_abs: float) -> tuple[float, float, float, float]:
    if v is None:
        return (0.0, 0.0, 0.0, 0.0)
    base = BLUE if v < 0 else ORANGE
    return (*map(float, base), round(0.85 * abs(v) / max_abs, 3))


def context_dom(root) -> list[dict]:
    return root.locator(".ecco-nd-context").evaluate_all("""nodes => nodes.map(n => ({
        tokens: Array.from(n.querySelectorAll('.ecco-nd-token')).map(t => t.textContent),
        peaks: Array.from(n.querySelectorAll('.ecco-nd-token'))
          .flatMap((t, i) => t.classList.contains('ecco-nd-peak') ? [i] : []),
        colours: Array.from(n.querySelectorAll('.ecco-nd-token')).map(t => getComputedStyle(t).backgroundColor),
        value: n.querySelector('.ecco-nd-value').textContent,
        where: (n.querySelector('.ecco-nd-where') || {}).textContent || n.title}))""")


def check_contexts(dom: list[dict], contexts: list[dict]) -> None:
    max_abs = max(abs(v) for c in contexts for v in c["values"] if v is not None)
    assert len(dom) == len(contexts)
    for got, ctx in zip(dom, contexts):
        assert got["tokens"] == ctx["tokens"]
        assert got["peaks"] == [ctx["peak"]]
        assert got["where"] == f"{ctx['document']} \u00b7 position {ctx['position']}"
        for colour, v in zip(got["colours"], ctx["values"]):
            assert rgba(colour) == pytest.approx(expected_colour(v, max_abs), abs=4e-3)  # alpha: 8 bits


def test_dashboards_and_search_in_chromium(open_html, report, views, run):
    page = open_html(report.read_text(encoding="utf-8"))
    roots = page.locator(".ecco-view-neuron_dashboard")
    assert roots.count() == 3
    a, b, search = roots.nth(0), roots.nth(1), roots.nth(2)
    assert page.evaluate("window.__pwned") is None and page.locator("b, img, .ecco-view script").count() == 0

    # contexts: escaped text, the peak marked, colours following the values (one scale per dashboard)
    for root, view in ((a, views["a"]), (b, views["b"])):
        check_contexts(context_dom(root), view.data["contexts"])
    top = context_dom(a)[0]
    assert "".join(top["tokens"]) == EVIL_TEXT  # the whole evil document, as text
    assert views["a"].data["contexts"][0]["doc"] == EVIL_DOC

    # histograms: one bar per bin from the first to the last non-empty one, heights by count
    for root, view in ((a, views["a"]), (b, views["b"])):
        counts = view.data["histogram"]["counts"]
        filled = [i for i, c in enumerate(counts) if c]
        bars = root.locator("rect.ecco-nd-bar").evaluate_all(
            "rs => rs.map(r => [Number(r.dataset.count), Number(r.dataset.bin), Number(r.getAttribute('height'))])")
        assert [c for c, _, _ in bars] == counts[filled[0]: filled[-1] + 1]
        assert [i for _, i, _ in bars] == list(range(filled[0], filled[-1] + 1))
        top_count = max(counts)
        for c, _, h in bars:
            assert h == pytest.approx(max(1, 90 * c / top_count) if c else 0, abs=0.01)
        assert sum(c for c, _, _ in bars) == view.data["count"] == run.table.num_rows
        effects = root.locator(".ecco-nd-up .ecco-nd-effect-token").all_text_contents()
        assert effects == [e["text"] for e in view.data["effects"]["up"]]

    # the search view: one row per neuron, its numbers and contexts
    rows = views["search"].data["neurons"]
    names = search.locator(".ecco-ns-name").all_text_contents()
    assert names == [f"L{r['layer']} \u00b7 n{r['neuron']}" for r in rows]
    aurocs = search.locator(".ecco-ns-auroc").all_text_contents()
    assert [t.strip() for t in aurocs] == [f"{r['auroc']:.3f}" for r in rows]
    for i, row in enumerate(rows):
        check_contexts(context_dom(search.locator(".ecco-ns-row").nth(i)), row["contexts"])

    # interactions stay in their own view
    a.locator(".ecco-nd-context").nth(1).click()
    assert a.locator(".ecco-nd-context.ecco-selected").count() == 1
    ctx = views["a"].data["contexts"][1]
    assert f"{ctx['document']}, position {ctx['position']}" in a.locator(".ecco-nd-detail").text_content()
    assert b.locator(".ecco-selected").count() == 0 and b.locator(".ecco-nd-detail").text_content() == ""
    b.locator("rect.ecco-nd-bar").last.dispatch_event("click")
    assert b.locator(".ecco-nd-readout").text_content().endswith(f"{bars[-1][0]} tokens")
    assert a.locator(".ecco-nd-readout").text_content() == ""
    assert a.locator(".ecco-nd-context.ecco-selected").count() == 1 and a.locator("rect.ecco-selected").count() == 0
    b.locator(".ecco-nd-token").first.hover()
    assert b.locator(".ecco-tooltip").is_visible() and not a.locator(".ecco-tooltip").is_visible()
    assert "value" in b.locator(".ecco-tooltip").text_content()

    search.locator(".ecco-ns-sort button", has_text="precision").click()
    order = search.locator(".ecco-ns-name").all_text_contents()
    by_precision = sorted(range(len(rows)), key=lambda i: (-rows[i]["precision_at_k"], i))
    assert order == [names[i] for i in by_precision]
    assert a.locator(".ecco-nd-context.ecco-selected").count() == 1  # the dashboards did not move


def test_static_rendering_without_javascript(chromium, report, views):
    context = chromium.new_context(java_script_enabled=False)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:")) else route.abort())
    try:
        page = context.new_page()
        page.goto(report.as_uri())
        roots = page.locator(".ecco-view-neuron_dashboard")
        assert roots.count() == 3 and page.locator(".ecco-nd-context").count() == 0
        assert page.locator(".ecco-view b, .ecco-view img").count() == 0
        for i, key in enumerate(("a", "b")):
            data = views[key].data
            rows = roots.nth(i).locator("table.ecco-s-contexts tbody tr")
            assert rows.count() == len(data["contexts"])
            for r, ctx in enumerate(data["contexts"]):
                chips = rows.nth(r).locator(".ecco-s-token")
                assert chips.all_text_contents() == [display_text(t) for t in ctx["tokens"]]
                peak = chips.nth(ctx["peak"]).evaluate("c => getComputedStyle(c).borderTopWidth")
                assert peak == "2px"
            filled = [c for c in data["histogram"]["counts"] if c]
            hist = roots.nth(i).locator("table.ecco-s-histogram tbody tr td:nth-child(2)").all_text_contents()
            assert [int(c) for c in hist if c != "0"] == filled
        assert "".join(roots.nth(0).locator("table.ecco-s-contexts tbody tr").first.locator(".ecco-s-token")
                       .all_text_contents()) == EVIL_TEXT
        search_rows = roots.nth(2).locator("table.ecco-s-search tbody tr")
        neurons = views["search"].data["neurons"]
        assert search_rows.count() == len(neurons)
        for r, n in enumerate(neurons):
            cells = search_rows.nth(r).locator("th, td").all_text_contents()
            assert cells[1] == f"L{n['layer']} \u00b7 n{n['neuron']}"
            assert cells[2].strip().endswith(f"{n['auroc']:.3f}")
            assert search_rows.nth(r).locator(".ecco-s-context").count() == len(n["contexts"])
    finally:
        context.close()


# Plain view data (no model), for tests that take one sample per view (tests/test_static_render.py's SAMPLES).
def sample_context(doc: int = 0, position: int = 2, shift: float = 0.0) -> dict:
    return {"doc": doc, "document": "lib/<b>evil</b>.py", "position": position, "first": position - 2, "peak": 2,
            "value": 1.5 + shift, "tokens": ["a", "\n", EVIL_TEXT, ' "q"', "&"],
            "values": [0.25, -0.75, 1.5 + shift, None, 0.0]}


def dashboard_sample(kind: str = "neuron") -> dict:
    """A neuron (or factor) dashboard's data with hostile token text and document names."""
    return {"kind": kind, "title": "Neuron 5 of decoder layer 1 \u00b7 tiny", "name": "layer 1 \u00b7 neuron 5",
            "column": "ffn.decoder.1", "stack": "decoder", "layer": 1, "neuron": 5, "model": "tiny", "width": 2, "k": 4,
            "contexts": [sample_context(0, 2, 0.5), sample_context(3, 9)], "count": 100, "mean": 0.01, "std": 0.5,
            "fraction_positive": 0.4, "histogram": {"counts": [0, 2, 10, 0, 60, 28, 0], "edges": [-2, -1, 0, 1, 2, 4]},
            "effects": None if kind == "factor" else {"up": [{"id": 7, "text": EVIL_TEXT, "value": 0.5}],
                                                      "down": [{"id": 8, "text": "<b>", "value": -0.25}]},
            "effects_note": None}


def search_sample() -> dict:
    """A search view's data."""
    return {"kind": "search", "title": "Neurons that fire on tokens '<b>' \u00b7 tiny", "predicate": "tokens '<b>'",
            "model": "tiny", "width": 2, "neurons": [
                {"rank": 1, "column": "ffn.decoder.1", "stack": "decoder", "layer": 1, "neuron": 5, "auroc": 0.93,
                 "precision_at_k": 0.75, "k": 4, "contexts": [sample_context(0, 2), sample_context(1, 4, -3.0)]},
                {"rank": 2, "column": "ffn.decoder.0", "stack": "decoder", "layer": 0, "neuron": 9, "auroc": 0.81,
                 "precision_at_k": 1.0, "k": 4, "contexts": []}]}


@pytest.mark.parametrize("data", [dashboard_sample(), dashboard_sample("factor"), search_sample(), {}, {"kind": "search"}],
                         ids=["neuron", "factor", "search", "empty", "empty-search"])
def test_plain_samples_render(open_html, data):
    from ecco.render import View, standalone_page

    page = open_html(standalone_page([View("neuron_dashboard", data).html]))
    root = page.locator(".ecco-view-neuron_dashboard")
    assert root.locator(".ecco-static").count() == 0 and page.locator(".ecco-view b, .ecco-view img").count() == 0
    assert page.evaluate("window.__pwned") is None
    if data.get("contexts") or data.get("neurons"):
        tokens = root.locator(".ecco-nd-context").first.locator(".ecco-nd-token")
        assert tokens.nth(2).text_content() == EVIL_TEXT
