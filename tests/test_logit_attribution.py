"""``lm.logit_attribution``: the first target token after the prompt, explained against the model's
own logits; bad input refused with the model left as it was; the static rendering and the figure
show the data's numbers."""
from __future__ import annotations

import re
from html import unescape

import pytest
import torch

import ecco
from ecco.render.static import render_body
from ecco.render.static.html import fmt
from ecco.views.causal import logit_attribution_figure
from tests import tiny
from tests.conftest import hook_count

PROMPT = "heathrow airport is located in the city of"


def _lm(arch: str):
    return ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)


def _next_logits(lm, arch: str) -> torch.Tensor:
    ids = torch.tensor([tiny.tokenizer()(PROMPT)["input_ids"]])
    with torch.no_grad():
        if arch == "t5":
            return lm.model(input_ids=ids, decoder_input_ids=torch.tensor([[0]])).logits[0, -1]
        return lm.model(input_ids=ids).logits[0, -1]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_the_first_target_token_is_explained_and_sums_to_the_logit(arch):
    lm = _lm(arch)
    hooks = hook_count(lm.model)
    london = tiny.tokenizer()(" london", add_special_tokens=False)["input_ids"]
    the = tiny.tokenizer()(" the", add_special_tokens=False)["input_ids"][0]
    assert len(london) > 1  # a multi-token target: its first token is explained
    logits = _next_logits(lm, arch)
    data = lm.logit_attribution(PROMPT, target=" london", printJson=True)
    contrast = lm.logit_attribution(PROMPT, target=" london", foil=" the", top_neurons=2, printJson=True)
    assert data["target"]["id"] == london[0] and contrast["foil"]["id"] == the
    assert abs(data["logit"] - float(logits[london[0]])) < 1e-4
    assert abs(contrast["logit"] - float(logits[london[0]] - logits[the])) < 1e-4
    parts = [data["embeddings"], data["bias"]] + [
        v for layer in data["layers"] for v in (layer["attention"], layer["mlp"], layer["cross_attention"]) if v is not None]
    assert abs(sum(parts) - data["logit"]) < 1e-9
    assert all(len(layer["neurons_up"]) <= 2 and len(layer["neurons_down"]) <= 2 for layer in contrast["layers"])
    assert all(n["value"] > 0 for layer in contrast["layers"] for n in layer["neurons_up"])
    assert (data["layers"][0]["cross_heads"] is not None) == (arch == "t5")
    assert hook_count(lm.model) == hooks and not lm.model.training


@pytest.mark.parametrize("arch, kwargs, message", [
    ("gpt2", dict(target=""), "tokenizes to nothing"),
    ("gpt2", dict(target=" london", foil=" lo"), "foil's first token equals"),
    ("gpt2", dict(target=" london", top_neurons=-1), "top_neurons"),
    ("gpt2", dict(target=[10**6]), "outside the model's vocabulary"),
    ("bart", dict(target=" london"), "post-norm"),
    ("bert", dict(target=" london"), "encoder without a generative head"),
])
def test_bad_input_is_refused_and_the_model_is_unchanged(arch, kwargs, message):
    lm = _lm(arch)
    hooks, state = hook_count(lm.model), {k: v.clone() for k, v in lm.model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        lm.logit_attribution(PROMPT, **kwargs)
    assert hook_count(lm.model) == hooks and not lm.model.training
    assert all(torch.equal(state[k], v) for k, v in lm.model.state_dict().items())


def test_static_rendering_and_figure_show_the_numbers():
    data = _lm("gpt2").logit_attribution(PROMPT, target=" london", foil=" the", printJson=True)
    html = unescape(str(render_body("logit_attribution", data)))
    bars = [data["embeddings"]] + [v for layer in data["layers"] for v in (layer["attention"], layer["mlp"])]
    table = re.search(r'class="ecco-s-la-bars".*?</table>', html, re.S).group(0)
    shown = re.findall(r'font-family:monospace[^>]*>([^<]+)</td>', table)
    assert shown == [fmt(v) for v in bars]
    for layer in data["layers"]:
        heads = re.findall(r"<th[^>]*>head \d+</th><td[^>]*>([^<]+)</td>", html)
        assert all(fmt(v) in heads for v in layer["heads"])
    assert fmt(data["logit"]) in html
    figure = logit_attribution_figure(data)
    widths = [patch.get_width() for patch in figure.axes[0].patches]
    assert widths == pytest.approx(bars)
