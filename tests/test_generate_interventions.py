"""``lm.generate(..., interventions=[...])``: the intervened generation equals one under a hook
written here by module path, ablating nothing equals the clean run bit for bit, the diffs'
probabilities are the model's own teacher-forced ones, resampling is consistent across cached
steps and batches, sampling runs share their random state, and the model comes back unchanged."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ecco
from ecco.causal.interventions import Ablate, applied
from ecco.causal.steering import Steer
from ecco.lm.interventions import prepare
from tests import tiny
from tests.conftest import hand_hook, hook_count

PROMPTS = ["the quick brown fox", "hello"]
NEURONS = {"gpt2": "transformer.h.{}.mlp.c_proj", "llama": "model.layers.{}.mlp.down_proj",
           "t5": "decoder.block.{}.layer.2.DenseReluDense.wo"}
BLOCKS = {"gpt2": "transformer.h.{}", "llama": "model.layers.{}", "t5": "decoder.block.{}"}
N_NEW = 6


def _lm(arch: str, **flags):
    """A tiny model, called once: transformers 5 installs its output-capturing hooks at the first
    call, and keeps them (they count in every hook count after)."""
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False, **flags)
    lm.generate(PROMPTS[0], generate=1)
    return lm


def _zero(columns):
    def edit(x):
        x = x.clone()
        x[..., columns] = 0.0
        return x
    return edit


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-equal, NaN (past an item's end) equal to NaN."""
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def _forced(model, arch: str, prompt: list[int], generated: list[int]) -> np.ndarray:
    """The model's probability of each generated token after its prefix: one teacher-forced pass."""
    with torch.no_grad():
        if arch == "t5":
            logits = model(input_ids=torch.tensor([prompt]), decoder_input_ids=torch.tensor([[0] + generated])).logits[0]
            logits = logits[: len(generated)]
        else:
            logits = model(input_ids=torch.tensor([prompt + generated])).logits[0, len(prompt) - 1 : -1]
    return torch.softmax(logits.double(), -1)[torch.arange(len(generated)), generated].numpy()


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_ablating_nothing_equals_the_clean_run_bit_for_bit(arch):
    lm = _lm(arch, activations=True)
    plain = lm.generate(PROMPTS, generate=N_NEW)
    for interventions in ([Ablate(1, neurons=[])], [Ablate(0, heads=[])], []):
        out = lm.generate(PROMPTS, generate=N_NEW, interventions=interventions)
        for run in (out, out.clean):
            assert [s.token_ids for s in run.sequences] == [s.token_ids for s in plain.sequences]
            assert _same(run.token_probs, plain.token_probs) and _same(run.token_entropy, plain.token_entropy)
            assert all(_same(run.hidden_states[k], plain.hidden_states[k]) for k in plain.hidden_states)
            assert all(np.array_equal(run.activations[k], plain.activations[k], equal_nan=True) for k in plain.activations)
        for diff in out.intervention_diffs:
            assert diff.clean_ids == diff.intervened_ids and np.array_equal(diff.clean_probs, diff.intervened_probs)
            assert not diff.changes.any() or np.abs(diff.changes).max() < 1e-6  # cached vs teacher-forced rounding


