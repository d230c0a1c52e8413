"""Raw attention, attention rollout and value zeroing against independent computations: the
weights of a plain eager ``model(..., output_attentions=True)`` call, Abnar & Zuidema's rollout
written out with loops, and value zeroing by brute force (one forward per (layer, token) with a
hand-placed hook that zeroes the token's value vectors at the model's value projection)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import UnsupportedMethodError
from tests import tiny
from tests.conftest import hook_count

PROMPT, TARGET = "the quick brown fox", " jumps over the"
METHODS = ["attention", "rollout", "value_zeroing"]

# Written out here, independently of ecco's registry: each block, and where its value vectors
# are made (module path, and the slice of that module's output that holds the values).
BLOCKS = {
    "gpt2": "transformer.h.{}",
    "llama": "model.layers.{}",
    "gpt-neo": "transformer.h.{}",
    "mistral": "model.layers.{}",
    "opt": "model.decoder.layers.{}",
    "phi3": "model.layers.{}",
    "gpt-neox": "gpt_neox.layers.{}",
}
VALUES = {
    "gpt2": ("transformer.h.{}.attn.c_attn", slice(64, 96)),  # fused q, k, v of hidden size 32
    "llama": ("model.layers.{}.self_attn.v_proj", slice(None)),
    "gpt-neo": ("transformer.h.{}.attn.attention.v_proj", slice(None)),
    "mistral": ("model.layers.{}.self_attn.v_proj", slice(None)),
    "opt": ("model.decoder.layers.{}.self_attn.v_proj", slice(None)),
    "phi3": ("model.layers.{}.self_attn.qkv_proj", slice(48, 64)),  # 4 query heads, then 2 key, 2 value heads of 8
    # per head (4 of 8 dimensions): its query, key, value
    "gpt-neox": ("gpt_neox.layers.{}.attention.query_key_value", [h * 24 + d for h in range(4) for d in range(16, 24)]),
}


def _lm(arch: str):
    model = tiny.model(arch)
    ids = torch.tensor([[5, 6]])
    extra = {"decoder_input_ids": ids} if model.config.is_encoder_decoder else {}
    with torch.no_grad():  # transformers installs its own output-capturing hooks once; not ecco's
        model(ids, output_hidden_states=True, output_attentions=True, **extra)
    return ecco.from_model(model, tiny.tokenizer(), verbose=False)


def _explained(output, method: str) -> tuple[list[int], list[int]]:
    """The explained model input (every token but the last) and each target's predicting column."""
    return output.sequences[0].token_ids[:-1], [p - 1 for p in output.attributions[method].targets[0]]


def _eager_weights(arch: str, ids: list[int]) -> list[np.ndarray]:
    """Per layer (heads, positions, positions), from a plain eager call of the same model."""
    model = tiny.model(arch)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_attentions=True)
    return [a[0].double().numpy() for a in out.attentions]


def _rollout_loops(matrices: list[np.ndarray], residual: bool) -> np.ndarray:
    """Abnar & Zuidema's rollout, written out: (0.5 A + 0.5 I) rows renormalised, R = A_L ... A_1."""
    n = matrices[0].shape[0]
    joint = np.eye(n)
    for matrix in matrices:
        mixed = np.array(matrix, dtype=np.float64)
        for i in range(n):
            if residual:
                for j in range(n):
                    mixed[i, j] = 0.5 * mixed[i, j] + (0.5 if i == j else 0.0)
            mixed[i] /= mixed[i].sum()
        product = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                for m in range(n):
                    product[i, j] += mixed[i, m] * joint[m, j]
        joint = product
    return joint


def _block_outputs(model, arch: str, ids: list[int], layer: int, zero: int | None) -> np.ndarray:
    """Block ``layer``'s output (positions, hidden), with token ``zero``'s value vectors zeroed
    in that layer (hook on the value projection), or nothing zeroed."""
    modules = dict(model.named_modules())
    seen = []
    path, part = VALUES[arch]

    def zero_values(module, args, output):
        output = output.clone()
        output[:, zero, part] = 0
        return output

    def keep(module, args, output):
        seen.append((output[0] if isinstance(output, tuple) else output)[0].detach().double())

    handles = [modules[BLOCKS[arch].format(layer)].register_forward_hook(keep)]
    if zero is not None:
        handles.append(modules[path.format(layer)].register_forward_hook(zero_values))
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    return seen[0].numpy()


def _value_zeroing_brute_force(arch: str, ids: list[int], n_layers: int) -> np.ndarray:
    """Mohebbi et al.'s value zeroing, one forward per (layer, token), rolled out without identity."""
    model = tiny.model(arch)
    n = len(ids)
    matrices = []
    for layer in range(n_layers):
        original = _block_outputs(model, arch, ids, layer, None)
        mixing = np.zeros((n, n))
        for j in range(n):
            zeroed = _block_outputs(model, arch, ids, layer, j)
            for i in range(n):
                cos = original[i] @ zeroed[i] / (np.linalg.norm(original[i]) * np.linalg.norm(zeroed[i]))
                mixing[i, j] = max(1.0 - cos, 0.0)
        matrices.append(mixing / mixing.sum(-1, keepdims=True))
    return _rollout_loops(matrices, residual=False)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize(("layer", "heads"), [(-1, "mean"), (0, "max"), (1, 2)])
