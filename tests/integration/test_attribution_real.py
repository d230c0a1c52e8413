"""Attribution on the real SmolLM2."""
from __future__ import annotations

import numpy as np
import pytest

from tests.attribution_reference import normalised, per_token_attributions

pytestmark = pytest.mark.integration

PROMPT = "Heathrow airport is located in the city of"
METHODS = ["grad_x_input", "saliency", "ig", "dl", "dls", "gb", "gg", "deconv", "lrp"]


@pytest.fixture(scope="module")
def explained(smollm2):
    return smollm2.generate(PROMPT, generate=3, attribution=METHODS)


def test_all_nine_methods_run(explained):
    seq = explained.sequences[0]
    for method in METHODS:
        result = explained.attributions[method]
        assert result.targets[0] == list(range(seq.n_input_tokens, len(seq)))
        for target, values, raw in zip(result.targets[0], result.values[0], result.raw[0]):
            assert values.shape == raw.shape == (target,) and np.isfinite(raw).all()


def test_batched_equals_per_token_on_smollm2(smollm2, explained):
    seq = explained.sequences[0]
    reference = per_token_attributions(smollm2.model, smollm2.spec.embeddings, "causal", seq.token_ids,
                                       seq.n_input_tokens, "grad_x_input")
    raw = [r.sum(-1).numpy() for r in reference]
    scale = max(np.abs(r).max() for r in raw)
    for ours, ref in zip(explained.attributions["grad_x_input"].raw[0], raw):
        np.testing.assert_allclose(ours, ref, atol=1e-3 * scale, rtol=0)
    for ours, ref in zip(explained.attributions["grad_x_input"].values[0], normalised(reference)):
        np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_ig_completeness_on_smollm2(smollm2, explained):
    fixed = explained.attributions["ig"]
    assert fixed.n_steps == [50]
    assert fixed.completeness_error[0][0] < 0.02  # " London", probability target, 50 steps
    auto = smollm2.attribute(PROMPT, target=" London", attribution=["ig"], n_steps="auto")
    result = auto.attributions["ig"]
    assert result.completeness_error[0][0] <= 0.01
    assert result.n_steps[0] <= 512


def test_lrp_conserves_on_smollm2(explained):
    assert explained.attributions["lrp"].completeness_error[0].max() < 1e-2


def test_contrastive_london_vs_manchester(smollm2):
    output = smollm2.attribute(PROMPT, target=" London", foil=" Manchester", attribution=["grad_x_input", "ig"])
    result = output.attributions["ig"]
    assert result.score == "logprob_diff" and result.foil_text == [" Manchester"]
    words = output.word_attributions("ig")
    assert len(words["values"][0]) == len(words["words"]) - 1  # every word before the target
    top = words["words"][int(np.argmax(words["values"][0]))]
    assert "Heathrow" in top or "airport" in top
