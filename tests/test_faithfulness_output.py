"""``output.faithfulness``: comprehensiveness and sufficiency of an output's attributions against
the model run by hand on the perturbed embeddings, and its bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ecco
from tests import tiny


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    return lm.generate("the quick brown fox jumps", generate=3, min_new_tokens=3, attribution=["grad_x_input"])


def _prob(model, embeds: torch.Tensor, column: int, token: int) -> float:
    with torch.no_grad():
        logits = model(inputs_embeds=embeds[None]).logits[0, column]
    return float(torch.softmax(logits.float(), -1)[token])


@pytest.mark.parametrize("k", [0, 2])
def test_comprehensiveness_and_sufficiency_by_hand(output, k):
    found = output.faithfulness("grad_x_input", seeds=2)
    model = output.link.model
    ids = output.sequences[0].token_ids
    n_input = output.sequences[0].n_input_tokens
    position = n_input + k  # the explained token; predicted at the column before it
    values = output.attributions["grad_x_input"].values[0][k]
    special = set(output.link.tokenizer.all_special_ids)
    sources = [i for i in range(position) if ids[i] not in special]
    order = sorted(sources, key=lambda i: (-values[i], i))
    embeds = model.get_input_embeddings()(torch.tensor(ids[:position]))
    full = _prob(model, embeds, position - 1, ids[position])
    target = found.targets[k]
    assert target.full_score == pytest.approx(full, rel=1e-4)
    for j, level in enumerate(found.levels):
        top = order[: max(1, math.ceil(level * len(sources)))]
        removed, kept = embeds.clone(), embeds.clone()
        removed[top] = 0
        kept[[i for i in sources if i not in top]] = 0
        assert target.method.comprehensiveness[j] == pytest.approx(full - _prob(model, removed, position - 1, ids[position]),
                                                                   abs=1e-6)
        assert target.method.sufficiency[j] == pytest.approx(full - _prob(model, kept, position - 1, ids[position]), abs=1e-6)
    assert target.method.aopc_comprehensiveness == pytest.approx(np.mean(target.method.comprehensiveness))
    assert len(target.random) == 2


def test_json_and_bad_input(output, tmp_path):
    data = output.faithfulness("grad_x_input", seeds=1, printJson=True)
    assert len(data["targets"]) == 3 and data["removal"] == "zero" and "random_mean" in data["targets"][0]
    with pytest.raises(ValueError, match="removal must be one of"):
        output.faithfulness("grad_x_input", removal="delete")
    with pytest.raises(ValueError, match=r"level"):
        output.faithfulness("grad_x_input", levels=[0.5, 1.0])
    path = output.save(tmp_path / "out.safetensors")
    with pytest.raises(ValueError, match="reruns the model"):
        ecco.load(path).faithfulness("grad_x_input")