@pytest.mark.parametrize("arch, intervention, path, columns", [
    ("gpt2", Ablate(1, neurons=[2, 9, 40]), NEURONS["gpt2"].format(1), [2, 9, 40]),
    ("llama", Ablate(0, heads=[1]), "model.layers.0.self_attn.o_proj", list(range(8, 16))),
    ("t5", Ablate(1, neurons=[0, 3]), NEURONS["t5"].format(1), [0, 3]),
    ("t5", Ablate(0, neurons=[1, 5], stack="encoder"), "encoder.block.0.layer.1.DenseReluDense.wo", [1, 5]),
])
def test_the_intervened_generation_equals_a_hook_by_module_path(arch, intervention, path, columns):
    lm = _lm(arch)
    hooks = hook_count(lm.model)
    out = lm.generate(PROMPTS, generate=N_NEW, interventions=[intervention])
    with hand_hook(lm.model, path, _zero(columns)):
        expected = lm.generate(PROMPTS, generate=N_NEW)
    assert [s.token_ids for s in out.sequences] == [s.token_ids for s in expected.sequences]
    assert _same(out.token_probs, expected.token_probs)
    assert hook_count(lm.model) == hooks and not lm.model.training
    beams = lm.generate(PROMPTS, generate=N_NEW, beam_size=2, interventions=[intervention])
    with hand_hook(lm.model, path, _zero(columns)):
        expected = lm.generate(PROMPTS, generate=N_NEW, beam_size=2)
    assert [s.token_ids for s in beams.sequences] == [s.token_ids for s in expected.sequences]


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_the_diffs_hold_the_models_own_probabilities(arch):
    lm = _lm(arch)
    vector = np.random.default_rng(2).normal(size=32)
    out = lm.generate(PROMPTS, generate=N_NEW, interventions=[Steer(1, vector, scale=20.0)])
    assert any(d.clean_ids != d.intervened_ids for d in out.intervention_diffs)
    assert out.intervention_diffs[0].descriptions == [
        f"add 20 × steering vector (|v| = {np.linalg.norm(vector):.3g}) to the residual after "
        f"{'decoder ' if arch == 't5' else ''}layer 1"]

    def steer(x):
        return x + 20.0 * torch.as_tensor(vector, dtype=x.dtype)

    for i, diff in enumerate(out.intervention_diffs):
        assert diff.prompt_ids == tiny.tokenizer()(PROMPTS[i])["input_ids"]
        assert out.clean.sequences[i].token_ids[-len(diff.clean_ids):] == diff.clean_ids
        assert out.sequences[i].token_ids[-len(diff.intervened_ids):] == diff.intervened_ids
        assert np.allclose(diff.clean_probs, _forced(lm.model, arch, diff.prompt_ids, diff.clean_ids), rtol=1e-5, atol=0)
        assert np.allclose(diff.intervened_clean_probs, _forced(lm.model, arch, diff.prompt_ids, diff.intervened_ids),
                           rtol=1e-5, atol=0)  # batched and padded there, one sequence here
        with hand_hook(lm.model, BLOCKS[arch].format(1), steer, pre=False):
            steered = _forced(lm.model, arch, diff.prompt_ids, diff.intervened_ids)
        assert np.allclose(diff.intervened_probs, steered, rtol=1e-5, atol=0)
        assert np.array_equal(diff.changes, diff.intervened_probs - diff.intervened_clean_probs)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_captured_hidden_states_hold_the_steered_residual(arch):
    lm = _lm(arch)
    vector = np.random.default_rng(3).normal(size=32)
    out = lm.generate(PROMPTS[0], generate=2, interventions=[Steer(0, vector, scale=3.0)])
    after, clean = out.hidden_states["decoder"][0, 1].double(), out.clean.hidden_states["decoder"][0, 1].double()
    same_input = 1 if arch == "t5" else len(tiny.tokenizer()(PROMPTS[0])["input_ids"])  # the start token / the prompt
    assert (after[:same_input] - clean[:same_input] - 3.0 * torch.as_tensor(vector)).abs().max() < 1e-5


def _edited(lm, arch, ids, intervention, columns):
    """The ablated neurons' values over ``ids`` in one forward pass (no cache) with ``intervention``."""
    rows = []

    def keep(x):
        rows.append(x[0, :, columns].detach().clone())
        return x

    with applied(prepare(lm, [intervention]), [0]), hand_hook(lm.model, NEURONS[arch].format(1), keep), torch.no_grad():
        lm.model(input_ids=torch.tensor([ids]))
    return rows[0]


def test_resampling_is_the_same_in_cached_steps_a_full_pass_and_a_batch():
    lm = _lm("llama", activations=True)
    reference = ["the keys to the cabinet are on the table.", "heathrow airport"]
    columns = [3, 7, 30]
    ablate = Ablate(1, neurons=columns, how="resample", reference=reference, seed=4)
    out = lm.generate(PROMPTS, generate=N_NEW, interventions=[ablate])
    again = lm.generate(PROMPTS, generate=N_NEW, interventions=[ablate])
    alone = lm.generate(PROMPTS[1], generate=N_NEW, interventions=[ablate])
    assert [s.token_ids for s in out.sequences] == [s.token_ids for s in again.sequences]
    assert out.sequences[1].token_ids == alone.sequences[0].token_ids
    assert _same(out.token_probs[1], alone.token_probs[0])
    for i, seq in enumerate(out.sequences):
        captured = torch.as_tensor(out.activations["decoder"][i, 1][columns, : len(seq)]).T.double()
        full = _edited(lm, "llama", seq.token_ids, ablate, columns).double()
        assert (captured - full).abs().max() < 1e-5  # each position took the same reference row as a full pass
    with pytest.raises(ValueError, match="beam_size=1"):
        lm.generate(PROMPTS, generate=2, beam_size=2, interventions=[ablate])


