"""The code samples of the seed material (../shared/seeds/) run as their readers type them.

Only the model names change, to the bundled models that load offline (``smollm2-135m`` for
GPT-2-style causal models, ``minilm-l6`` for BERT), and the prompts are our own texts of the
same shape. Each test names the seed file its statements come from:

- ``001_*`` (a tutorial): ``generate(text, generate=35, do_sample=True)`` then ``saliency()``
  (no attribution asked: computed when the view needs it), then ``run_nmf(10).explore()`` on
  that output. The generate length is the tutorial's (about 15 s on a CPU).
- ``004_*`` (a notebook of a third-party wrapper, ``explainer.lm_layers_explainer``): its entry
  points are thin wrappers of ecco; the tests make the ecco calls they make (``lm(tokenizer
  output)`` + ``run_nmf(n_components=8).explore()``, ``generate(text, generate=1,
  do_sample=False)`` + ``layer_predictions(position=8, layer=5[, topk=20])`` and
  ``rankings_watch(watch=[318, 389], position=5)``), and the attention views it draws with
  bertviz as ecco's own views (head, neuron view of a sentence pair at layer 2 head 0, model view).
- ``000_*`` (a discussion): the matrix NMF factorises is the activations reshaped from (layers,
  neurons, positions) to (layers x neurons, positions); PCA can be used instead.
- ``002_*`` (the README) and ``003_*`` (an article) hold no code; the views they show (rankings,
  layer predictions, watched rankings, detailed attribution, activation similarity) are run here.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco

pytestmark = pytest.mark.integration

# Our own prompt shaped like the tutorial's: a numbered list for the model to continue.
LIST_PROMPT = "Popular libraries for deep learning include: 1. JAX\n2. PyTorch\n3.Keras\n4."


def test_seed_001_saliency_then_nmf_of_a_sampled_generation():
    torch.manual_seed(0)
    # seed 001, first sample
    lm = ecco.from_pretrained("smollm2-135m", activations=True)
    text = LIST_PROMPT
    output = lm.generate(text, generate=35, do_sample=True)
    view = output.saliency()
    # seed 001, second sample (it reuses the first sample's `output`)
    lm = ecco.from_pretrained("smollm2-135m", activations=True)
    text = LIST_PROMPT
    nmf = output.run_nmf(n_components=10)
    explorer = nmf.explore()

    n_generated = len(output.sequences[0]) - output.n_input_tokens
    assert list(output.attributions) == ["grad_x_input"]
    assert len(view.data["attributions"]) == n_generated == len(view.data["targets"])
    for values in view.data["attributions"]:
        assert abs(sum(values) - 1) < 1e-5 and min(values) >= 0
    assert len(explorer.data["factors"]) == 10
    assert len(explorer.data["tokens"]) == len(output.sequences[0])


# Our own multi-sentence text standing in for the notebook's long passage.
LONG_TEXT = " ".join(
    f"On day {n} the keeper counted the boats in the harbour, wrote the number in a small book, and "
    f"walked home along the wall while the lamps were lit one by one." for n in range(1, 9)
)


def test_seed_004_activations_of_an_encoder():
    model = "minilm-l6"
    text = LONG_TEXT
    # what lm_layers_explainer['activations'](model, text) and activations(n_components=8) run
    lm = ecco.from_pretrained(model, activations=True)
    inputs = lm.tokenizer([text], return_tensors="pt")
    output = lm(inputs)
    view = output.run_nmf(n_components=8).explore()

    assert len(view.data["factors"]) == 8
    assert len(view.data["tokens"]) == inputs["input_ids"].shape[1] == len(output.sequences[0])


def test_seed_004_predictions_and_rankings_of_a_causal_model():
    model = "smollm2-135m"
    text = " The Eiffel Tower stands in the middle of the city of"
    # what lm_layers_explainer['predictions'](model, text) runs
    lm = ecco.from_pretrained(model, activations=True)
    output = lm.generate(text, generate=1, do_sample=False)
    one_layer = output.layer_predictions(position=8, layer=5)
    more = output.layer_predictions(position=8, layer=5, topk=20)
    every_layer = output.layer_predictions(position=8)
    # what lm_layers_explainer['rankings'](model) and rankings(text, generate=1, do_sample=False) run
    text = "The books on the shelf"
    rankings = lm.generate(text, generate=1, do_sample=False).rankings_watch(watch=[318, 389], position=5)

    assert [layer["layer"] for layer in one_layer.data["layers"]] == [5]
    assert len(more.data["layers"][0]["candidates"]) == 20
    assert len(every_layer.data["layers"]) == 30
    assert [c["id"] for c in rankings.data["columns"]] == [318, 389]  # GPT-2's " is" / " are" ids, kept as written
    assert len(rankings.data["ranks"]) == 30


def test_seed_004_attention_views_of_a_sentence_pair():
    """The notebook draws these with bertviz; ecco's own views take the same inputs."""
    lm = ecco.from_pretrained("minilm-l6", attention=True)
    text = "The dog slept by the door"
    head_view = lm(text).attention_head_view()
    sentence_a = "The dog slept by the door"
    sentence_b = "The cat sat near the window"
    pair = lm(sentence_a, text_pair=sentence_b)
    neuron_view = pair.attention_neuron_view(layer=2, head=0)
    model_view = pair.attention_model_view()

    assert head_view.data["sets"][0]["layers"] == list(range(6))
    segments = pair.sequences[0].token_type_ids
    assert segments[0] == 0 and segments[-1] == 1  # both sentences, as a pair
    assert (neuron_view.data["layer"], neuron_view.data["head"]) == (2, 0)
    weights = np.array(neuron_view.data["weights"])
    np.testing.assert_allclose(weights.sum(-1), 1, atol=1e-5)  # softmax rows over the pair's tokens
    assert model_view.data["sets"][0]["heads"] == 12


def test_seed_000_the_matrix_nmf_factorises():
    """The activations (layers, neurons, positions) reshaped to (layers x neurons, positions) go to
    sklearn's NMF; PCA takes the same matrix."""
    lm = ecco.from_pretrained("smollm2-135m", activations=True, verbose=False)
    output = lm.generate(LIST_PROMPT, generate=5)
    nmf = output.run_nmf(n_components=4)
    acts = output.activations["decoder"][0]  # (layers, neurons, positions)
    merged = acts.reshape(-1, acts.shape[-1])  # Ecco's 'merged_act'
    np.testing.assert_allclose(nmf.selection.matrix, merged, rtol=1e-6)
    assert nmf.loadings.shape == (4, merged.shape[0]) and (nmf.components >= 0).all()
    assert output.run_decomposition("pca", n_components=4).components.shape == (4, acts.shape[-1])


def test_seed_002_003_the_views_they_show():
    # three layers keep the similarity matrices quick on a CPU
    lm = ecco.from_pretrained("smollm2-135m", activations=True, activations_layer_nums=[0, 14, 29], verbose=False)
    output = lm.generate("The keys to the cabinet", generate=4, do_sample=False)
    ranks = output.rankings(printJson=True)["rankings"]
    assert ranks.shape == (30, 4) and (ranks[-1] == 1).all()  # greedy tokens rank first at the last layer
    detailed = output.primary_attributions(attr_method="saliency", style="detailed")
    assert list(output.attributions) == ["saliency"] and len(detailed.data["targets"]) == 4
    for method in ("svcca", "pwcca", "cka"):
        matrix = output.layer_similarity(method, printJson=True)
        np.testing.assert_allclose(np.diag(matrix), 1, atol=1e-4)
