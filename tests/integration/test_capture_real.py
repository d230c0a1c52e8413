"""Capture on the real bundled models: SmolLM2 (Llama, causal) and MiniLM (BERT encoder)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration

PROMPT = "Heathrow airport is located in the city of"


@pytest.fixture(scope="module")
def smol_output(smollm2):
    return smollm2.generate(PROMPT, generate=6)


def test_smollm2_greedy_generation_and_lens_of_last_layer(smollm2, smol_output):
    model = smollm2.model
    seq = smol_output.sequences[0]
    assert smol_output.output_text[0].strip().startswith("London")
    ids = torch.tensor([seq.token_ids])
    with torch.no_grad():
        reference = model(ids).logits[0]
    last_hidden = smol_output.hidden_states["decoder"][0, -1]
    with torch.no_grad():
        through_head = model.get_output_embeddings()(last_hidden)
    torch.testing.assert_close(through_head, reference, atol=1e-4, rtol=1e-4)
    # Greedy: each generated token is the argmax of the logits at the position before it.
    generated = seq.token_ids[seq.n_input_tokens :]
    assert reference[seq.n_input_tokens - 1 : -1].argmax(-1).tolist() == generated


def test_smollm2_activations_shape_and_values(smollm2, smol_output):
    seq = smol_output.sequences[0]
    acts = smol_output.activations["decoder"]
    assert acts.shape == (1, 30, 1536, len(seq))
    layer = smollm2.model.model.layers[7].mlp
    seen = []
    handle = layer.down_proj.register_forward_pre_hook(lambda m, a: seen.append(a[0][0].clone()))
    try:
        with torch.no_grad():
            smollm2.model(torch.tensor([seq.token_ids]))
    finally:
        handle.remove()
    np.testing.assert_allclose(acts[0, 7], seen[0].T.numpy(), atol=2e-4, rtol=1e-3)


def test_smollm2_token_probs_and_entropy_are_the_models(smollm2, smol_output):
    seq = smol_output.sequences[0]
    with torch.no_grad():
        logits = smollm2.model(torch.tensor([seq.token_ids])).logits[0, seq.n_input_tokens - 1 : -1].double()
    log_probs = torch.log_softmax(logits, -1)
    chosen = torch.tensor(seq.token_ids[seq.n_input_tokens :])
    torch.testing.assert_close(smol_output.token_probs[0].double(), log_probs.gather(-1, chosen[:, None])[:, 0].exp(),
                               atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(smol_output.token_entropy[0].double(), -(log_probs.exp() * log_probs).sum(-1),
                               atol=1e-3, rtol=1e-3)


def test_minilm_forward_captures_six_layers(minilm):
    text = "Now I ask you: what can be expected of man since he is a being endowed with strange qualities?"
    output = minilm(minilm.tokenizer([text], return_tensors="pt"))
    n = len(minilm.tokenizer(text)["input_ids"])
    assert output.kind == "masked"
    assert output.activations["encoder"].shape == (1, 6, 1536, n)
    assert output.hidden_states["encoder"].shape == (1, 7, n, 384)
    assert output.tokens[0][0] == "[CLS]" and output.sequences[0].special[0]
    pieces = output.sequences[0]
    assert "".join(t for t, s in zip(pieces.tokens, pieces.special) if not s).replace(" ", "") == text.lower().replace(" ", "")


def test_minilm_cannot_generate(minilm):
    with pytest.raises(ValueError, match="encoder"):
        minilm.generate("hello", generate=2)
