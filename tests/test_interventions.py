"""Ablation and steering specs, on one forward pass: each equals a hook written here by module path
(the model's own logits), the direction and steering rules hold on the activations, the factor
helpers read the factors' loadings, and bad input is refused with the model left as it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.causal.interventions import Ablate, applied
from ecco.causal.steering import Steer
from ecco.lm.interventions import prepare, steering_vector
from tests import tiny
from tests.conftest import hand_hook, hook_count

TEXT = "heathrow airport is located in the city of"
REFERENCE = ["the quick brown fox jumps over the lazy dog.", "hello world, this is a test"]
# The inputs of the FFN and attention output projections, written out by module path.
NEURONS = {"gpt2": "transformer.h.{}.mlp.c_proj", "llama": "model.layers.{}.mlp.down_proj",
           "t5": "decoder.block.{}.layer.2.DenseReluDense.wo", "t5-encoder": "encoder.block.{}.layer.1.DenseReluDense.wo"}
HEADS = {"gpt2": ("transformer.h.{}.attn.c_proj", 8), "llama": ("model.layers.{}.self_attn.o_proj", 8),
         "t5": ("decoder.block.{}.layer.0.SelfAttention.o", 8)}
BLOCKS = {"gpt2": "transformer.h.{}", "llama": "model.layers.{}", "t5": "decoder.block.{}"}


@pytest.fixture(scope="module", params=["gpt2", "llama", "t5"])
def arch_lm(request):
    return request.param, ecco.from_model(tiny.model(request.param), tiny.tokenizer(), verbose=False)


def _ids(text: str | list[int]) -> list[int]:
    return tiny.tokenizer()(text)["input_ids"] if isinstance(text, str) else text


def _inputs(arch: str, text: str) -> dict:
    ids = torch.tensor([_ids(text)])
    if arch == "t5":  # the decoder reads the text after its start token
        return dict(input_ids=ids, decoder_input_ids=torch.cat([torch.zeros((1, 1), dtype=torch.long), ids], 1))
    return dict(input_ids=ids)


def _logits(lm, arch: str, text: str = TEXT, interventions=()) -> torch.Tensor:
    with applied(prepare(lm, list(interventions)), [0]), torch.no_grad():
        return lm.model(**_inputs(arch, text)).logits[0]


def _seen(model, path: str, arch: str, texts, pre: bool = True) -> torch.Tensor:
    """A module's (pre: input, else output) over every position of ``texts``, from a hook written here."""
    rows = []

    def keep(x):
        rows.append(x[0].detach().clone())
        return x

    with hand_hook(model, path, keep, pre), torch.no_grad():
        for text in texts:
            model(**_inputs(arch, text))
    return torch.cat(rows).double()


def _set(columns, values=None):
    def edit(x):
        x = x.clone()
        x[..., columns] = 0.0 if values is None else values[columns].to(x.dtype)
        return x
    return edit


def test_zero_ablation_of_neurons_and_heads_equals_hooks_by_module_path(arch_lm):
    arch, lm = arch_lm
    clean = _logits(lm, arch)
    path = NEURONS[arch].format(1)
    with hand_hook(lm.model, path, _set([0, 5, 7])), torch.no_grad():
        expected = lm.model(**_inputs(arch, TEXT)).logits[0]
    found = _logits(lm, arch, interventions=[Ablate(1, neurons=[5, 7, 0])])
    assert (found - expected).abs().max() <= 1e-6 and (found - clean).abs().max() > 1e-4
    path, size = HEADS[arch]
    columns = [h * size + j for h in (1, 3) for j in range(size)]
    with hand_hook(lm.model, path.format(0), _set(columns)), torch.no_grad():
        expected = lm.model(**_inputs(arch, TEXT)).logits[0]
    found = _logits(lm, arch, interventions=[Ablate(0, heads=[3, 1])])
    assert (found - expected).abs().max() <= 1e-6 and (found - clean).abs().max() > 1e-4


def test_encoder_ablation_of_an_encoder_decoder():
    lm = ecco.from_model(tiny.model("t5"), tiny.tokenizer(), verbose=False)
    with hand_hook(lm.model, NEURONS["t5-encoder"].format(0), _set([2, 9])), torch.no_grad():
        expected = lm.model(**_inputs("t5", TEXT)).logits[0]
    found = _logits(lm, "t5", interventions=[Ablate(0, neurons=[2, 9], stack="encoder")])
    assert (found - expected).abs().max() <= 1e-6 and (found - _logits(lm, "t5")).abs().max() > 1e-4


