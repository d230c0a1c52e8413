"""Causal tracing / activation patching: every restored probability equals a forward pass with a
hook the test places itself (by module path) on a corrupted input it builds itself (noise rebuilt
from the documented seeding, or a counterfactual); full restorations give the clean probability;
bad input is refused with the model left as it was."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import ecco
from ecco.causal.patching import Corruption, Row, patched_probs
from ecco.causal.trace import Trace
from ecco.causal.trace import trace as trace_core
from ecco.lm.tracing import trace_result
from tests import tiny
from tests.conftest import hook_count

PROMPT = "heathrow airport is located in the city of"
SUBJECT = "heathrow airport"
COMPONENTS = ("residual", "mlp", "attention")
# Where each component is, written out per model: its output is the site.
PATHS = {
    "gpt2": ("transformer.h.{}", "transformer.h.{}.mlp", "transformer.h.{}.attn"),
    "llama": ("model.layers.{}", "model.layers.{}.mlp", "model.layers.{}.self_attn"),
    "t5": ("encoder.block.{}", "encoder.block.{}.layer.1.DenseReluDense", "encoder.block.{}.layer.0.SelfAttention"),
    "t5-decoder": ("decoder.block.{}", "decoder.block.{}.layer.2.DenseReluDense", "decoder.block.{}.layer.0.SelfAttention"),
}
INIT = {"gpt2": dict(initializer_range=0.2), "llama": dict(initializer_range=0.2), "t5": {}, "bart": dict(init_std=0.2)}


@functools.lru_cache(maxsize=None)
def _lm(arch: str):
    return ecco.from_model(tiny.model(arch, **INIT[arch]), tiny.tokenizer(), verbose=False)


def _ids() -> list[int]:
    return tiny.tokenizer()(PROMPT)["input_ids"]


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _probs(model, arch: str, embeds: torch.Tensor, hooks: dict | None = None) -> torch.Tensor:
    """The next-token distribution after the prompt, the model called directly on ``embeds``;
    ``hooks``: module path -> (positions, clean output) written into the output at those positions."""
    modules = dict(model.named_modules())
    handles = []
    for path, (positions, clean) in (hooks or {}).items():
        def restore(module, args, out, positions=positions, clean=clean):
            x = _first(out).clone()
            x[0, positions] = clean[0, positions]
            return (x, *out[1:]) if isinstance(out, tuple) else x

        handles.append(modules[path].register_forward_hook(restore))
    try:
        with torch.no_grad():
            if arch.startswith("t5") or arch == "bart":
                start = torch.tensor([[model.generation_config.decoder_start_token_id]])
                logits = model(inputs_embeds=embeds, decoder_input_ids=start).logits[0, -1]
            else:
                logits = model(inputs_embeds=embeds).logits[0, -1]
    finally:
        for handle in handles:
            handle.remove()
    return logits.double().softmax(-1)


def _clean_outputs(model, arch: str, paths: list[str]) -> dict[str, torch.Tensor]:
    modules = dict(model.named_modules())
    seen = {}
    handles = [modules[p].register_forward_hook(lambda m, a, out, p=p: seen.__setitem__(p, _first(out).clone())) for p in paths]
    try:
        _probs(model, arch, model.get_input_embeddings()(torch.tensor([_ids()])))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _noisy(model, positions: list[int], noise: float, seed: int) -> torch.Tensor:
    """The documented noise: seed s draws randn((corrupted positions, hidden)) from a fresh CPU
    generator seeded s, times noise x the std of all embedding entries, added in ascending position order."""
    table = model.get_input_embeddings()
    embeds = table(torch.tensor([_ids()])).detach().clone()
    z = torch.randn((len(positions), embeds.shape[-1]), generator=torch.Generator().manual_seed(seed))
    embeds[0, sorted(positions)] += z * noise * table.weight.detach().std()
    return embeds


def _target(arch: str) -> int:
    model = _lm(arch.split("-")[0]).model
    return int(_probs(model, arch, model.get_input_embeddings()(torch.tensor([_ids()]))).argmax())


def _counterfactual() -> list[int]:
    other = tiny.tokenizer()("the quick brown fox", add_special_tokens=False)["input_ids"]
    return other[:3] + _ids()[3:]


def _positions(piece: str) -> list[int]:
    """Tokens overlapping ``piece``'s characters in the prompt, from the decoded prefixes of the prompt."""
    ids, tok = _ids(), tiny.tokenizer()
    starts = [len(tok.decode(ids[:i])) for i in range(len(ids) + 1)]
    begin = PROMPT.index(piece)
    return [i for i in range(len(ids)) if starts[i] < begin + len(piece) and starts[i + 1] > max(starts[i], begin)]