def test_raw_attention_equals_eager_weights(arch, layer, heads):
    lm = _lm(arch)
    output = lm.attribute(PROMPT, target=TARGET, attribution=["attention"], layer=layer, heads=heads)
    ids, columns = _explained(output, "attention")
    weights = _eager_weights(arch, ids)[layer]
    block = weights.mean(0) if heads == "mean" else weights.max(0) if heads == "max" else weights[heads]
    raw = output.attributions["attention"].raw[0]
    assert len(raw) == len(columns) > 1
    for ours, t in zip(raw, columns):
        np.testing.assert_allclose(ours, block[t, : t + 1], atol=1e-6)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt-neo"])
def test_rollout_equals_the_papers_formula(arch):
    """End to end through lm.attribute: raw scores and Ecco's normalised ones."""
    lm = _lm(arch)
    output = lm.attribute(PROMPT, target=TARGET, attribution=["rollout"])
    ids, columns = _explained(output, "rollout")
    joint = _rollout_loops([w.mean(0) for w in _eager_weights(arch, ids)], residual=True)
    result = output.attributions["rollout"]
    assert result.label == "Attention rollout"
    for k, t in enumerate(columns):
        np.testing.assert_allclose(result.raw[0][k], joint[t, : t + 1], atol=1e-6)
        np.testing.assert_allclose(result.values[0][k], joint[t, : t + 1] / joint[t, : t + 1].sum(), atol=1e-6)


@pytest.mark.parametrize(
    ("arch", "chunk"), [("gpt2", None), ("llama", None), ("llama", 5), ("gpt-neo", 5), ("mistral", None), ("opt", None),
                       ("phi3", None), ("gpt-neox", None)]
)
def test_value_zeroing_equals_brute_force(arch, chunk):
    """All tokens of a layer in one call of the block, or ``chunk`` (internal_batch_size) per call."""
    lm = _lm(arch)
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation, model.training)
    output = lm.attribute(PROMPT, target=TARGET, attribution=["value_zeroing"], internal_batch_size=chunk)
    assert (hook_count(model), model.config._attn_implementation, model.training) == before
    assert not any("_attn" in vars(m) for m in model.modules())
    ids, columns = _explained(output, "value_zeroing")
    joint = _value_zeroing_brute_force(arch, ids, lm.spec.main_stack.n_layers)
    raw = output.attributions["value_zeroing"].raw[0]
    for ours, t in zip(raw, columns):
        assert ours[: t + 1].sum() > 0.5
        np.testing.assert_allclose(ours, joint[t, : t + 1], atol=1e-5)


def test_all_methods_leave_the_model_as_it_was():
    lm = _lm("llama")
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation, model.training)
    lm.attribute(PROMPT, target=TARGET, attribution=METHODS)
    assert (hook_count(model), model.config._attn_implementation, model.training) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer": 3}, r"layer=3 is out of range: the model has 3 blocks"),
        ({"layer": -4}, r"layer=-4 is out of range"),
        ({"heads": 4}, r"heads=4 is out of range: block 2 has 4 attention heads"),
        ({"heads": "sum"}, r"heads must be 'mean', 'max' or a head index"),
    ],
)
def test_bad_options_are_refused(options, message):
    lm = _lm("gpt2")
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation)
    with pytest.raises(ValueError, match=message):
        lm.attribute(PROMPT, target=TARGET, attribution=["attention"], **options)
    assert (hook_count(model), model.config._attn_implementation) == before


@pytest.mark.parametrize("method", METHODS)
def test_encoder_decoder_is_refused(method):
    lm = _lm("t5")
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation)
    with pytest.raises(UnsupportedMethodError, match="encoder-decoder.*cross-attention"):
        lm.attribute(PROMPT, target=TARGET, attribution=[method])
    assert (hook_count(model), model.config._attn_implementation) == before


def test_value_zeroing_refuses_attention_it_cannot_reach():
    """GPT-Neo's attention goes through neither AttentionInterface nor, once the registry forgets
    its core method, anything ecco can wrap: an error, and the model exactly as before."""
    lm = _lm("gpt-neo")
    lm.spec.family = dataclasses.replace(lm.spec.family, attention_core=None)
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation, model.training)
    with pytest.raises(UnsupportedMethodError, match="AttentionInterface.*'occlusion' or 'ig'"):
        lm.attribute(PROMPT, target=TARGET, attribution=["value_zeroing"])
    assert (hook_count(model), model.config._attn_implementation, model.training) == before


class _ForeignAttention(tiny.tf.models.llama.modeling_llama.LlamaAttention):
    """Llama's attention, defined in a module that has no eager attention function."""


def test_value_zeroing_refuses_a_model_without_eager_attention():
    lm = _lm("llama")
    model = lm.model
    before = (hook_count(model), model.config._attn_implementation)
    model.model.layers[1].self_attn.__class__ = _ForeignAttention
    with pytest.raises(UnsupportedMethodError, match="no eager attention function"):
        lm.attribute(PROMPT, target=TARGET, attribution=["value_zeroing"])
    assert (hook_count(model), model.config._attn_implementation) == before