def test_mean_ablation_uses_the_reference_texts_mean(arch_lm):
    arch, lm = arch_lm
    path = NEURONS[arch].format(2 if arch != "t5" else 1)
    mean = _seen(lm.model, path, arch, REFERENCE).mean(0)
    with hand_hook(lm.model, path, _set([1, 4], mean)), torch.no_grad():
        expected = lm.model(**_inputs(arch, TEXT)).logits[0]
    found = _logits(lm, arch, interventions=[Ablate(2 if arch != "t5" else 1, neurons=[1, 4], how="mean",
                                                    reference=REFERENCE)])
    assert (found - expected).abs().max() <= 1e-6
    # A precomputed mean array, and token ids, give the same.
    given = _logits(lm, arch, interventions=[Ablate(2 if arch != "t5" else 1, neurons=[1, 4], how="mean",
                                                    reference=mean.numpy())])
    ids = _logits(lm, arch, interventions=[Ablate(2 if arch != "t5" else 1, neurons=[1, 4], how="mean",
                                                  reference=[_ids(t) for t in REFERENCE])])
    assert (given - expected).abs().max() <= 1e-6 and torch.equal(ids, found)


def test_mean_ablation_of_heads_from_texts():
    lm = ecco.from_model(tiny.model("llama"), tiny.tokenizer(), verbose=False)
    path, size = HEADS["llama"]
    mean = _seen(lm.model, path.format(1), "llama", REFERENCE).mean(0)
    columns = list(range(2 * size, 3 * size))
    with hand_hook(lm.model, path.format(1), _set(columns, mean)), torch.no_grad():
        expected = lm.model(**_inputs("llama", TEXT)).logits[0]
    found = _logits(lm, "llama", interventions=[Ablate(1, heads=[2], how="mean", reference=REFERENCE)])
    assert (found - expected).abs().max() <= 1e-6


def test_mean_ablation_from_a_corpus_run_uses_its_stored_means(tmp_path):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    run = lm.run_corpus(tiny.CORPUS[:4], tmp_path / "run", layers=[1], dtype="float32")
    stored = run.activations(1).astype(np.float64).mean(0)  # every stored token's activations, averaged here
    ablation = Ablate(1, neurons=[3, 8], how="mean", reference=run)
    (prepared,) = prepare(lm, [ablation])
    assert np.allclose(prepared.reference.numpy(), stored, rtol=1e-6, atol=1e-7)
    with hand_hook(lm.model, NEURONS["gpt2"].format(1), _set([3, 8], torch.as_tensor(stored))), torch.no_grad():
        expected = lm.model(**_inputs("gpt2", TEXT)).logits[0]
    assert (_logits(lm, "gpt2", interventions=[ablation]) - expected).abs().max() <= 1e-6
    factors = run.fit_factors("nmf", n_components=2, layers=[1])
    unit = factors.reconstruct(np.array([[0.0, 1.0]]))[0]  # the corpus factors' own reconstruction of one unit
    steer = Steer.factor(factors, 1, 1, scale=2.0)
    assert np.allclose(steer.vector, unit) and steer.site == "neurons" and steer.stack == "decoder"
    with pytest.raises(ValueError, match="no summary of ffn.decoder.0"):
        prepare(lm, [Ablate(0, neurons=[1], how="mean", reference=run)])
    with pytest.raises(ValueError, match=r"run.activations\(1\)"):
        prepare(lm, [Ablate(1, neurons=[1], how="resample", reference=run)])
    with pytest.raises(ValueError, match="not attention heads"):
        prepare(lm, [Ablate(1, heads=[1], how="mean", reference=run)])


def _edited_and_clean(lm, arch, layer, interventions):
    """The neuron activations of ``layer`` over TEXT with and without the interventions (a hook
    written here, placed after ecco's, sees what the layer's projection reads)."""
    path = NEURONS[arch].format(layer)
    clean = _seen(lm.model, path, arch, [TEXT])
    with applied(prepare(lm, interventions), [0]):
        edited = _seen(lm.model, path, arch, [TEXT])
    return edited, clean


def test_direction_ablation_replaces_the_projection_and_keeps_the_rest(arch_lm):
    arch, lm = arch_lm
    width = _seen(lm.model, NEURONS[arch].format(1), arch, [TEXT]).shape[1]
    direction = np.random.default_rng(0).normal(size=width)
    u = torch.as_tensor(direction / np.linalg.norm(direction))
    edited, clean = _edited_and_clean(lm, arch, 1, [Ablate(1, direction=direction)])
    assert (edited @ u).abs().max() < 1e-5

    def rest(x):
        return x - (x @ u)[:, None] * u

    assert (rest(edited) - rest(clean)).abs().max() < 1e-5
    mean = _seen(lm.model, NEURONS[arch].format(1), arch, REFERENCE).mean(0)
    edited, _ = _edited_and_clean(lm, arch, 1, [Ablate(1, direction=direction, how="mean", reference=REFERENCE)])
    assert ((edited @ u) - mean @ u).abs().max() < 1e-5 and (rest(edited) - rest(clean)).abs().max() < 1e-5