def _subject_positions() -> list[int]:
    return _positions(SUBJECT)


def _late_positions() -> list[int]:
    found = _positions(LATE)
    assert found[0] > 8  # well after the start
    return found


CASES = [("gpt2", "noise", 1), ("gpt2", "counterfactual", 1), ("gpt2", "noise", 3), ("gpt2", "late", 1),
         ("llama", "noise", 1), ("llama", "counterfactual", 2), ("llama", "noise", 3), ("llama", "late", 2),
         ("t5", "noise", 1), ("t5", "counterfactual", 2), ("t5", "late", 1), ("t5-decoder", "noise", 2)]
LATE = "the city"  # tokens near the end: in a causal model the positions before them are clean


@pytest.mark.parametrize("arch,mode,window", CASES)
def test_every_restoration_equals_a_hand_placed_hook(arch, mode, window):
    lm = _lm(arch.split("-")[0])
    model, paths = lm.model, PATHS[arch]
    n_layers = 2 if arch.startswith("t5") else 3
    noise, seeds, target = 3.0, 2, _target(arch)
    stack = "decoder" if arch == "t5-decoder" else None
    if mode in ("noise", "late"):
        piece, positions = (SUBJECT, _subject_positions()) if mode == "noise" else (LATE, _late_positions())
        trace = trace_result(lm, PROMPT, [target], piece, None, COMPONENTS, window, seeds, noise, stack, 16)
        runs = [_noisy(model, positions, noise, seed) for seed in range(seeds)]
        assert trace.corrupted == positions and trace.seeds == seeds
    else:
        trace = trace_result(lm, PROMPT, [target], None, _counterfactual(), COMPONENTS, window, seeds, noise, stack, 16)
        runs = [model.get_input_embeddings()(torch.tensor([_counterfactual()])).detach()]
        assert trace.corrupted == [0, 1, 2] and trace.seeds == 1 and trace.noise is None
    clean = _clean_outputs(model, arch, [p.format(k) for p in paths for k in range(n_layers)])
    n_positions = 1 if stack == "decoder" else len(_ids())
    expected = {c: np.zeros((n_layers, n_positions)) for c in COMPONENTS}
    for c, path in zip(COMPONENTS, paths):
        for layer in range(n_layers):
            # ROME's window: the `window` layers starting window // 2 before the layer, cut at the ends
            chosen = [layer] if c == "residual" else [k for k in range(n_layers) if 0 <= k - layer + window // 2 < window]
            for p in range(n_positions):
                hooks = {path.format(k): ([p], clean[path.format(k)]) for k in chosen}
                expected[c][layer, p] = np.mean([float(_probs(model, arch, e, hooks)[target]) for e in runs])
    corrupt = np.mean([float(_probs(model, arch, e)[target]) for e in runs])
    assert abs(trace.corrupt_prob - corrupt) < 1e-6
    assert abs(trace.clean_prob - float(_probs(model, arch, model.get_input_embeddings()(torch.tensor([_ids()])))[target])) < 1e-6
    for c in COMPONENTS:
        assert trace.probs[c].shape == (n_layers, n_positions)
        assert np.abs(trace.probs[c] - expected[c]).max() < 1e-6, c
    assert max(np.abs(expected[c] - corrupt).max() for c in COMPONENTS) > 1e-3  # the effects are far above the tolerance


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5", "bart"])
def test_full_restorations_give_the_clean_probability(arch):
    lm = _lm(arch)
    model, runner = lm.model, lm.runner
    ids, target = _ids(), 7
    enc_dec = lm.kind.encoder_decoder
    inputs = (ids, [model.generation_config.decoder_start_token_id]) if enc_dec else (ids,)
    stack = "encoder" if enc_dec else "decoder"
    n_layers, n = runner.spec.stacks[stack].n_layers, len(ids)
    positions = [0, 1, 2, 3]
    std = 3.0 * float(model.get_input_embeddings().weight.detach().std())
    rows = [Row((), 0), Row((), 1),
            Row(tuple(("residual", layer, p) for layer in range(n_layers) for p in range(n))),
            Row(tuple(("residual", n_layers - 1, p) for p in (range(n) if enc_dec else [n - 1])), 1)]
    clean, probs = patched_probs(runner, inputs, Corruption(tuple(positions), std=std), target, 0 if enc_dec else n - 1,
                                 rows, stack, 3)
    own = [float(_probs(model, arch, _noisy(model, positions, 3.0, seed))[target]) for seed in (0, 1)]
    plain = float(_probs(model, arch, model.get_input_embeddings()(torch.tensor([ids])))[target])
    assert abs(clean - plain) < 1e-6
    assert np.abs(probs[:2] - own).max() < 1e-6 and abs(own[0] - own[1]) > 1e-6  # each seed its own noise
    assert np.abs(probs[2:] - clean).max() < 1e-6 and abs(own[0] - clean) > 1e-4


def test_normalised_effect_is_restored_minus_corrupt_over_clean_minus_corrupt():
    lm = _lm("gpt2")
    trace = trace_result(lm, PROMPT, [_target("gpt2")], SUBJECT, None, COMPONENTS, 1, 2, 3.0, None, 64)
    for c in COMPONENTS:
        by_hand = (trace.probs[c] - trace.corrupt_prob) / (trace.clean_prob - trace.corrupt_prob)
        assert np.allclose(trace.normalised(c), by_hand, rtol=1e-12, atol=0)
        assert np.allclose(trace.indirect(c), trace.probs[c] - trace.corrupt_prob, rtol=1e-12, atol=0)
    flat = Trace([1, 2], None, [0], 3, "decoder", 1, 0.5, 0.5, {"mlp": np.array([[0.5, 0.6]])}, 1, 1.0, 1)
    assert np.isnan(flat.normalised("mlp")).all()


def test_batch_size_does_not_change_the_numbers():
    lm = _lm("llama")
    runs = [trace_result(lm, PROMPT, [_target("llama")], SUBJECT, None, COMPONENTS, 3, 2, 3.0, None, size)
            for size in (1, 64)]
    for c in COMPONENTS:
        assert np.abs(runs[0].probs[c] - runs[1].probs[c]).max() <= 1e-6
    assert abs(runs[0].corrupt_prob - runs[1].corrupt_prob) <= 1e-6


def test_corrupt_as_positions_and_default_skips_special_tokens():
    lm = _lm("gpt2")
    ids = _ids() + [tiny.tokenizer().eos_token_id]
    by_text = trace_result(lm, PROMPT, [5], SUBJECT, None, ("residual",), 1, 1, 3.0, None, 64)
    by_positions = trace_result(lm, PROMPT, [5], _subject_positions()[::-1], None, ("residual",), 1, 1, 3.0, None, 64)
    assert by_text.corrupted == by_positions.corrupted == _subject_positions()
    assert np.array_equal(by_text.probs["residual"], by_positions.probs["residual"])
    default = trace_result(lm, ids, [5], None, None, ("residual",), 1, 1, 3.0, None, 64)
    assert default.corrupted == list(range(len(ids) - 1)) and default.token_ids == ids


BAD = [
    (dict(target=""), "tokenizes to nothing"),
    (dict(corrupt=[0, 99]), "outside the prompt"),
    (dict(corrupt="paris"), "is not in the prompt"),
    (dict(corrupt=[]), "No position to corrupt"),
    (dict(corrupt=None, counterfactual="heathrow airport"), "same token length"),
    (dict(corrupt=None, counterfactual=PROMPT), "nothing would be corrupted"),
    (dict(counterfactual=PROMPT), "not both"),
    (dict(components=("residual", "heads")), "Unknown component 'heads'"),
    (dict(components=()), "No component"),
    (dict(window=0), "window must be"),
    (dict(seeds=0), "seeds=0 is out of range"),
    (dict(noise=0.0), "noise must be a positive number"),
    (dict(noise=float("nan")), "noise must be a positive number"),
    (dict(stack="decoder2"), "Unknown stack 'decoder2'"),
    (dict(batch_size=0), "batch_size=0 is out of range"),
    (dict(prompt=[1, 2, 3], corrupt="heathrow"), "needs the prompt as text"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_refused_and_the_model_left_as_it_was(change, message):
    lm = _lm("gpt2")
    args = dict(prompt=PROMPT, target=" london", corrupt=SUBJECT, counterfactual=None, components=COMPONENTS, window=1,
                seeds=1, noise=3.0, stack=None, batch_size=8) | change
    hooks = hook_count(lm.model)
    lm.model.train()
    try:
        with pytest.raises(ValueError, match=message):
            trace_result(lm, **args)
        assert hook_count(lm.model) == hooks and lm.model.training
        trace_result(lm, **(args | dict(prompt=PROMPT, corrupt=SUBJECT, counterfactual=None, components=COMPONENTS,
                                        window=1, seeds=1, noise=3.0, stack=None, batch_size=8, target=" london")))
        assert hook_count(lm.model) == hooks and lm.model.training
    finally:
        lm.model.eval()


def test_masked_models_are_refused():
    lm = ecco.from_model(tiny.model("bert"), tiny.tokenizer(), verbose=False)
    with pytest.raises(ValueError, match="next-token prediction"):
        trace_result(lm, PROMPT, " london", None, None, COMPONENTS, 1, 1, 3.0, None, 8)


def test_the_view_data_holds_the_trace():
    pytest.importorskip("ecco.views.tracing")
    lm = _lm("gpt2")
    data = lm.trace(PROMPT, [_target("gpt2")], SUBJECT, seeds=2, printJson=True)
    trace = trace_result(lm, PROMPT, [_target("gpt2")], SUBJECT, None, COMPONENTS, 1, 2, 3.0, None, 64)
    assert abs(data["clean_prob"] - trace.clean_prob) < 1e-12 and abs(data["corrupt_prob"] - trace.corrupt_prob) < 1e-12
    shown = {c["name"]: np.array(c["prob"]) for c in data["components"]}
    for c in COMPONENTS:
        assert np.allclose(shown[c], trace.probs[c], atol=1e-9)


def test_a_decoder_traced_behind_a_corrupted_encoder_is_shown_by_its_own_tokens():
    pytest.importorskip("ecco.views.tracing")
    lm = _lm("t5")
    for corrupt, counterfactual in ((SUBJECT, None), (None, _counterfactual())):
        trace = trace_result(lm, PROMPT, [_target("t5")], corrupt, counterfactual, COMPONENTS, 1, 2, 3.0, "decoder", 64)
        assert trace.stack == "decoder" and trace.corrupted_stack == "encoder" and trace.token_ids == [0]
        assert trace.corrupted == ([0, 1, 2] if counterfactual else _subject_positions())
        data = lm.trace(PROMPT, [_target("t5")], corrupt, counterfactual=counterfactual, seeds=2, stack="decoder",
                        printJson=True)
        assert data["corrupted"] == [] and len(data["components"][0]["prob"]) == 2
        assert np.allclose(data["components"][0]["prob"], trace.probs["residual"], atol=1e-9)


def test_the_core_refuses_what_does_not_fit_the_model():
    lm = _lm("gpt2")
    runner, ids, hooks = lm.runner, _ids(), hook_count(lm.model)
    good = Corruption((0, 1), std=1.0)
    cases = [
        (lambda: trace_core(runner, (ids,), Corruption((), std=1.0), 5, len(ids) - 1), "noise corruption needs"),
        (lambda: trace_core(runner, (ids,), Corruption((0,), std=None), 5, len(ids) - 1), "noise corruption needs"),
        (lambda: trace_core(runner, (ids,), good, 10**6, len(ids) - 1), "outside the vocabulary"),
        (lambda: trace_core(runner, (ids,), good, 5, len(ids)), "column=17 is out of range"),
        (lambda: patched_probs(runner, (ids,), good, 5, 0, [Row((("mlp", 3, 0),))], "decoder", 8), "layers 0..2"),
        (lambda: patched_probs(runner, (ids,), good, 5, 0, [Row((("mlp", 0, 17),))], "decoder", 8), "positions 0..16"),
        (lambda: patched_probs(runner, (ids,), good, 5, 0, [Row((("neurons", 0, 1),))], "decoder", 8), "'neurons'"),
        (lambda: patched_probs(runner, (ids, ids), good, 5, 0, [], "decoder", 8), "each input stack"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
        assert hook_count(lm.model) == hooks
