"""The logit lens on SmolLM2 (rankings, exactness) and its absence on MiniLM."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.integration


def test_smollm2_last_layer_lens_is_the_model(smollm2):
    output = smollm2.generate("The keys to the cabinet", generate=4)
    seq = output.sequences[0]
    with torch.no_grad():
        logits = smollm2.model(torch.tensor([seq.token_ids])).logits[0]
    lens = smollm2.link.lens(output.hidden_states["decoder"][0, -1], final=True)
    assert (lens - logits).abs().max() <= 1e-4
    ranks = output.rankings(printJson=True)["rankings"]
    assert ranks.shape == (30, 4) and (ranks[-1] == 1).all()
    watch = output.rankings_watch(watch=[" is", " are"], position=seq.n_input_tokens, printJson=True)
    assert watch["rankings"].shape == (30, 2)
    rows = output.layer_predictions(position=seq.n_input_tokens, topk=5, printJson=True)
    assert rows[-1][0]["token_id"] == seq.token_ids[seq.n_input_tokens]


def test_minilm_has_no_lens(minilm):
    output = minilm("Heathrow airport is located in the city of London")
    with pytest.raises(ValueError, match="no language-model head"):
        output.layer_predictions(position=3)
