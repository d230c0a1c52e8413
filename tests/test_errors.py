"""Bad input gives a clear ValueError, and the model is left exactly as it was."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ecco
from ecco import analysis
from tests import tiny
from tests.conftest import hook_count


@pytest.fixture
def lm(tokenizer):
    return ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, attention=True)


def _state(model):
    return (model.training, model.config._attn_implementation, hook_count(model),
            [p.requires_grad for p in model.parameters()])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lm: lm.generate("", generate=3), "empty"),
        (lambda lm: lm.generate("   ", generate=3), "empty"),
        (lambda lm: lm.generate([], generate=3), "No input"),
        (lambda lm: lm.generate("the " * 200, generate=3), "context window of 128"),
        (lambda lm: lm.generate("the quick " * 30, generate=100), "context window"),
        (lambda lm: lm.generate("the quick", generate=0), "positive"),
        (lambda lm: lm.generate("the quick", generate=2, max_length=9), "not both"),
        (lambda lm: lm.generate("the quick", max_length=2), "max_length"),
        (lambda lm: lm.generate("the quick", beam_size=0), "beam_size"),
        (lambda lm: lm(""), "empty"),
        (lambda lm: lm("the " * 200), "context window"),
    ],
)
def test_bad_input_is_a_clear_value_error(lm, call, message):
    before = _state(lm.model)
    with pytest.raises(ValueError, match=message):
        call(lm)
    assert _state(lm.model) == before


def test_layer_nums_out_of_range(tokenizer):
    with pytest.raises(ValueError, match=r"activations_layer_nums \[3\] out of range.*0\.\.2"):
        ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, activations_layer_nums=[0, 3])


def test_generate_on_encoder_is_refused(tokenizer):
    lm = ecco.from_model(tiny.model("bert"), tokenizer)
    with pytest.raises(ValueError, match="encoder.*lm\\(text\\)"):
        lm.generate("the quick", generate=2)


def test_unknown_alias_offline():
    with pytest.raises(ValueError, match="smollm2-135m, minilm-l6"):
        ecco.from_pretrained("smollm-9000")


def test_bad_store_dtype(tokenizer):
    with pytest.raises(ValueError, match="float32' or 'float16"):
        ecco.from_model(tiny.model("gpt2"), tokenizer, store_dtype="int8")


def test_bad_sequence_index(lm):
    output = lm.generate("the quick", generate=2)
    with pytest.raises(ValueError, match="sequence=3 is out of range"):
        output.tokens_view(sequence=3)


def test_model_state_restored_after_success(lm):
    model = lm.model
    model.train()
    with torch.no_grad():
        model(torch.tensor([[5, 6]]), output_hidden_states=True, output_attentions=True)
    before = _state(model)
    lm.generate("the quick", generate=2)
    assert _state(model) == before


# ------------------------------------------------- bad input, further (issue 11)
def _ready(lm):
    """Run once (transformers installs its own output hooks on first use), then count the model's
    forward calls: returns the call list and the model's state with the counter in place."""
    lm.generate("the quick", generate=1)
    calls: list[int] = []
    lm.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, _state(lm.model)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_steps": 0}, "n_steps must be a positive integer"),
        ({"n_steps": -3}, "n_steps must be a positive integer"),
        ({"n_steps": 2.5}, "n_steps must be a positive integer"),
        ({"n_steps": "many"}, "n_steps must be a positive integer"),
        ({"n_steps": True}, "n_steps must be a positive integer"),
        ({"gradcam_layer": 3}, r"gradcam_layer=3 is out of range: the model has 3 blocks.*-3 to 2"),
        ({"gradcam_layer": -4}, "gradcam_layer=-4 is out of range"),
        ({"gradcam_layer": 1.0}, "gradcam_layer must be an integer"),
        ({"internal_batch_size": 0}, "internal_batch_size=0 is out of range"),
        ({"tolerance": -1}, "tolerance must be a positive number"),
    ],
)
def test_bad_attribution_options_are_refused_before_the_model_runs(lm, options, message):
    calls, before = _ready(lm)
    with pytest.raises(ValueError, match=message):
        lm.generate("the quick", generate=2, attribution=["ig", "gg"], attribution_options=options)
    with pytest.raises(ValueError, match=message):
        lm.attribute("the quick", " brown", attribution=["ig", "gg"], **options)
    assert not calls and _state(lm.model) == before


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda o: o.attention_neuron_view(layer=0, head=0, selected=99), r"selected=99 is out of range.*0\.\.5"),
        (lambda o: o.attention_neuron_view(layer=0, head=0, selected=-1), "selected=-1 is out of range"),
        (lambda o: o.attention_neuron_view(layer=0, head=0, selected="the"), "selected must be an integer"),
        (lambda o: o.primary_attributions(ignore_tokens=[99]), r"ignore_tokens position 99 is outside 0\.\.5"),
        (lambda o: o.primary_attributions(ignore_tokens=[-1]), "ignore_tokens position -1 is outside"),
        (lambda o: o.primary_attributions(ignore_tokens=[1.5]), "ignore_tokens entries are token positions"),
        (lambda o: o.primary_attributions(style="fancy"), "style must be 'minimal' or 'detailed'"),
    ],
)
def test_bad_view_arguments(lm, call, message):
    output = lm.generate("the quick", generate=2, min_new_tokens=2, attribution=["saliency"])
    assert len(output.sequences[0]) == 6
    calls, before = _ready(lm)
    with pytest.raises(ValueError, match=message):
        call(output)
    assert not calls and _state(lm.model) == before


