"""NumPy integers (and 0-d torch integer tensors) are integers for every integer argument; bool,
floats and arrays are refused with an error that says an integer was expected."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ecco
from ecco.attribution import Options
from ecco.checks import as_int, as_ints, is_int
from tests import tiny

PROMPT = "the quick brown fox"


# ------------------------------------------------------------------ the helper
@pytest.mark.parametrize(
    "value",
    [3, np.int64(3), np.int32(3), np.uint8(3), np.int16(3), np.array(3), torch.tensor(3), torch.tensor(3, dtype=torch.int32)],
)
def test_integers_of_every_library_are_integers(value):
    assert is_int(value)
    out = as_int(value, "x", 0, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize(
    "value",
    [True, False, np.bool_(True), torch.tensor(True), 3.0, np.float64(3), torch.tensor(3.0), np.array([3]),
     torch.tensor([3]), "3", None, [3]],
)
def test_non_integers_are_refused_with_their_type(value):
    assert not is_int(value)
    with pytest.raises(ValueError, match=r"x must be an integer .*got"):
        as_int(value, "x")


def test_bounds_are_inclusive_and_named():
    assert as_int(np.int64(0), "x", 0, 2) == 0 and as_int(np.int64(2), "x", 0, 2) == 2
    with pytest.raises(ValueError, match=r"x=3 is out of range: valid values are 0\.\.2"):
        as_int(np.int64(3), "x", 0, 2)
    with pytest.raises(ValueError, match="must be at least 1"):
        as_int(0, "x", 1)
    with pytest.raises(ValueError, match="custom"):
        as_int(-1, "x", 0, 2, "custom")


def test_sequences_of_integers():
    assert as_ints(np.arange(3), "xs") == [0, 1, 2]
    assert as_ints(torch.arange(3), "xs") == [0, 1, 2]
    assert as_ints((np.int64(4), 1), "xs") == [4, 1]
    for bad in (3, "012", np.zeros((2, 2), dtype=int), [1, True], [1.0]):
        with pytest.raises(ValueError):
            as_ints(bad, "xs")


# ---------------------------------------------------------------- through ecco
@pytest.fixture(scope="module")
def lm():
    return ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, attention=True, verbose=False)


@pytest.fixture(scope="module")
def output(lm):
    return lm.generate([PROMPT, "a cat"], generate=3, min_new_tokens=3, attribution=["grad_x_input"])


def _python_types(data) -> None:
    """Every number in view data is a plain Python int / float / bool (what the renderers expect)."""
    if isinstance(data, dict):
        for value in data.values():
            _python_types(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            _python_types(value)
    else:
        assert data is None or type(data) in (int, float, bool, str), type(data)


def _data(result):
    return result.data if hasattr(result, "data") else result


# (method, keyword arguments with integers): each is called with Python ints (the reference), then
# with the same numbers as NumPy integers and as 0-d torch tensors.
CALLS = [
    ("layer_predictions", dict(position=4, layer=1, topk=5, sequence=1)),
    ("layer_predictions", dict(position=3, topk=3)),
    ("rankings", dict(sequence=1)),
    ("rankings_watch", dict(watch=[5, 7], position=3, sequence=0)),
    ("top_neurons", dict(position=2, k=4, sequence=1)),
    ("neuron_view", dict(layer=1, neuron=3, sequence=1)),
    ("tokens_view", dict(sequence=1)),
    ("primary_attributions", dict(ignore_tokens=[0, 2], sequence=1)),
    ("attention_head_view", dict(layer=1, heads=[0, 1], sequence=1)),
    ("attention_neuron_view", dict(layer=1, head=1, selected=2, sequence=1)),
]


def _convert(kwargs: dict, kind) -> dict:
    def one(v):
        if isinstance(v, list):
            return np.array(v) if kind is np.int64 else [one(x) for x in v]
        return kind(v) if isinstance(v, int) else v

    return {k: one(v) for k, v in kwargs.items()}


@pytest.mark.parametrize("kind", [np.int64, np.int32, torch.tensor], ids=["int64", "int32", "torch"])
@pytest.mark.parametrize("name, kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_views_take_numpy_and_torch_integers(output, name, kwargs, kind):
    reference = _data(getattr(output, name)(**kwargs))
    got = _data(getattr(output, name)(**_convert(kwargs, kind)))
    _python_types(got)
    assert json.dumps(got, default=str, sort_keys=True) == json.dumps(reference, default=str, sort_keys=True)


def test_layer_predictions_at_an_argmax_position(output):
    """The issue's example: a position found with np.argmax."""
    probs = output.token_probs[0].numpy()
    position = output.n_input_tokens[0] + np.argmax(probs)  # the most confident generated token
    rows = output.layer_predictions(position=position, printJson=True)
    assert rows == output.layer_predictions(position=int(position), printJson=True)