def test_sampling_runs_start_from_the_same_random_state():
    lm = _lm("gpt2")
    ablate = Ablate(1, neurons=list(range(0, 128, 2)))
    torch.manual_seed(3)
    out = lm.generate(PROMPTS, generate=N_NEW, do_sample=True, top_k=50, interventions=[ablate])
    torch.manual_seed(3)
    clean = lm.generate(PROMPTS, generate=N_NEW, do_sample=True, top_k=50)
    torch.manual_seed(3)
    with hand_hook(lm.model, NEURONS["gpt2"].format(1), _zero(list(range(0, 128, 2)))):
        hooked = lm.generate(PROMPTS, generate=N_NEW, do_sample=True, top_k=50)
    assert [s.token_ids for s in out.clean.sequences] == [s.token_ids for s in clean.sequences]
    assert [s.token_ids for s in out.sequences] == [s.token_ids for s in hooked.sequences]
    nothing = lm.generate(PROMPTS, generate=N_NEW, do_sample=True, interventions=[Ablate(1, neurons=[])])
    assert [s.token_ids for s in nothing.sequences] == [s.token_ids for s in nothing.clean.sequences]


class _Boom(Steer):
    """A steering whose edit fails while the model runs."""

    def edit(self, site, reference, positions):
        def fail(x):
            raise RuntimeError("boom")
        return fail


def test_the_model_comes_back_unchanged_after_errors():
    lm = _lm("gpt2")
    lm.model.train()
    hooks = hook_count(lm.model)
    with pytest.raises(RuntimeError, match="boom"):
        lm.generate(PROMPTS, generate=2, interventions=[Ablate(0, neurons=[1]), _Boom(0, np.ones(32))])
    assert hook_count(lm.model) == hooks and lm.model.training
    with pytest.raises(ValueError, match="attribution="):
        lm.generate(PROMPTS, generate=2, attribution=["grad_x_input"], interventions=[Ablate(0, neurons=[1])])
    with pytest.raises(ValueError, match="list of ecco.Ablate"):
        lm.generate(PROMPTS, generate=2, interventions="ablate")
    assert hook_count(lm.model) == hooks and lm.model.training
    single = lm.generate(PROMPTS[0], generate=2, interventions=Ablate(0, neurons=[1]))
    assert len(single.intervention_diffs) == 1
    assert hook_count(lm.model) == hooks and lm.model.training  # after a success too