def test_wrong_number_of_text_pairs(tokenizer):
    bert = ecco.from_model(tiny.model("bert"), tokenizer, verbose=False)
    for texts, pairs, message in [
        (["the cat", "a dog"], ["sat"], "text_pair has 1 texts for 2 inputs"),
        ("the cat", ["sat", "ran"], "text_pair has 2 texts for 1 inputs"),
    ]:
        with pytest.raises(ValueError, match=message):
            bert(texts, text_pair=pairs)
    assert bert(["the cat", "a dog"], text_pair=["sat", "ran"]).batch_size == 2


def test_lens_without_hidden_states(tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, hidden_states=False, verbose=False)
    output = lm.generate("the quick", generate=2)
    for view in (lambda: output.layer_predictions(position=2), output.rankings, output.lens_trajectories,
                 lambda: output.rankings_watch(watch=[5])):
        with pytest.raises(ValueError, match="no hidden states: create the LM with hidden_states=True"):
            view()


def test_saved_file_from_a_newer_format(lm, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = lm.generate("the quick", generate=2).save(tmp_path / "out.ecco.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["ecco"])
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    for version, message in [(2, r"format version 2.*reads version 1.*newer ecco: upgrade ecco"),
                             (None, "format version None.*not written by this ecco")]:
        meta["format_version"] = version
        save_file(tensors, str(path), metadata={"ecco": json.dumps(meta)})
        with pytest.raises(ValueError, match=message):
            ecco.load(path)


def test_similarity_on_one_position_or_dead_neurons(tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, verbose=False)
    with pytest.raises(ValueError, match="at least two positions"):
        lm("the").layer_similarity("cka")
    output = lm.generate("the quick brown fox jumps", generate=8, min_new_tokens=8)
    acts = output.activations["decoder"]
    reference = {m: output.layer_similarity(m, printJson=True) for m in ("cca", "svcca", "pwcca", "cka")}
    # Dead units (constant over every token) carry nothing: the similarities do not change.
    width = acts.shape[2]
    live = np.ones(width, dtype=bool)
    live[: width // 4] = False
    acts[:, :, ~live] = np.float32(0.25)
    for method in ("svcca", "cka"):
        per_layer = [acts[0, layer][live] for layer in range(acts.shape[1])]
        expected = analysis.similarity_matrix(np.stack(per_layer), method)
        np.testing.assert_allclose(output.layer_similarity(method, printJson=True), expected, atol=1e-9)
        assert not np.allclose(expected, reference[method])  # the dead units changed the data
    # A layer with every unit dead has nothing to compare.
    acts[:, 1] = 0.0
    for method in ("cca", "svcca", "pwcca", "cka"):
        with pytest.raises(ValueError, match="no variance across positions.*dead units"):
            output.layer_similarity(method)


def test_model_whose_attention_stays_sdpa(tokenizer):
    model = tiny.model("llama")
    model.set_attn_implementation("sdpa")
    # Models that do not follow transformers' AttentionInterface cannot switch (transformers only warns).
    model._can_set_attn_implementation = lambda: False
    lm = ecco.from_model(model, tokenizer, attention=True, verbose=False)
    before = _state(model)
    for call in (lambda: lm.generate("the quick", generate=2), lambda: lm("the quick"),
                 lambda: lm.attribute("the quick", " brown", attribution=["lrp"])):
        with pytest.raises(ValueError, match="cannot switch its attention to eager.*attention=False"):
            call()
        assert _state(model)[:2] == before[:2] and model.config._attn_implementation == "sdpa"
    lm.attention = False
    assert lm.generate("the quick", generate=2).hidden_states


def test_half_precision_model_works(tokenizer):
    """Capture, lens and every attribution method on a float16 model, compared with the same
    weights in float32."""
    half, full = tiny.model("llama").half(), tiny.model("llama").half().float()
    lm16 = ecco.from_model(half, tokenizer, activations=True, attention=True, verbose=False)
    lm32 = ecco.from_model(full, tokenizer, activations=True, attention=True, verbose=False)
    a, b = (lm.generate("the quick brown", generate=3, min_new_tokens=3) for lm in (lm16, lm32))
    assert a.sequences[0].token_ids == b.sequences[0].token_ids
    torch.testing.assert_close(a.hidden_states["decoder"], b.hidden_states["decoder"], atol=2e-2, rtol=2e-2)
    first = a.n_input_tokens  # greedy: the last layer's top token is the generated one
    assert a.layer_predictions(position=first, printJson=True)[-1][0]["token_id"] == a.sequences[0].token_ids[first]
    before = [p.clone() for p in half.parameters()]
    methods = list(ecco.attribution.METHODS)
    r16, r32 = (lm.attribute("the quick brown", " fox jumps", attribution=methods) for lm in (lm16, lm32))
    for method in methods:
        for x, y in zip(r16.attributions[method].values[0], r32.attributions[method].values[0]):
            assert np.isfinite(x).all()
            np.testing.assert_allclose(x, y, atol=0.05, err_msg=method)
    assert all(p.dtype == torch.float16 and torch.equal(p, q) for p, q in zip(half.parameters(), before))


def test_non_finite_attributions_are_an_error(lm):
    from ecco.attribution.registry import METHODS, MethodOutput, register

    @register("nan_method", "always NaN")
    def nan_method(problem, options):
        return MethodOutput(tuple(torch.full((problem.n_targets, *e.shape[1:]), float("nan")) for e in problem.embeds))

    try:
        lm.model.half()
        with pytest.raises(ValueError, match=r"nan_method gave non-finite attributions.*torch.float16.*float32"):
            lm.attribute("the quick", " brown", attribution=["nan_method"])
    finally:
        METHODS.pop("nan_method")
        lm.model.float()