def test_word_attributions_and_decompositions(output):
    assert output.word_attributions(sequence=np.int64(1))["targets"] == output.word_attributions(sequence=1)["targets"]
    nmf = output.run_nmf(n_components=np.int64(2), from_layer=np.int64(0), to_layer=np.int64(2), sequences=np.array([1]))
    ref = output.run_nmf(n_components=2, from_layer=0, to_layer=2, sequences=[1])
    assert nmf.n_components == 2 and type(nmf.n_components) is int
    np.testing.assert_array_equal(nmf.components, ref.components)
    assert nmf.selection.sequences == [1] and type(nmf.selection.sequences[0]) is int
    _python_types(nmf.explore(printJson=True))
    excluded = output.run_nmf(n_components=2, exclude=[np.int64(0)], sequences=[0])
    assert excluded.selection.excluded == [(0, 0)]
    np.testing.assert_array_equal(output.layer_similarity(sequences=np.array([0, 1]), printJson=True),
                                  output.layer_similarity(sequences=[0, 1], printJson=True))


def test_activation_layers_from_a_numpy_array(tokenizer):
    lm = ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, activations_layer_nums=np.arange(1, 3), verbose=False)
    assert lm.activation_layers == {"decoder": [1, 2]}
    out = lm.generate(PROMPT, generate=np.int64(2), min_new_tokens=2)
    assert out.activation_layers == {"decoder": [1, 2]} and out.activations["decoder"].shape[1] == 2
    with pytest.raises(ValueError, match="activations_layer_nums.*integer"):
        ecco.from_model(tiny.model("gpt2"), tokenizer, activations=True, activations_layer_nums=[0, 1.5])


def test_generate_and_options_take_numpy_integers(lm):
    a = lm.generate(PROMPT, generate=np.int64(2), beam_size=np.int64(1))
    b = lm.generate(PROMPT, max_length=np.int64(len(a.sequences[0].token_ids)))
    assert a.sequences[0].token_ids == b.sequences[0].token_ids
    options = Options(n_steps=np.int64(8), internal_batch_size=np.int32(2), gradcam_layer=np.int64(-1), seed=np.uint8(1))
    assert (options.n_steps, options.internal_batch_size, options.gradcam_layer, options.seed) == (8, 2, -1, 1)
    assert type(options.n_steps) is int
    ig = lm.attribute(PROMPT, " jumps", attribution=["ig"], n_steps=np.int64(8))
    reference = lm.attribute(PROMPT, " jumps", attribution=["ig"], n_steps=8)
    np.testing.assert_array_equal(ig.attributions["ig"].raw[0][0], reference.attributions["ig"].raw[0][0])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda o: o.layer_predictions(position=True), "position must be an integer"),
        (lambda o: o.layer_predictions(position=3.0), "position must be an integer"),
        (lambda o: o.layer_predictions(position=4, layer=np.float32(1)), "layer must be an integer"),
        (lambda o: o.layer_predictions(position=4, topk=False), "topk must be an integer"),
        (lambda o: o.top_neurons(position=2, k=True), "k must be an integer"),
        (lambda o: o.neuron_view(layer=True, neuron=0), "layer must be an integer"),
        (lambda o: o.neuron_view(layer=1, neuron=np.array([1])), "neuron must be an integer"),
        (lambda o: o.tokens_view(sequence=np.bool_(False)), "sequence must be an integer"),
        (lambda o: o.rankings_watch(watch=[True], position=3), "watch entry True"),
        (lambda o: o.primary_attributions(ignore_tokens=[1.0]), "ignore_tokens entries"),
        (lambda o: o.attention_head_view(layer=0, heads=[True]), "heads entry must be an integer"),
        (lambda o: o.run_nmf(n_components=True), "n_components must be 'auto' or an integer"),
        (lambda o: o.run_nmf(n_components=2, from_layer=np.float64(0)), "from_layer must be an integer"),
        (lambda o: o.layer_predictions(position=np.int64(99)), "position=99 is out of range"),
        (lambda o: o.neuron_view(layer=np.int64(1), neuron=np.int64(10**6)), "neuron=1000000 is out of range"),
    ],
)
def test_bools_floats_and_arrays_are_refused(output, call, message):
    with pytest.raises(ValueError, match=message):
        call(output)


def test_options_refuse_bools_and_floats():
    for options, message in [
        (dict(n_steps=True), "n_steps must be a positive integer"),
        (dict(n_steps=2.5), "n_steps must be a positive integer"),
        (dict(internal_batch_size=np.float64(2)), "internal_batch_size must be an integer"),
        (dict(gradcam_layer=False), "gradcam_layer must be an integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            Options(**options)


def test_transformers_generate_options_take_numpy_integers(lm):
    """transformers' own checks want Python ints (top_k, min_new_tokens): ecco converts them."""
    torch.manual_seed(0)
    a = lm.generate(PROMPT, generate=np.int64(3), min_new_tokens=np.int64(3), do_sample=True, top_k=np.int64(5))
    torch.manual_seed(0)
    b = lm.generate(PROMPT, generate=3, min_new_tokens=3, do_sample=True, top_k=5)
    assert a.sequences[0].token_ids == b.sequences[0].token_ids and len(a.sequences[0]) == len(b.sequences[0])
    with pytest.raises(ValueError, match="beam_size"):
        lm.generate(PROMPT, generate=2, num_beams=2)
