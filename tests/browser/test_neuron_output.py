"""The neuron views of a real OutputSeq (tiny GPT-2) in Chromium: the page shows the model's
tokens and the numbers computed here from the captured activations (numpy), not made-up data."""
from __future__ import annotations

import numpy as np
import pytest

import ecco
from tests import tiny

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def output():
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), activations=True, verbose=False)
    return lm.generate(["the quick brown fox", "hello"], generate=4, min_new_tokens=4)


def _open(open_html, tmp_path, view):
    path = view.save_html(tmp_path / "view.html")
    return open_html(path.read_text(encoding="utf-8"))


def _numbers(locator, attribute: str) -> list[float | None]:
    """Each element's data-<attribute> as a number (None where it has none)."""
    read = f"e.dataset.{attribute} === undefined ? null : Number(e.dataset.{attribute})"
    return locator.evaluate_all(f"els => els.map(e => {read})")


def _cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two (neurons, tokens) matrices, centred over tokens."""
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    return float(np.linalg.norm(y @ x.T) ** 2 / (np.linalg.norm(x @ x.T) * np.linalg.norm(y @ y.T)))


def test_nmf_explorer_shows_the_factors_of_the_real_tokens(output, open_html, tmp_path):
    nmf = output.run_nmf(n_components=3)
    components = nmf.components.astype(float)  # (factors, tokens of both sequences)
    page = _open(open_html, tmp_path, nmf.explore())
    root = page.locator(".ecco-view-nmf")
    tokens = root.locator(".ecco-nmf-text .ecco-token")
    assert tokens.all_text_contents() == output.tokens[0] + output.tokens[1]
    assert root.locator(".ecco-nmf-seq").count() == 2
    # Default: each token in its strongest factor's colour, with that factor's value.
    strongest = components.argmax(0)
    factors = tokens.evaluate_all("els => els.map(e => e.dataset.factor === undefined ? null : Number(e.dataset.factor))")
    assert factors == [int(k) if components[k, i] > 0 else None for i, k in enumerate(strongest)]
    assert _numbers(tokens, "value") == [components[k, i] if components[k, i] > 0 else None
                                         for i, k in enumerate(strongest)]
    # Hovering factor k shows factor k's value at every token where it is positive.
    for k in range(3):
        root.locator(f'.ecco-nmf-factor[data-factor="{k}"] svg').hover()
        assert _numbers(tokens, "value") == [v if v > 0 else None for v in components[k]]
    page.mouse.move(1, 1)
    # The tooltip of a token lists every factor's value there.
    i = int(np.argmax(components.max(0)))
    tokens.nth(i).hover()
    shown = root.locator(".ecco-tooltip .ecco-nmf-tip-value").all_text_contents()
    assert [float(v) for v in shown] == pytest.approx(components[:, i].tolist(), rel=5e-3, abs=1e-6)  # 3 digits


def test_neuron_view_shows_the_captured_activation(output, open_html, tmp_path):
    acts = output.activations["decoder"]
    n = output.lengths[1]
    layer = 1
    neuron = int(np.abs(acts[1, layer, :, :n]).max(1).argmax())  # the most active neuron of item 1
    page = _open(open_html, tmp_path, output.neuron_view(layer=layer, neuron=neuron, sequence=1))
    root = page.locator(".ecco-view-neuron")
    tokens = root.locator(".ecco-token")
    assert tokens.all_text_contents() == output.tokens[1]
    expected = acts[1, layer, neuron, :n].astype(float)
    assert _numbers(tokens, "value") == expected.tolist()
    signs = tokens.evaluate_all("els => els.map(e => ['ecco-pos', 'ecco-neg', 'ecco-zero'].find(c => e.classList.contains(c)))")
    assert signs == ["ecco-pos" if v > 0 else "ecco-neg" if v < 0 else "ecco-zero" for v in expected]
    assert root.locator(".ecco-neuron-name").text_content() == f"layer {layer} \u00b7 neuron {neuron}"
    assert f"max |value| {float(np.abs(expected).max()):.4g}" in root.locator(".ecco-neuron-legend").text_content()


def test_top_neurons_are_the_largest_activations(output, open_html, tmp_path):
    acts = output.activations["decoder"]
    position = 5
    page = _open(open_html, tmp_path, output.top_neurons(position=position, k=6))
    root = page.locator(".ecco-view-top_neurons")
    values = acts[0, :, :, position].astype(float)  # (layers, neurons)
    order = np.argsort(values, axis=None)[::-1][:6]
    expected = [[int(i // values.shape[1]), int(i % values.shape[1]), values.flat[i]] for i in order]
    rows = root.locator(".ecco-top-neuron")
    got = rows.evaluate_all("els => els.map(e => [Number(e.dataset.layer), Number(e.dataset.neuron), Number(e.dataset.value)])")
    assert got == expected
    assert root.locator(".ecco-tn-label").all_text_contents() == [f"L{la} \u00b7 n{ne}" for la, ne, _ in expected]
    assert root.locator(".ecco-tn-header .ecco-tn-chip").text_content() == output.tokens[0][position]


def test_similarity_view_shows_cka_of_the_captured_layers(output, open_html, tmp_path):
    acts = output.activations["decoder"]
    per_layer = [np.concatenate([acts[s, layer, :, :n] for s, n in enumerate(output.lengths)], axis=1).astype(float)
                 for layer in range(acts.shape[1])]
    expected = np.array([[_cka(x, y) for y in per_layer] for x in per_layer])
    page = _open(open_html, tmp_path, output.layer_similarity("cka"))
    root = page.locator(".ecco-view-similarity")
    cells = root.locator(".ecco-sim-cell")
    got = cells.evaluate_all("els => els.map(e => [Number(e.dataset.row), Number(e.dataset.col), Number(e.dataset.value),"
                             " e.textContent])")
    n = len(per_layer)
    assert [(r, c) for r, c, _, _ in got] == [(r, c) for r in range(n) for c in range(n)]
    np.testing.assert_allclose([v for _, _, v, _ in got], expected.ravel(), rtol=1e-5)
    assert [t for *_, t in got] == [f"{v:.2f}" for v in expected.ravel()]
    assert root.locator(".ecco-sim-label.ecco-sim-row").all_text_contents() == [str(i) for i in range(n)]
