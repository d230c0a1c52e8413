"""Neuron dashboards, factor dashboards and the search view of a corpus run: the contexts and their
per-token values against a brute-force scan of the stored activations, the histogram and moments
against numpy, the direct effect against the model's own modules, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.corpus.summaries import NeuronSummary
from ecco.render import View
from ecco.render.static import render_body
from ecco.views.corpus import NeuronSearch
from tests import tiny
from tests.test_corpus_run import TEXTS

EVIL_TEXT = 'a <b>bold</b> say "hi" & <b> again </script> "end"'
OPTIONS = {"max_tokens": 48, "overlap": 8, "batch_tokens": 160, "shard_tokens": 60, "progress": False}


@pytest.fixture(scope="module")
def lm():
    return ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    return lm.run_corpus(TEXTS + [EVIL_TEXT], tmp_path_factory.mktemp("dashboard"), top_k=8, **OPTIONS)


def rows_in_order(run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row's doc id and position, and the rows sorted by (doc, position)."""
    docs = run.table.column("doc_id").to_numpy()
    positions = run.table.column("position").to_numpy().astype(np.int64)
    return docs, positions, np.lexsort((positions, docs))


def brute_contexts(run, values: np.ndarray, k: int, width: int) -> list[dict]:
    """The top ``k`` rows of ``values`` (one per row; value desc, then doc, then position) with the
    tokens and values of the ``width`` tokens each side in their document, by a scan of every row."""
    docs, positions, _ = rows_in_order(run)
    tokens = run.table.column("token").to_pylist()
    found = []
    for row in np.lexsort((positions, docs, -values))[:k]:
        doc, pos = docs[row], positions[row]
        same = np.flatnonzero((docs == doc) & (np.abs(positions - pos) <= width))
        same = same[np.argsort(positions[same])]
        found.append({"doc": int(doc), "position": int(pos), "value": float(values[row]), "first": int(positions[same[0]]),
                      "tokens": [tokens[r] for r in same], "values": [float(values[r]) for r in same]})
    return found


def check_contexts(contexts: list[dict], expected: list[dict], run) -> None:
    assert len(contexts) == len(expected)
    for got, want in zip(contexts, expected):
        for key in ("doc", "position", "value", "first", "tokens", "values"):
            assert got[key] == want[key], key
        assert got["peak"] == want["position"] - want["first"]
        assert got["tokens"][got["peak"]] == run.context(want["doc"], want["position"], 0).token
        assert got["document"] == run.document_name(want["doc"])


@pytest.mark.parametrize("layer, neuron", [(0, 3), (1, 77), (2, 127)])
def test_contexts_equal_a_brute_force_scan(run, layer, neuron):
    values = run.activations(layer)[:, neuron].astype(np.float64)
    data = run.neuron(layer, neuron, width=3, effects=0, printJson=True)
    check_contexts(data["contexts"], brute_contexts(run, values, 8, 3), run)
    assert data["k"] == 8 and data["width"] == 3 and data["column"] == f"ffn.decoder.{layer}"
    short = run.neuron(layer, neuron, k=2, width=0, effects=0, printJson=True)["contexts"]
    check_contexts(short, brute_contexts(run, values, 2, 0), run)


def test_contexts_are_read_in_one_batch(run, monkeypatch):
    reads = []
    original = type(run).array

    def counting(self, column, rows=None):
        reads.append(None if rows is None else len(rows))
        return original(self, column, rows)

    monkeypatch.setattr(type(run), "array", counting)
    run.neuron(1, 5, width=4, effects=0, printJson=True)
    assert len(reads) == 1 and reads[0] is not None and reads[0] <= 8 * 9  # the windows' rows, not the layer
    reads.clear()
    found = run.search({"(", ")"}, top=6, layers=[0, 2])
    found.view(contexts=2, width=2, printJson=True)
    assert len(reads) == len({s.column for s in found}) and all(n is not None and n <= 6 * 2 * 5 for n in reads)