def test_resample_takes_every_position_from_one_reference_position():
    lm = ecco.from_model(tiny.model("llama"), tiny.tokenizer(), verbose=False)
    pool = _seen(lm.model, NEURONS["llama"].format(1), "llama", REFERENCE)
    columns = [0, 6, 11]
    edited, clean = _edited_and_clean(lm, "llama", 1, [Ablate(1, neurons=columns, how="resample", reference=REFERENCE)])
    again, _ = _edited_and_clean(lm, "llama", 1, [Ablate(1, neurons=columns, how="resample", reference=REFERENCE)])
    other, _ = _edited_and_clean(lm, "llama", 1, [Ablate(1, neurons=columns, how="resample", reference=REFERENCE,
                                                         seed=1)])
    assert torch.equal(edited, again) and not torch.equal(edited, other)
    kept = [i for i in range(pool.shape[1]) if i not in columns]
    assert torch.equal(edited[:, kept], clean[:, kept])  # the first edited layer: its other neurons are as clean
    rows = []
    for position in edited[:, columns]:
        distance = (pool[:, columns] - position).abs().max(-1).values
        assert distance.min() < 1e-6  # the values of one reference position, all neurons from the same one
        rows.append(int(distance.argmin()))
    assert len(set(rows)) > 1


def test_steering_adds_the_vector_to_the_residual_after_the_block(arch_lm):
    arch, lm = arch_lm
    hidden = lm.model.config.hidden_size if arch != "t5" else lm.model.config.d_model
    vector = np.random.default_rng(1).normal(size=hidden)
    block = BLOCKS[arch].format(1)
    clean = _seen(lm.model, block, arch, [TEXT], pre=False)
    with applied(prepare(lm, [Steer(1, vector, scale=2.5)]), [0]):
        steered = _seen(lm.model, block, arch, [TEXT], pre=False)
    assert (steered - clean - 2.5 * torch.as_tensor(vector)).abs().max() < 1e-5
    with hand_hook(lm.model, block, lambda x: x + 2.5 * torch.as_tensor(vector, dtype=x.dtype), pre=False), torch.no_grad():
        expected = lm.model(**_inputs(arch, TEXT)).logits[0]
    assert (_logits(lm, arch, interventions=[Steer(1, vector, scale=2.5)]) - expected).abs().max() <= 1e-6
    width = NEURONS[arch].format(0)
    neurons = _seen(lm.model, width, arch, [TEXT]).shape[1]
    add = np.arange(neurons, dtype=float)
    with hand_hook(lm.model, width, lambda x: x + torch.as_tensor(add, dtype=x.dtype)), torch.no_grad():
        expected = lm.model(**_inputs(arch, TEXT)).logits[0]
    assert (_logits(lm, arch, interventions=[Steer(0, add, site="neurons")]) - expected).abs().max() <= 1e-6


