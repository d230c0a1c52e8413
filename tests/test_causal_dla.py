"""Direct logit attribution: the shares sum to the model's own logit on every family where it
applies; heads, neurons and embeddings equal a hand-written decomposition with hand-placed hooks."""
from __future__ import annotations

import pytest
import torch

from ecco.causal import logit_attribution
from ecco.layout import Layout
from ecco.models.registry import resolve
from ecco.runner import Runner
from tests import tiny
from tests.conftest import hook_count

APPLIES = ("gpt2", "gpt-neo", "gptj", "gpt-neox", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3",
           "t5", "mt5", "mbart", "pegasus")
POST_NORM = ("bart", "marian", "bert")
TARGET, FOIL = 50, 60


def _case(arch: str, **overrides):
    model = tiny.model(arch, **overrides)
    spec = resolve(model)
    prompt = tiny.tokenizer()("heathrow airport is located in the city of")["input_ids"]
    start = [model.generation_config.decoder_start_token_id] if spec.kind.encoder_decoder else []
    seq = prompt + start + [TARGET]
    layout = Layout(spec.kind, len(seq), len(prompt))
    return model, Runner(model, spec), seq, layout


def _plain_logits(model, seq, layout) -> torch.Tensor:
    """The model's logits at the predicting column, from an ordinary forward pass (no hooks)."""
    with torch.no_grad():
        if layout.kind.encoder_decoder:
            out = model(input_ids=torch.tensor([seq[: layout.n_input]]), decoder_input_ids=torch.tensor([seq[layout.n_input :]]))
        else:
            out = model(input_ids=torch.tensor([seq]))
    return out.logits[0, layout.predicting_column(layout.first_generated)].double()


@pytest.mark.parametrize("arch", APPLIES)
def test_shares_sum_to_the_models_logit(arch):
    # Gemma 2 soft-caps its logits: the decomposed logit is the pre-cap one, i.e. the same model's
    # logit with the capping switched off.
    model, runner, seq, layout = _case(arch)
    logits = _plain_logits(model, seq, layout)
    if arch == "gemma2":
        logits = _plain_logits(_case(arch, final_logit_softcapping=None)[0], seq, layout)
    hooks = hook_count(model)
    single = logit_attribution(runner, seq, layout, layout.first_generated, TARGET)
    contrast = logit_attribution(runner, seq, layout, layout.first_generated, TARGET, FOIL)
    assert hook_count(model) == hooks
    assert abs(single.logit - float(logits[TARGET])) < 1e-4
    assert abs(contrast.logit - float(logits[TARGET] - logits[FOIL])) < 1e-4
    for result in (single, contrast):
        assert abs(result.heads.sum(1) + result.attention_bias - result.attention).max() < 1e-5
        assert abs(result.neurons.sum(1) + result.mlp_bias - result.mlp).max() < 1e-5
        if result.cross_attention is not None:
            assert abs(result.cross_heads.sum(1) + result.cross_attention_bias - result.cross_attention).max() < 1e-5
    if arch == "gemma2":
        cap = single.softcap
        assert cap == 0.5 and abs(cap * torch.tanh(torch.tensor(single.logit / cap)) - single.model_logit) < 1e-4


def _hand_decomposition(arch: str):
    """Heads, neurons and embeddings of gpt2 (LayerNorm) / llama (RMSNorm) by hand: hooks on paths
    written here, the final norm frozen with its own formula."""
    model, runner, seq, layout = _case(arch)
    paths = {"gpt2": ("transformer.h.{}.attn.c_proj", "transformer.h.{}.mlp.c_proj", "transformer.ln_f"),
             "llama": ("model.layers.{}.self_attn.o_proj", "model.layers.{}.mlp.down_proj", "model.norm")}[arch]
    modules = dict(model.named_modules())
    n_layers = model.config.num_hidden_layers
    seen = {}
    names = [(p.format(i), (k, i)) for i in range(n_layers) for k, p in zip(("z", "a"), paths[:2])] + [(paths[2], ("r", 0))]
    handles = [modules[name].register_forward_pre_hook(lambda m, args, key=key: seen.__setitem__(key, args[0][0, -1].double()))
               for name, key in names]
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([seq[:-1]]))
    finally:
        for handle in handles:
            handle.remove()
    norm, r = modules[paths[2]], seen[("r", 0)]
    row = model.lm_head.weight[TARGET].double()
    if arch == "gpt2":
        d = row * norm.weight.double() / torch.sqrt(r.var(unbiased=False) + norm.eps)
        d = d - d.mean()

        def io(name):  # Conv1D: y = x @ W
            return modules[name].weight.double()
    else:
        d = row * norm.weight.double() / torch.sqrt(r.pow(2).mean() + norm.variance_epsilon)

        def io(name):  # Linear: y = x @ W.T
            return modules[name].weight.double().T
    heads, neurons = [], []
    for i in range(n_layers):
        z, w = seen[("z", i)].view(4, 8), io(paths[0].format(i)).view(4, 8, -1)
        heads.append(torch.stack([z[h] @ w[h] @ d for h in range(4)]))
        neurons.append(seen[("a", i)] * (io(paths[1].format(i)) @ d))
    return runner, seq, layout, d, torch.stack(heads), torch.stack(neurons), model


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_heads_neurons_and_embeddings_match_a_hand_written_decomposition(arch):
    runner, seq, layout, d, heads, neurons, model = _hand_decomposition(arch)
    result = logit_attribution(runner, seq, layout, layout.first_generated, TARGET)
    assert abs(torch.from_numpy(result.heads) - heads).max() < 1e-5
    assert abs(torch.from_numpy(result.neurons) - neurons).max() < 1e-5
    ids = torch.tensor(seq[:-1])
    embedded = model.get_input_embeddings().weight[ids[-1]].detach().double()
    if arch == "gpt2":
        embedded = embedded + model.transformer.wpe.weight[len(ids) - 1].detach().double()
    assert abs(result.embeddings - float(embedded @ d)) < 1e-5


def _masked():
    model = tiny.model("bert")
    return model, Runner(model, resolve(model)), [4, 7, 8, 5], Layout("masked", 4, 4)


@pytest.mark.parametrize("arch", POST_NORM)
def test_post_norm_models_are_refused_and_left_unchanged(arch):
    model, runner, seq, layout = _case(arch) if arch != "bert" else _masked()
    hooks = hook_count(model)
    with pytest.raises(ValueError, match="post-norm"):
        logit_attribution(runner, seq, layout, 1, TARGET)
    assert hook_count(model) == hooks and not model.training


def test_bad_token_ids_are_refused():
    model, runner, seq, layout = _case("gpt2")
    with pytest.raises(ValueError, match="vocabulary"):
        logit_attribution(runner, seq, layout, layout.first_generated, 10**6)
    with pytest.raises(ValueError, match="foil"):
        logit_attribution(runner, seq, layout, layout.first_generated, TARGET, TARGET)


def test_hooks_are_removed_after_an_error_inside_the_pass():
    model, runner, seq, layout = _case("gpt2")
    hooks = hook_count(model)
    with pytest.raises(IndexError):  # a token id the embedding does not have fails inside the hooked pass
        logit_attribution(runner, seq[:-2] + [10**6, TARGET], layout, layout.first_generated, TARGET)
    assert hook_count(model) == hooks
