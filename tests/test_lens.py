"""The logit lens: exactness of the last layer, norms, ranks, stats, views' data, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from scipy.spatial.distance import jensenshannon

import ecco
from ecco.lens import lens_stats
from tests import tiny

PROMPT = "the quick brown fox"


def _lm(arch: str, tokenizer, **overrides):
    return ecco.from_model(tiny.model(arch, **overrides), tokenizer, verbose=False)


def _final_norm(model, arch):
    return {"gpt2": lambda: model.transformer.ln_f, "llama": lambda: model.model.norm,
            "t5": lambda: model.decoder.final_layer_norm, "bart": lambda: None}[arch]()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
def test_last_layer_lens_equals_model_logits(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate(PROMPT, generate=4, min_new_tokens=4)
    seq = output.sequences[0]
    head = lm.link.lens
    with torch.no_grad():
        ids = torch.tensor([seq.token_ids])
        if output.kind == "enc-dec":
            n = seq.n_input_tokens
            logits = lm.model(input_ids=ids[:, :n], decoder_input_ids=ids[:, n:]).logits[0]
        else:
            logits = lm.model(ids).logits[0]
    hidden = output.hidden_states["decoder"][0, -1]
    assert (head(hidden, final=True) - logits).abs().max() <= 1e-4
    # Any other layer: the model's final norm, then the head (written out by hand here).
    middle = output.hidden_states["decoder"][0, 1]
    norm = _final_norm(lm.model, arch)
    with torch.no_grad():
        x = norm(middle) if norm is not None else middle
        if arch == "t5":
            x = x * lm.model.config.d_model ** -0.5
        expected = lm.model.get_output_embeddings()(x)
        if arch == "bart":
            expected = expected + lm.model.final_logits_bias
    torch.testing.assert_close(head(middle, final=False), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_greedy_tokens_rank_first_at_the_last_layer(arch, tokenizer):
    lm = _lm(arch, tokenizer)
    output = lm.generate(PROMPT, generate=5, min_new_tokens=5)
    data = output.rankings(printJson=True)
    ranks = data["rankings"]
    assert ranks.shape == (output.n_layers["decoder"], 5)
    assert (ranks[-1] == 1).all()
    assert len(data["output_tokens"]) == 5


def test_ranks_and_stats_match_a_direct_computation(tokenizer):
    lm = _lm("llama", tokenizer)
    output = lm.generate(PROMPT, generate=4, min_new_tokens=4)
    seq = output.sequences[0]
    hidden = output.hidden_states["decoder"][0, 1:, seq.n_input_tokens - 1 : len(seq) - 1]
    ids = torch.tensor(seq.token_ids[seq.n_input_tokens :])
    stats = lens_stats(lm.link.lens, hidden, ids, chunk_bytes=1)  # one position per chunk
    norm, head = lm.model.model.norm, lm.model.lm_head
    with torch.no_grad():
        logits = torch.stack([head(norm(h)) for h in hidden[:-1]] + [head(hidden[-1])])
    order = logits.argsort(dim=-1, descending=True)
    expected_ranks = (order == ids[None, :, None]).float().argmax(-1) + 1
    assert torch.equal(stats.ranks, expected_ranks)
    logp = torch.log_softmax(logits, -1)
    torch.testing.assert_close(stats.probs, logp.gather(-1, ids[None, :, None].expand(len(logits), -1, -1))[..., 0].exp())
    torch.testing.assert_close(stats.entropy, -(logp.exp() * logp).sum(-1))
    kl = (logp[-1].exp() * (logp[-1] - logp)).sum(-1)
    torch.testing.assert_close(stats.kl, kl)
    assert stats.kl[-1].abs().max() < 1e-6
    # Jensen-Shannon (scipy's distance is its square root, natural log), total variation, p(final top-1).
    p = logp.exp().double().numpy()
    js = jensenshannon(p, p[-1:].repeat(len(p), 0), axis=-1) ** 2
    np.testing.assert_allclose(stats.js.numpy(), js, atol=1e-6)
    np.testing.assert_allclose(stats.tv.numpy(), 0.5 * np.abs(p - p[-1:]).sum(-1), atol=1e-6)
    top1 = p[-1].argmax(-1)
    np.testing.assert_allclose(stats.final_top1.numpy(), p[:, np.arange(len(top1)), top1], rtol=1e-5)
    assert stats.js.max() <= np.log(2) + 1e-6 and stats.tv.max() <= 1 + 1e-6
    trajectories = output.lens_trajectories()
    np.testing.assert_allclose(trajectories["entropy"], stats.entropy.numpy(), rtol=1e-6)
    for key, field in (("js", "js"), ("tv", "tv"), ("final_top1_prob", "final_top1")):
        np.testing.assert_allclose(trajectories[key], getattr(stats, field).numpy(), rtol=1e-6, atol=1e-7)


def test_layer_predictions_contract(tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate(PROMPT, generate=3, min_new_tokens=3)
    rows = output.layer_predictions(position=5, topk=4, printJson=True)
    assert len(rows) == output.n_layers["decoder"]
    for layer, row in enumerate(rows):
        assert [c["ranking"] for c in row] == [1, 2, 3, 4]
        assert all(c["layer"] == layer for c in row)
        probs = [c["prob"] for c in row]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert {"token", "prob", "ranking", "layer"} <= set(row[0])
    assert len(output.layer_predictions(position=5, layer=1, printJson=True)) == 1
    view = output.layer_predictions(position=5, topk=4)
    assert view.data["actual"]["id"] == output.sequences[0].token_ids[5]
    assert len(view.data["actual_by_layer"]) == output.n_layers["decoder"]


def test_rankings_watch_ids_and_strings(tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate(PROMPT, generate=2, min_new_tokens=2)
    fox, dog = (tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" fox", " dog"))
    by_id = output.rankings_watch(watch=[fox, dog], position=4, printJson=True)
    by_text = output.rankings_watch(watch=[" fox", " dog"], position=4, printJson=True)
    assert np.array_equal(by_id["rankings"], by_text["rankings"])
    assert by_id["rankings"].shape == (output.n_layers["decoder"], 2)
    with pytest.warns(UserWarning, match="first piece"):
        output.rankings_watch(watch=[" brownish"], position=4, printJson=True)


def test_masked_model_reads_mask_positions(tokenizer):
    lm = _lm("bert", tokenizer)
    text = f"the quick {tokenizer.mask_token} fox"
    output = lm(text)
    ranks = output.rankings(printJson=True)["rankings"]
    assert ranks.shape == (2, 1) and ranks[-1, 0] == 1
    mask_position = output.sequences[0].token_ids.index(tokenizer.mask_token_id)
    rows = output.layer_predictions(position=mask_position, printJson=True)
    # The model's own top-1 at the mask is what the rankings follow.
    assert rows[-1][0]["token"] == output.rankings(printJson=True)["output_tokens"][0]


def test_encoder_without_head_says_so(tokenizer):
    lm = ecco.from_model(tiny.model("bert").bert, tokenizer, verbose=False)
    output = lm("the quick brown fox")
    with pytest.raises(ValueError, match="no language-model head"):
        output.rankings()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda o: o.layer_predictions(position=0), "first token"),
        (lambda o: o.layer_predictions(position=99), "out of range"),
        (lambda o: o.layer_predictions(position=3, layer=3), "layer=3 is out of range"),
        (lambda o: o.layer_predictions(position=3, layer=-1), "out of range"),
        (lambda o: o.layer_predictions(position=3, topk=0), "topk"),
        (lambda o: o.layer_predictions(position=3, topk=10**6), "topk"),
        (lambda o: o.rankings_watch(watch=[], position=3), "watch is empty"),
        (lambda o: o.rankings_watch(watch=[10**6], position=3), "not a string or a token id"),
        (lambda o: o.rankings_watch(watch=[5], position=0), "first token"),
        (lambda o: o.rankings(sequence=2), "sequence=2"),
    ],
)
def test_bad_lens_input(call, message, tokenizer):
    output = _lm("gpt2", tokenizer).generate(PROMPT, generate=2, min_new_tokens=2)
    with pytest.raises(ValueError, match=message):
        call(output)


def test_figures_and_loaded_outputs(tmp_path, tokenizer):
    lm = _lm("gpt2", tokenizer)
    output = lm.generate(PROMPT, generate=3, min_new_tokens=3)
    figure = output.rankings(plot=True)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == [str(r) for r in output.rankings(printJson=True)["rankings"].ravel()]
    assert len(output.trajectories(plot=True).axes) == 6
    path = output.save(tmp_path / "o.ecco.safetensors")
    with pytest.raises(ValueError, match="ecco.load\\(path, lm=lm\\)"):
        ecco.load(path).rankings()
    again = ecco.load(path, lm=lm).rankings(printJson=True)["rankings"]
    assert np.array_equal(again, output.rankings(printJson=True)["rankings"])


def _registry_models():
    ids = tiny._ids()
    small = dict(num_hidden_layers=2, hidden_size=32, intermediate_size=40, num_attention_heads=4,
                 max_position_embeddings=128, **ids)
    return {
        "electra": lambda: transformers.ElectraForMaskedLM(transformers.ElectraConfig(embedding_size=32, **small)),
        "distilbert": lambda: transformers.DistilBertForMaskedLM(transformers.DistilBertConfig(
            n_layers=2, dim=32, hidden_dim=40, n_heads=4, max_position_embeddings=128, **ids)),
        "gemma2": lambda: transformers.Gemma2ForCausalLM(transformers.Gemma2Config(
            num_key_value_heads=2, head_dim=8, final_logit_softcapping=0.5, **small)),
        "phi3": lambda: transformers.Phi3ForCausalLM(transformers.Phi3Config(num_key_value_heads=2, **small)),
    }


@pytest.mark.parametrize("family", ["electra", "distilbert", "gemma2", "phi3"])
def test_registry_entry_gives_the_model_its_own_logits(family, tokenizer):
    """Each family's lens facts (MLM head chain, soft-capping) reproduce the model's logits."""
    torch.manual_seed(0)
    lm = ecco.from_model(_registry_models()[family]().eval(), tokenizer, verbose=False)
    assert lm.spec.family.name == family
    output = lm(PROMPT)
    ids = torch.tensor([output.sequences[0].token_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[0]
    if family == "gemma2":
        assert logits.abs().max() <= 0.5 + 1e-6  # soft-capped: the lens must cap too
    hidden = output.hidden_states[lm.spec.kind.main_stack][0, -1]
    assert (lm.link.lens(hidden, final=True) - logits).abs().max() <= 1e-4