@pytest.mark.parametrize("reduce", ["mean", "last"])
def test_steering_vector_is_the_contrast_of_the_hidden_states(reduce):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    positive, negative = ["the quick brown fox", "hello world"], "the keys to the cabinet"

    def side(texts):
        rows = []
        for text in [texts] if isinstance(texts, str) else texts:
            with torch.no_grad():
                states = lm.model(**_inputs("gpt2", text), output_hidden_states=True).hidden_states[2][0].double()
            rows.append(states.mean(0) if reduce == "mean" else states[-1])
        return torch.stack(rows).mean(0)

    found = steering_vector(lm, positive, negative, 1, reduce)
    assert np.allclose(found, (side(positive) - side(negative)).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        steering_vector(lm, positive, negative, 1, "max")
    with pytest.raises(ValueError, match="layers 0..2"):
        steering_vector(lm, positive, negative, 3)


def test_factor_helpers_read_the_factors_loadings():
    lm = ecco.from_model(tiny.model("llama"), tiny.tokenizer(), activations=True, verbose=False)
    output = lm.generate(TEXT, generate=4)
    for nonneg in ("clip", "split"):
        nmf = output.run_nmf(n_components=3, from_layer=1, to_layer=3, nonneg=nonneg)
        codes = np.zeros((1, 3))
        codes[0, 2] = 1.0
        rebuilt = nmf.model.inverse_transform(codes)[0]  # scikit-learn's reconstruction of one unit of factor 2
        if nonneg == "split":
            rebuilt = rebuilt[: len(rebuilt) // 2] - rebuilt[len(rebuilt) // 2 :]
        on_layer_2 = rebuilt.reshape(2, -1)[1]
        steer = Steer.factor(nmf, 2, 2, scale=3.0)
        assert steer.site == "neurons" and steer.stack == "decoder" and np.allclose(steer.vector, on_layer_2)
        ablate = Ablate.factor(nmf, 2, 2)
        assert np.allclose(ablate.direction, on_layer_2) and "NMF factor 2" in ablate.describe()
    with pytest.raises(ValueError, match="not layer 0"):
        Ablate.factor(nmf, 0, 0)
    with pytest.raises(ValueError, match="k=5 is out of range"):
        Steer.factor(nmf, 5, 1)


def test_descriptions():
    assert Ablate(3, neurons=[5, 7], stack="decoder").describe() == "zero-ablate decoder layer 3 neurons 5, 7"
    assert Ablate(2, heads=[], how="mean", reference="x").describe() == "mean-ablate layer 2 heads (none)"
    assert Ablate(0, neurons=range(20)).describe().endswith("7, … (20 in all)")
    assert Steer(6, [0.6, 0.8, 0.0], scale=4.0).describe() == \
        "add 4 × steering vector (|v| = 1) to the residual after layer 6"


BAD_SPECS = [
    (dict(layer=1), "exactly one of"),
    (dict(layer=1, neurons=[1], heads=[2]), "exactly one of"),
    (dict(layer=-1, neurons=[1]), "layer=-1"),
    (dict(layer=1, neurons=[1], how="median"), "Unknown how='median'"),
    (dict(layer=1, neurons=[1], how="mean"), "needs reference="),
    (dict(layer=1, neurons=[1], how="resample"), "needs reference="),
    (dict(layer=1, neurons=[1], reference="text"), "takes none"),
    (dict(layer=1, direction=[0.0, 0.0]), "all zeros"),
    (dict(layer=1, direction=[1.0, float("nan")]), "non-finite"),
    (dict(layer=1, neurons=[1.5]), "integer"),
]


@pytest.mark.parametrize("kwargs, message", BAD_SPECS)
def test_bad_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ablate(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer=1, vector=[1.0, float("inf")]), "non-finite"),
    (dict(layer=1, vector=[1.0], site="logits"), "Unknown component 'logits'"),
    (dict(layer=1, vector=[1.0], scale=float("nan")), "finite number"),
])
def test_bad_steering_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Steer(**kwargs)


@pytest.mark.parametrize("arch, intervention, message", [
    ("gpt2", Ablate(3, neurons=[1]), r"layer=3 is out of range: the decoder has layers 0..2"),
    ("gpt2", Ablate(0, neurons=[128]), r"neurons \[128\] are out of range: decoder layer 0 has neurons 0..127"),
    ("llama", Ablate(0, heads=[4]), r"heads \[4\] are out of range: decoder layer 0 has heads 0..3"),
    ("llama", Ablate(0, direction=np.ones(40)), "direction has 40 values.*length 48"),
    ("llama", Steer(0, np.ones(48)), "vector has 48 values.*length 32"),
    ("gpt2", Ablate(0, neurons=[1], stack="encoder"), "Unknown stack 'encoder'.*decoder"),
    ("t5", Steer(2, np.ones(32), stack="encoder"), "the encoder has layers 0..1"),
    ("gpt2", Ablate(0, neurons=[1], how="mean", reference=np.ones(5)), r"must have shape \(128,\)"),
    ("gpt2", Ablate(0, neurons=[1], how="resample", reference=np.ones(128)), r"shape \('rows', 128\)"),
    ("gpt2", Ablate(0, neurons=[1], how="mean", reference=[0.5, 1.0]), "NumPy array"),
    ("gpt2", Ablate(0, neurons=[1], how="mean", reference={"a": 1}), "The reference of"),
    ("gpt2", Ablate(0, neurons=[1], how="mean", reference=np.full(128, np.nan)), "non-finite"),
    ("gpt2", "neurons 1", "ecco.Ablate or ecco.Steer"),
])
def test_interventions_that_do_not_fit_the_model_are_refused_before_it_runs(arch, intervention, message):
    lm = ecco.from_model(tiny.model(arch), tiny.tokenizer(), verbose=False)
    lm.model.train()
    hooks = hook_count(lm.model)
    with pytest.raises(ValueError, match=message):
        lm.generate(TEXT, generate=2, interventions=[intervention])
    assert hook_count(lm.model) == hooks and lm.model.training
