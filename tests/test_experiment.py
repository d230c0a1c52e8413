"""``lm.attribute_dataset`` on tiny models: what each stored item holds (against ecco's per-prompt
paths and the faithfulness core called by hand), resuming after an interruption, the
comparison's statistics (against numpy written out here), items back in the attribution views,
and bad input."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import build_problem, generated_targets
from ecco.attribution.faithfulness import faithfulness
from ecco.attribution.registry import METHODS, MethodOutput, UnsupportedMethodError, register
from ecco.experiment import job as job_module
from ecco.layout import Layout
from tests import tiny

ITEMS = ["the cat sat on", ("a dog", " ran far away"), "one two three", ("it is", " a test")]
FAST = {"steps": 4, "seeds": 2, "progress": False}


@pytest.fixture(scope="module")
def lm():
    return ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    return lm.attribute_dataset(ITEMS, ["grad_x_input", "occlusion"], tmp_path_factory.mktemp("exp"), generate=3,
                                shard_items=3, attribution_options={"internal_batch_size": 4}, **FAST)


def test_items_hold_the_per_prompt_attributions(lm, run):
    assert run.complete and len(run) == 4 and [s.n_items for s in run.shards] == [3, 1]
    rows = list(run.rows())
    assert [r["item_id"] for r in rows] == [0, 1, 2, 3]
    generated = lm.generate("the cat sat on", generate=3, attribution=["grad_x_input", "occlusion"])
    assert rows[0]["token_ids"] == generated.sequences[0].token_ids and rows[0]["generated"]
    forced = lm.attribute("a dog", target=" ran far away", attribution=["grad_x_input", "occlusion"])
    assert rows[1]["token_ids"] == forced.sequences[0].token_ids and not rows[1]["generated"]
    for row, output in ((rows[0], generated), (rows[1], forced)):
        for name in ("grad_x_input", "occlusion"):
            expected = output.attributions[name]
            assert row["targets"] == expected.targets[0]
            for stored, values in zip(row[f"{name}.values"], expected.values[0]):
                np.testing.assert_allclose(stored, values, rtol=1e-4, atol=1e-6)
        probs = output.token_probs[0, : len(row["targets"])].numpy()
        np.testing.assert_allclose(row["target_probs"], probs, rtol=1e-4)


def test_faithfulness_equals_the_core_called_by_hand(lm, run):
    row = run.row(1)
    report = json.loads(row["faithfulness"])
    layout = Layout(lm.spec.kind, len(row["token_ids"]), row["n_input"])
    target = generated_targets(lm.spec.kind, row["token_ids"], row["n_input"])
    problem = build_problem(lm.runner, layout, row["token_ids"], target, "prob")
    special = [np.array(row["special"][: int(problem.embeds[0].shape[1])])]
    for name in ("grad_x_input", "occlusion"):
        values = [np.asarray(v) for v in row[f"{name}.values"]]
        by_hand = faithfulness(problem, values, special=special, steps=4, seeds=2, seed=0)
        for stored, expected in zip(report["methods"][name], by_hand.targets):
            for key, value in expected.method.to_dict().items():
                np.testing.assert_allclose(stored[key], value, rtol=1e-9, atol=1e-12)
            if name == "grad_x_input":  # the random baseline, computed once with the first method
                random = report["random"]["targets"][expected.target]
                np.testing.assert_allclose(random["mean"]["soft_nc"], expected.random_mean.soft_nc)
                np.testing.assert_allclose(random["mean"]["deletion"], expected.random_mean.deletion)


def test_comparison_statistics(run):
    data = run.comparison()
    assert data["n_items"] == 4 and data["random_seeds"] == 2 and data["removal"] == "zero"
    reports = [json.loads(r["faithfulness"]) for r in run.rows()]
    for entry in data["methods"]:
        per_item = [np.mean([t["aopc_comprehensiveness"] for t in r["methods"][entry["name"]]]) for r in reports]
        randoms = [np.mean([t["mean"]["aopc_comprehensiveness"] for t in r["random"]["targets"]]) for r in reports]
        stat = entry["metrics"]["aopc_comprehensiveness"]
        assert stat["mean"] == pytest.approx(np.mean(per_item))
        assert min(per_item) <= stat["low"] <= stat["mean"] <= stat["high"] <= max(per_item)
        assert entry["random"]["aopc_comprehensiveness"]["mean"] == pytest.approx(np.mean(randoms))
        delta = entry["delta"]["aopc_comprehensiveness"]["mean"]
        assert delta == pytest.approx(np.mean(per_item) - np.mean(randoms))
        # the deletion curve on the common grid: each token's curve interpolated, then averaged
        curves = [np.mean([np.interp(data["fractions"], f["fractions"], t["deletion"])
                           for t, f in zip(r["methods"][entry["name"]], r["random"]["targets"])], axis=0)
                  for r in reports]
        np.testing.assert_allclose(entry["curves"]["deletion"]["mean"], np.mean(curves, axis=0))
    rows = run.table()
    assert [r["method"] for r in rows] == ["grad_x_input", "occlusion"]


def test_item_in_the_attribution_view(run):
    output = run.item(1)
    assert "".join(output.sequences[0].tokens).startswith("a dog")
    view = output.primary_attributions(attr_method="occlusion", printJson=True)
    stored = run.row(1)["occlusion.values"]
    np.testing.assert_allclose(view["attributions"][0], stored[0], rtol=1e-6)
    assert "<" in output.primary_attributions(attr_method="grad_x_input", style="detailed").html
    with pytest.raises(IndexError, match="holds items 0..3"):
        run.item(4)


def test_a_stopped_run_continues_and_keeps_what_it_wrote(lm, tmp_path, monkeypatch):
    out = tmp_path / "exp"
    calls = []
    original = job_module.ItemJob.run

    def stop_at_fourth(self, item):
        calls.append(item.item.item_id)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, item)

    monkeypatch.setattr(job_module.ItemJob, "run", stop_at_fourth)
    items = ITEMS + ["five six", "seven"]
    with pytest.raises(KeyboardInterrupt):
        lm.attribute_dataset(items, ["grad_x_input"], out, generate=2, shard_items=2, **FAST)
    partial = ecco.load_experiment(out)
    assert not partial.complete and len(partial) == 2  # the first shard; the half-written second is gone
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.arrow"]
    first = list(partial.rows())
    monkeypatch.setattr(job_module.ItemJob, "run", original)
    calls.clear()
    again = lm.attribute_dataset(items, ["grad_x_input"], out, generate=2, shard_items=2, **FAST)
    assert again.complete and len(again) == 6
    assert list(again.rows())[:2] == first
    whole = lm.attribute_dataset(items, ["grad_x_input"], tmp_path / "whole", generate=2, shard_items=2, **FAST)
    for a, b in zip(again.rows(), whole.rows()):
        assert a["token_ids"] == b["token_ids"]
        np.testing.assert_allclose(np.concatenate(a["grad_x_input.values"]), np.concatenate(b["grad_x_input.values"]))
    with pytest.raises(ValueError, match="different attribution experiment"):
        lm.attribute_dataset(items, ["grad_x_input"], out, generate=3, shard_items=2, **FAST)


def test_a_method_that_cannot_run_is_recorded_and_the_others_go_on(lm, tmp_path):
    @register("_never", "Never runs")
    def never(problem, options) -> MethodOutput:
        raise UnsupportedMethodError("this method needs something the tiny model lacks")

    try:
        run = lm.attribute_dataset(ITEMS[:2], ["_never", "grad_x_input"], tmp_path / "exp", generate=2, **FAST)
    finally:
        del METHODS["_never"]
    assert run.failures() == {"_never": "this method needs something the tiny model lacks"}
    row = run.row(0)
    assert row["_never.values"] is None and row["grad_x_input.values"]
    entries = {e["name"]: e for e in run.comparison()["methods"]}
    assert entries["_never"]["error"].startswith("this method") and entries["_never"]["n_items"] == 0
    assert entries["grad_x_input"]["n_items"] == 2 and entries["grad_x_input"]["random"]
    assert "_never" not in run.item(0).attributions


def test_a_dataset_source(lm, tmp_path):
    table = datasets.Dataset.from_dict({"question": ["a dog", "it is"], "answer": [" ran", " a test"]})
    run = lm.attribute_dataset(table, ["grad_x_input"], tmp_path / "exp", prompt_column="question",
                               target_column="answer", **FAST)
    assert [r["target"] for r in run.rows()] == [" ran", " a test"]
    with pytest.raises(ValueError, match=r"no 'prompt' column \(it has \['answer', 'question'\]\).*prompt_column"):
        lm.attribute_dataset(table, ["grad_x_input"], tmp_path / "bad", **FAST)
    with pytest.raises(ValueError, match="no 'target' column.*target_column=None"):
        lm.attribute_dataset(table, ["grad_x_input"], tmp_path / "bad", prompt_column="question", target_column="target",
                             **FAST)


@pytest.mark.parametrize("kwargs, message", [
    ({"source": [("a dog", "")]}, "Item 0: the target '' tokenizes to nothing"),
    ({"levels": (0.1, 1.0)}, "strictly between 0 and 1"),
    ({"levels": (0.0,)}, "strictly between 0 and 1"),
    ({"methods": ["nope"]}, "Unknown attribution method 'nope'"),
    ({"methods": []}, "methods is empty"),
    ({"removal": "mask"}, "removal must be one of"),
    ({"attribution_options": {"layer": 9}}, "layer=9 is out of range"),
    ({"attribution_options": {"n_stepz": 3}}, "Unknown attribution option"),
    ({"source": ["ok", 5]}, "Item 1 is a int"),
    ({"source": []}, "holds no items"),
    ({"backend": "spark"}, "backend must be one of"),
    ({"seeds": 0}, "at least 1 random order"),
])
def test_bad_input(lm, tmp_path, kwargs, message):
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())
    training = lm.model.training
    settings = {"source": ITEMS[:1], "methods": ["grad_x_input"], **FAST, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        lm.attribute_dataset(settings.pop("source"), settings.pop("methods"), tmp_path / "exp", **settings)
    assert not (tmp_path / "exp").exists()  # checked before the folder is made
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules()) == hooks
    assert lm.model.training == training and all(p.grad is None for p in lm.model.parameters())


def test_encoder_decoder(tmp_path):
    lm = ecco.from_model(tiny.model("t5"), tiny.tokenizer(), verbose=False)
    run = lm.attribute_dataset([("a dog", " ran"), "the cat"], ["grad_x_input"], tmp_path / "exp", generate=2, **FAST)
    forced = lm.attribute("a dog", target=" ran", attribution=["grad_x_input"])
    row = run.row(0)
    assert row["token_ids"] == forced.sequences[0].token_ids
    for stored, values in zip(row["grad_x_input.values"], forced.attributions["grad_x_input"].values[0]):
        np.testing.assert_allclose(stored, values, rtol=1e-4, atol=1e-6)
    assert run.row(1)["generated"] and run.comparison()["methods"][0]["n_items"] == 2
    assert torch.isfinite(torch.tensor(run.row(1)["target_scores"])).all()