def test_save_keeps_the_diffs_and_says_the_clean_run_is_not_saved(tmp_path):
    lm = _lm("gpt2")
    out = lm.generate(PROMPTS, generate=N_NEW, interventions=[Steer(1, np.ones(32), scale=30.0)])
    with pytest.warns(UserWarning, match="output.clean"):
        path = out.save(tmp_path / "out.ecco.safetensors")
    loaded = ecco.load(path, lm=lm)
    assert loaded.clean is None and len(loaded.intervention_diffs) == 2
    for a, b in zip(out.intervention_diffs, loaded.intervention_diffs):
        assert (a.descriptions, a.prompt_ids, a.clean_ids, a.intervened_ids) == \
            (b.descriptions, b.prompt_ids, b.clean_ids, b.intervened_ids)
        assert all(np.array_equal(getattr(a, f), getattr(b, f)) and getattr(b, f).dtype == np.float64
                   for f in ("clean_probs", "intervened_probs", "intervened_clean_probs"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out.clean.save(tmp_path / "clean.ecco.safetensors")  # a plain output saves without a warning


def test_the_diff_view_shows_the_changed_tokens():
    pytest.importorskip("ecco.views.interventions")
    lm = _lm("gpt2")
    out = lm.generate(PROMPTS, generate=N_NEW, interventions=[Steer(1, np.ones(32), scale=30.0)])
    diff = out.intervention_diffs[1]
    data = out.intervention_diff(sequence=1, printJson=True)
    assert data["interventions"] == diff.descriptions
    assert [t["id"] for t in data["intervened"]] == diff.intervened_ids
    assert "".join(t["text"] for t in data["intervened"]) == tiny.tokenizer().decode(diff.intervened_ids)
    assert data["changed"] == sum(j2 - j1 for tag, _, _, j1, j2 in diff.ops() if tag != "equal")
    with pytest.raises(ValueError, match="sequence=2"):
        out.intervention_diff(sequence=2)
    with pytest.raises(ValueError, match="no interventions"):
        lm.generate(PROMPTS, generate=2).intervention_diff()


def test_reruns_of_an_intervened_output_are_refused():
    """A lazy attribution (or any rerun) would use the model without the interventions: refused,
    while the clean run can still be attributed."""
    lm = _lm("gpt2")
    hooks = hook_count(lm.model)
    out = lm.generate(PROMPTS[0], generate=2, interventions=[Ablate(1, neurons=[0, 3])])
    with pytest.raises(ValueError, match="generated with interventions"):
        out.primary_attributions(attr_method="grad_x_input", printJson=True)
    with pytest.raises(ValueError, match="generated with interventions"):
        out.runner("The neuron view")
    assert len(out.clean.primary_attributions(attr_method="grad_x_input", printJson=True)["attributions"]) == 2
    assert hook_count(lm.model) == hooks


def test_lm_steering_vector_is_the_contrast_of_the_residuals():
    lm = _lm("llama")
    ids = [tiny.tokenizer()(text)["input_ids"] for text in ("the city of london", "the lazy dog")]
    with torch.no_grad():
        states = [lm.model(input_ids=torch.tensor([i]), output_hidden_states=True).hidden_states[2][0].double() for i in ids]
    vector = lm.steering_vector("the city of london", "the lazy dog", layer=1)
    assert np.abs(vector - (states[0].mean(0) - states[1].mean(0)).numpy()).max() < 1e-5
    last = lm.steering_vector("the city of london", "the lazy dog", layer=1, reduce="last")
    assert np.abs(last - (states[0][-1] - states[1][-1]).numpy()).max() < 1e-5
    with pytest.raises(ValueError, match="layer"):
        lm.steering_vector("a", "b", layer=7)


def test_positions_limit_an_intervention_to_those_tokens():
    """Ablation at prompt positions 1 and 2 equals a hand hook that zeroes only there (the prompt
    runs in the first, uncached pass); steering at position 0 moves only that token's residual."""
    lm = _lm("gpt2")
    prompt = PROMPTS[0]
    columns = list(range(0, 128, 3))
    out = lm.generate(prompt, generate=N_NEW, interventions=[Ablate(1, neurons=columns, positions=[2, 1])])

    def zero_there(x):
        if x.shape[1] == 1:  # a cached step: a generated token, not position 1 or 2
            return x
        x = x.clone()
        x[:, 1:3, columns] = 0.0
        return x

    with hand_hook(lm.model, NEURONS["gpt2"].format(1), zero_there):
        expected = lm.generate(prompt, generate=N_NEW)
    assert out.sequences[0].token_ids == expected.sequences[0].token_ids
    assert _same(out.token_probs, expected.token_probs)
    whole = lm.generate(prompt, generate=N_NEW, interventions=[Ablate(1, neurons=columns)])
    assert not _same(whole.token_probs, out.token_probs)  # the limit matters
    vector = np.random.default_rng(5).normal(size=32)
    steered = lm.generate(prompt, generate=2, interventions=[Steer(0, vector, scale=2.0, positions=[0])])
    after, clean = steered.hidden_states["decoder"][0, 1].double(), steered.clean.hidden_states["decoder"][0, 1].double()
    assert (after[0] - clean[0] - 2.0 * torch.as_tensor(vector)).abs().max() < 1e-5
    assert (Ablate(1, neurons=[0], positions=[3, 4]).describe().endswith("at positions 3, 4"))
    with pytest.raises(ValueError, match="positions"):
        Ablate(1, neurons=[0], positions=[-1])