def test_histogram_and_moments_equal_numpy(run):
    summary = run.summary.neurons["ffn.decoder.1"]
    for neuron in (0, 77):
        x = run.activations(1)[:, neuron].astype(np.float64)
        data = run.neuron(1, neuron, effects=0, printJson=True)
        edges = np.asarray(data["histogram"]["edges"])
        np.testing.assert_array_equal(edges, summary.edges.astype(np.float64))
        expected = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        assert data["histogram"]["counts"] == expected.tolist()
        assert data["count"] == len(x)
        assert data["mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-12)
        assert data["std"] == pytest.approx(x.std(), rel=1e-9)
        assert data["fraction_positive"] == pytest.approx((x > 0).mean())


def test_direct_effect_equals_the_models_own_modules(run, lm):
    model, layer, neuron = lm.model, 2, 40
    w = model.transformer.h[layer].mlp.c_proj.weight[neuron]  # GPT-2's Conv1D: (neurons, hidden)
    with torch.no_grad():
        norm = model.transformer.ln_f
        expected = model.lm_head(norm(w[None]))[0] - model.lm_head(norm(torch.zeros_like(w)[None]))[0]
    effects = run.neuron(layer, neuron, effects=5, printJson=True)["effects"]
    up, down = effects["up"], effects["down"]
    assert [e["id"] for e in up] == torch.argsort(expected, descending=True)[:5].tolist()
    assert [e["id"] for e in down] == torch.argsort(expected)[:5].tolist()
    for e in up + down:
        assert e["value"] == pytest.approx(float(expected[e["id"]]), rel=1e-5, abs=1e-6)
        assert e["text"] == lm.tokenizer.decode([e["id"]])
    assert run.neuron(layer, neuron, effects=0, printJson=True)["effects"] is None


def test_effects_need_the_runs_model(run, lm):
    alone = ecco.load_corpus(run.path)
    data = alone.neuron(1, 3, printJson=True)
    assert data["effects"] is None and "ecco.load_corpus(dir, lm=lm)" in data["effects_note"]
    assert data["contexts"] == run.neuron(1, 3, printJson=True)["contexts"]
    other = ecco.from_model(tiny.model("gpt2", seed=1), tiny.tokenizer(), model_name="some-other-model", verbose=False)
    with pytest.raises(ValueError, match="'some-other-model' but this run was made with 'GPT2LMHeadModel'"):
        ecco.load_corpus(run.path, lm=other).neuron(1, 3)
    assert ecco.load_corpus(run.path, lm=lm).neuron(1, 3, printJson=True)["effects"] is not None


def test_view_and_static_rendering(run):
    view = run.neuron(0, 3, width=2)
    assert isinstance(view, View) and view.view == "neuron_dashboard"
    evil = len(TEXTS)  # the evil document
    doc_tokens = run.tokens(evil)
    assert "".join(doc_tokens) == EVIL_TEXT
    html = str(render_body("neuron_dashboard", view.data))
    assert "<b>" not in html and "</script" not in html
    assert html.count('class="ecco-s-context"') == len(view.data["contexts"])
    assert "ecco-s-histogram" in html and "ecco-s-effects" in html


def test_bad_input(run, lm, tmp_path):
    with pytest.raises(ValueError, match="layer=7 .*was not captured"):
        run.neuron(7, 0)
    with pytest.raises(ValueError, match="neuron=128 is out of range: layer 1 has 128 neurons"):
        run.neuron(1, 128)
    with pytest.raises(ValueError, match="kept the top 8 tokens"):
        run.neuron(1, 0, k=9)
    with pytest.raises(ValueError, match="width"):
        run.neuron(1, 0, width=-1)
    with pytest.raises(ValueError, match="neuron must be an integer"):
        run.neuron(1, "3")
    with pytest.raises(ValueError, match="stack 'encoder'"):
        run.neuron(1, 0, stack="encoder")
    hidden_only = lm.run_corpus(TEXTS[:2], tmp_path / "hidden", activations=False, hidden_states=True, **OPTIONS)
    with pytest.raises(ValueError, match="no FFN activations"):
        hidden_only.neuron(0, 0)
    bare = lm.run_corpus(TEXTS[:2], tmp_path / "bare", summaries=False, **OPTIONS)
    with pytest.raises(ValueError, match="no neuron summaries"):
        bare.neuron(0, 0)


# ------------------------------------------------------------------ factors
class StandInFactors:
    """The interface of ``ecco.corpus.factors.CorpusFactors`` the factor dashboard reads: three
    'factors' that are fixed mixes of layer-1 neurons (signed, so the histogram has both sides)."""

    method, layers, stack, n_components = "nmf", [1], "decoder", 3
    MIX = np.array([[1.0, 0.0, 0.5], [0.0, -2.0, 1.0], [0.25, 0.5, 0.0]])  # neurons (3, 10, 20) x factors

    def __init__(self, run) -> None:
        self.summary = NeuronSummary.empty(3, k=5)
        docs, positions, _ = rows_in_order(run)
        all_rows = np.arange(len(docs))
        self.summary.update(torch.from_numpy(self.values(run, all_rows)), torch.from_numpy(docs),
                            torch.from_numpy(positions))

    def values(self, corpus, rows) -> np.ndarray:
        return corpus.array("ffn.decoder.1", rows)[:, [3, 10, 20]].astype(np.float32) @ self.MIX.astype(np.float32)


def test_factor_dashboard(run):
    factors = StandInFactors(run)
    everything = factors.values(run, np.arange(run.table.num_rows)).astype(np.float64)
    for index in range(3):
        data = run.factor(factors, index, width=2, printJson=True)
        assert data["kind"] == "factor" and data["effects"] is None and data["name"].startswith(f"NMF factor {index}")
        check_contexts(data["contexts"], brute_contexts(run, everything[:, index], 5, 2), run)
        assert data["mean"] == pytest.approx(everything[:, index].mean(), rel=1e-6, abs=1e-9)
        assert data["fraction_positive"] == pytest.approx((everything[:, index] > 0).mean())
    assert isinstance(run.factor(factors, 1), View)
    with pytest.raises(ValueError, match="index=3 is out of range: there are 3 factors"):
        run.factor(factors, 3)
    with pytest.raises(ValueError, match="index=-1 is out of range"):
        run.factor(factors, -1)


# ------------------------------------------------------------------ search
def test_search_result_and_view(run):
    found = run.search({"(", ")"}, top=5)
    assert isinstance(found, NeuronSearch) and len(found) == 5
    core = ecco.corpus.Corpus.search(run, {"(", ")"}, top=5)
    assert [(s.layer, s.neuron, s.auroc) for s in found] == [(s.layer, s.neuron, s.auroc) for s in core]
    assert found[0].auroc == max(s.auroc for s in found) and found[1:3] == core[1:3]
    assert found.to_json()[0] == {"column": core[0].column, "layer": core[0].layer, "neuron": core[0].neuron,
                                  "auroc": core[0].auroc, "precision_at_k": core[0].precision_at_k}
    assert found.printJson == found.to_json()
    data = found.view(contexts=2, width=3, printJson=True)
    assert data["kind"] == "search" and data["predicate"] == "tokens '(', ')'"
    for rank, (row, score) in enumerate(zip(data["neurons"], found), 1):
        assert (row["rank"], row["layer"], row["neuron"], row["auroc"]) == (rank, score.layer, score.neuron, score.auroc)
        dashboard = run.neuron(score.layer, score.neuron, k=2, width=3, effects=0, printJson=True)
        assert row["contexts"] == dashboard["contexts"] and row["k"] == 8
    assert "ecco-view-neuron_dashboard" in found._repr_html_()
    assert "tokens matching /^\\s+$/" in repr(run.search(r"^\s+$", top=2))
    with pytest.raises(ValueError, match="contexts"):
        found.view(contexts=-1)


def test_factor_dashboard_of_real_corpus_factors(run):
    factors_module = pytest.importorskip("ecco.corpus.factors")
    factors = factors_module.fit_factors(run, "nmf", 3)
    everything = factors.values(run, np.arange(run.table.num_rows)).astype(np.float64)
    k = min(4, factors.summary.k)
    for index in range(3):
        data = run.factor(factors, index, k=k, width=2, printJson=True)
        check_contexts(data["contexts"], brute_contexts(run, everything[:, index], k, 2), run)
        assert data["fraction_positive"] == pytest.approx((everything[:, index] > 0).mean())
    with pytest.raises(ValueError, match="index=3 is out of range"):
        run.factor(factors, 3)
