"""Occlusion against captum's FeatureAblation (zero baseline, one feature per position), called
on each prefix separately, for a causal and an encoder-decoder model."""
from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch

import ecco
from tests import tiny
from tests.attribution_reference import PrefixScore


def _captum(model, embedding, enc_dec: bool, token_ids: list[int], n_input: int) -> list[np.ndarray]:
    ids = torch.tensor([token_ids])
    with torch.no_grad():
        embeds = embedding(ids)
    out = []
    for position in range(n_input + 1 if enc_dec else n_input, len(token_ids)):
        scorer = PrefixScore(model, token_ids[position], None, enc_dec)
        inputs = (embeds[:, :n_input], embeds[:, n_input:position]) if enc_dec else (embeds[:, :position],)
        masks, first = [], 0
        for x in inputs:  # one feature per position, numbered across the inputs
            masks.append((torch.arange(x.shape[1]) + first).view(1, -1, 1).expand_as(x))
            first += x.shape[1]
        result = ca.FeatureAblation(scorer).attribute(inputs, baselines=tuple(0.0 for _ in inputs), feature_mask=tuple(masks))
        result = result if isinstance(result, tuple) else (result,)
        out.append(torch.cat([r[0, :, 0] for r in result]).double().numpy())  # every element of a feature: same value
    return out


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_occlusion_equals_captum_feature_ablation(arch):
    model = tiny.model(arch)
    lm = ecco.from_model(model, tiny.tokenizer(), verbose=False)
    output = lm.generate("the quick brown fox", generate=3, min_new_tokens=3, attribution=["occlusion"])
    seq = output.sequences[0]
    expected = _captum(model, model.get_input_embeddings(), arch == "t5", seq.token_ids, seq.n_input_tokens)
    raw = output.attributions["occlusion"].raw[0]
    assert len(raw) == len(expected) == 3
    for ours, theirs in zip(raw, expected):
        np.testing.assert_allclose(ours, theirs, atol=1e-3 * np.abs(theirs).max() + 1e-9)
    for k, ours in enumerate(output.attributions["occlusion"].values[0]):
        theirs = np.abs(expected[k])
        np.testing.assert_allclose(ours, theirs / theirs.sum(), atol=1e-4)
