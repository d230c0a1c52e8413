"""Attention on SmolLM2 (causal, grouped KV heads, rotary) and MiniLM (BERT, sentence pairs)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import softmax_from_neuron_data

pytestmark = pytest.mark.integration


def test_smollm2_neuron_view_reproduces_weights(smollm2):
    output = smollm2.generate("The keys to the cabinet", generate=3)
    weights = output.attention["decoder"]
    assert weights.shape[1:3] == (30, 9)
    rows = weights[0].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-4, rtol=0)
    for layer, head in [(0, 0), (14, 4), (29, 8)]:
        data = output.attention_neuron_view(layer=layer, head=head, printJson=True)
        assert np.abs(softmax_from_neuron_data(data) - np.array(data["weights"])).max() <= 1e-4
    three = [output.attention_neuron_view(layer=3, head=h, printJson=True)["key"] for h in (0, 2, 3)]
    assert three[0] == three[1] != three[2]  # 9 query heads share 3 key/value heads


def test_minilm_sentence_pair(minilm):
    output = minilm("The cat sat on the mat.", "It was tired.")
    assert output.attention["encoder"].shape[1:3] == (6, 12)
    data = output.attention_neuron_view(layer=2, head=5, printJson=True)
    assert np.abs(softmax_from_neuron_data(data) - np.array(data["weights"])).max() <= 1e-4
    tokens = [t["text"] for t in output.attention_head_view(printJson=True)["sets"][0]["queries"]]
    assert [t.strip() for t in tokens].count("[SEP]") == 2
