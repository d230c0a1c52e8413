"""``run.search``: AUROC against sklearn's roc_auc_score on the stored arrays, top-k precision
against a brute-force scan, the three kinds of predicate, and predicates that match nothing."""
from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import ecco
from ecco.corpus import search as search_module
from tests import tiny
from tests.test_corpus_run import TEXTS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.run_corpus(TEXTS, tmp_path_factory.mktemp("search"), max_tokens=48, overlap=8, batch_tokens=160,
                         shard_tokens=60, top_k=8, progress=False)


def test_auroc_and_precision_equal_independent_computations(run, monkeypatch):
    monkeypatch.setattr(search_module, "_BLOCK_BYTES", 40_000)  # several neuron blocks per layer
    tokens = run.table.column("token").to_pylist()
    labels = np.array([t in {"(", ")"} for t in tokens])
    found = run.search({"(", ")"}, top=10_000)
    assert len(found) == 3 * 128 and found[0].auroc == max(s.auroc for s in found)
    docs = run.table.column("doc_id").to_numpy()
    positions = run.table.column("position").to_numpy()
    for score in found[:3] + found[-2:] + [s for s in found if (s.layer, s.neuron) == (1, 77)]:
        values = run.activations(score.layer)[:, score.neuron].astype(np.float32)
        assert score.auroc == pytest.approx(roc_auc_score(labels, values), abs=1e-12)
        order = np.lexsort((positions, docs, -values))[:8]  # the summary's top-k rule, by brute force
        assert score.precision_at_k == pytest.approx(labels[order].mean())


def test_predicate_kinds(run):
    tokens = run.table.column("token").to_pylist()
    by_regex = run.search(r"^\s+$", top=1)[0]
    by_pattern = run.search(re.compile(r"^\s+$"), top=1)[0]
    assert (by_regex.layer, by_regex.neuron, by_regex.auroc) == (by_pattern.layer, by_pattern.neuron, by_pattern.auroc)
    labels = np.array([t.strip() == "" for t in tokens])
    values = run.activations(by_regex.layer)[:, by_regex.neuron].astype(np.float32)
    assert by_regex.auroc == pytest.approx(roc_auc_score(labels, values), abs=1e-12)

    def after_def(token: str, before: str) -> bool:  # the token right after "def "
        return before.endswith("def ")

    best = run.search(after_def, top=1)[0]
    docs = run.table.column("doc_id").to_numpy()
    expected = np.zeros(len(tokens), bool)
    for doc in set(docs.tolist()):
        rows = run.rows(doc)
        text = ""
        for row in rows:
            expected[row] = text.endswith("def ")
            text += tokens[row]
    assert expected.sum() >= 2
    values = run.activations(best.layer)[:, best.neuron].astype(np.float32)
    assert best.auroc == pytest.approx(roc_auc_score(expected, values), abs=1e-12)


def test_search_bad_input(run):
    with pytest.raises(ValueError, match="matches no token"):
        run.search({"no such token"})
    with pytest.raises(ValueError, match="every token"):
        run.search(r"")
    with pytest.raises(KeyError, match="not captured"):
        run.search("a", layers=[7])
    with pytest.raises(TypeError, match="token strings"):
        run.search({1, 2})


def test_counted_auroc_of_float16_equals_sklearn_with_ties_and_signed_zeros():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal((3000, 5)) * np.array([1e-3, 1, 30, 1, 1])).astype(np.float16)
    values[:200, 0], values[200:400, 0] = 0.0, -0.0  # equal values, both zeros
    values[:, 3] = np.round(values[:, 3])  # few distinct values: many ties
    values[:, 4] = 1.5  # constant: 0.5
    labels = rng.random(3000) < 0.15
    counted = search_module.half_auroc(values, labels)
    expected = [roc_auc_score(labels, values[:, j].astype(np.float32)) for j in range(5)]
    np.testing.assert_allclose(counted, expected, rtol=0, atol=1e-12)


def test_float32_runs_are_ranked(tmp_path):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    run = lm.run_corpus(TEXTS, tmp_path, layers=[1], dtype="float32", max_tokens=48, overlap=8, top_k=4, progress=False)
    tokens = run.table.column("token").to_pylist()
    labels = np.array([t.strip() == "" for t in tokens])
    best = run.search(r"^\s+$", top=1)[0]
    values = run.activations(1)[:, best.neuron]
    assert values.dtype == np.float32 and best.auroc == pytest.approx(roc_auc_score(labels, values), abs=1e-12)
