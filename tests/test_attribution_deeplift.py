"""DeepLift / DeepLiftShap: ecco's batched rescale rule against captum's, which gets the
rescale rule for the transformers activation classes in a fixture (ecco leaves captum alone)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr._core import deep_lift

import ecco
from ecco.attribution.deeplift import rescale_rule, shap_baselines
from ecco.attribution.rules import activation_modules
from tests import tiny
from tests.attribution_reference import per_token_reference


@pytest.fixture
def captum_rescale():
    """A function adding captum's rescale rule for a model's activation classes; the table
    comes back as it was after the test."""
    before = dict(deep_lift.SUPPORTED_NON_LINEAR)

    def extend(model: torch.nn.Module) -> None:
        for module in activation_modules(model):
            deep_lift.SUPPORTED_NON_LINEAR.setdefault(type(module), deep_lift.nonlinear)

    yield extend
    deep_lift.SUPPORTED_NON_LINEAR.clear()
    deep_lift.SUPPORTED_NON_LINEAR.update(before)


def _close(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    """Equal up to float rounding (without the rescale rule in captum they differ by 5e-4 to 2e-2 of the scale)."""
    assert [len(a) for a in actual] == [len(e) for e in expected]
    scale = max(np.abs(e).max() for e in expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=1e-5 * scale, rtol=0)


def _explained(arch: str, tokenizer, method: str, **options):
    lm = ecco.from_model(tiny.model(arch), tokenizer, verbose=False)
    table = dict(deep_lift.SUPPORTED_NON_LINEAR)
    output = lm.generate("the quick brown fox", generate=3, attribution=[method], min_new_tokens=3,
                         attribution_options=options)
    assert deep_lift.SUPPORTED_NON_LINEAR == table  # the library does not touch captum's tables
    return lm, output


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
@pytest.mark.parametrize("method", ["dl", "dls"])
def test_batched_deeplift_equals_captum_with_rescale_rule(arch, method, tokenizer, captum_rescale):
    lm, output = _explained(arch, tokenizer, method)
    seq = output.sequences[0]
    baselines = None
    if method == "dls":  # the same baseline distribution: zero + 3 random sequences over the problem's inputs
        decoder = len(seq.token_ids) - 1 - (seq.n_input_tokens if output.kind == "enc-dec" else 0)
        lengths = [seq.n_input_tokens, decoder] if output.kind == "enc-dec" else [decoder]
        baselines = shap_baselines(lm.spec.embeddings, lengths, 4, 0)
    captum_rescale(lm.model)
    assert activation_modules(lm.model)
    reference = per_token_reference(lm.model, lm.spec.embeddings, output.kind, seq.token_ids, seq.n_input_tokens,
                                    method, baselines=baselines)
    _close(output.attributions[method].raw[0], reference)


def test_deeplift_completeness_error_is_reported(tokenizer):
    lm, output = _explained("llama", tokenizer, "dl")
    seq = output.sequences[0]
    errors = output.attributions["dl"].completeness_error[0]
    assert errors.shape == (3,)
    ids = torch.tensor([seq.token_ids])
    emb = lm.model.get_input_embeddings()(ids).detach()
    for k, position in enumerate(range(seq.n_input_tokens, len(seq))):
        with torch.no_grad():
            probs = [torch.softmax(lm.model(inputs_embeds=e).logits[0, -1], -1)[ids[0, position]]
                     for e in (emb[:, :position], torch.zeros_like(emb[:, :position]))]
        delta = float(probs[0] - probs[1])
        total = output.attributions["dl"].raw[0][k].sum()
        assert errors[k] == pytest.approx(abs(total - delta) / abs(delta), rel=1e-3, abs=1e-6)
    _, shap = _explained("llama", tokenizer, "dls")
    assert shap.attributions["dls"].completeness_error is None


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_rescale_rule_keeps_the_values_and_changes_the_gradient(arch, tokenizer):
    model = tiny.model(arch)
    emb = model.get_input_embeddings()(torch.tensor([[7, 8, 9, 10]])).detach()
    batch = torch.cat([emb, torch.zeros_like(emb)]).requires_grad_(True)
    plain = model(inputs_embeds=batch).logits
    with rescale_rule(model):
        ruled = model(inputs_embeds=batch).logits
    assert torch.equal(plain, ruled)
    grads = [torch.autograd.grad(out[0, -1, 5], batch)[0] for out in (plain, ruled)]
    assert not torch.allclose(grads[0], grads[1])


def test_deeplift_internal_batch_size_gives_the_same_numbers(tokenizer):
    _, whole = _explained("gpt2", tokenizer, "dls")
    _, chunked = _explained("gpt2", tokenizer, "dls", internal_batch_size=1)
    for a, b in zip(whole.attributions["dls"].raw[0], chunked.attributions["dls"].raw[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
