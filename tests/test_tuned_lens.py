"""The trained (tuned) lens: identity = logit lens, the last layer = the model's logits, training
lowers held-out KL, evaluation against a brute-force pass, corpus runs, save/load, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ecco
from ecco.corpus.sources import TextsSource
from ecco.lens import layer_logits
from ecco.lm.lens_training import new_lens
from ecco.tuned.data import Split
from tests import tiny
from tests.conftest import hook_count

PROMPT = "def add(a, b):\n    return a + b\n"


def _texts(n: int = 48, width: int = 100) -> list[str]:
    """Pieces of the standard library's source, each short enough to be one window of the tiny models."""
    pieces = []
    for doc in ecco.corpus.python_stdlib(max_files=12, min_bytes=2000, max_bytes=30000):
        text = doc.text
        pieces += [text[i : i + width] for i in range(0, len(text) - width, width)]
    tokenizer = tiny.tokenizer()
    short = [p for p in pieces if p.strip() and len(tokenizer(p)["input_ids"]) < 120]
    assert len(short) >= n
    return short[:n]


TEXTS = _texts()


def _lm(arch: str = "gpt2", **overrides) -> ecco.LM:
    return ecco.from_model(tiny.model(arch, **overrides), tiny.tokenizer(), verbose=False, model_name=f"tiny-{arch}")


def _train(lm, data=None, **options) -> ecco.TunedLens:
    settings = dict(held_out=0.25, epochs=4, lr=3e-3, rows=128, max_tokens=128, progress=False)
    return ecco.train_lens(lm, TEXTS if data is None else data, **{**settings, **options})


@pytest.fixture(scope="module")
def gpt2():
    return _lm("gpt2")


@pytest.fixture(scope="module")
def trained(gpt2):
    return _train(gpt2)


def _hand_logits(lm, hidden: torch.Tensor, lens: ecco.TunedLens | None) -> torch.Tensor:
    """GPT-2's lens written out: ln_f then lm_head, after the translator h + h W^T + b."""
    model = lm.model
    out = []
    with torch.no_grad():
        for layer in range(hidden.shape[0] - 1):
            h = hidden[layer]
            if lens is not None:
                h = h + h @ lens.weight[layer].T + lens.bias[layer]
            out.append(model.lm_head(model.transformer.ln_f(h)))
        out.append(model.lm_head(hidden[-1]))
    return torch.stack(out)


# ------------------------------------------------------------------ exactness
def test_an_untrained_lens_reads_exactly_as_the_logit_lens(gpt2):
    output = gpt2.generate(PROMPT, generate=4, min_new_tokens=4)
    identity = new_lens(gpt2)
    assert not identity.info.trained
    np.testing.assert_array_equal(output.rankings(printJson=True)["rankings"],
                                  output.rankings(printJson=True, lens=identity)["rankings"])
    logit, tuned = output.lens_trajectories(), output.lens_trajectories(lens=identity)
    for key in ("entropy", "kl", "js", "tv", "final_top1_prob", "prob", "rank"):
        np.testing.assert_array_equal(logit[key], tuned[key])
    assert output.layer_predictions(position=5, printJson=True) == output.layer_predictions(
        position=5, printJson=True, lens=identity)
    watch = [" the", "return"]
    np.testing.assert_array_equal(output.rankings_watch(watch, printJson=True)["rankings"],
                                  output.rankings_watch(watch, printJson=True, lens=identity)["rankings"])


def test_a_trained_lens_is_the_hand_written_affine_map_and_keeps_the_last_layer(gpt2, trained):
    output = gpt2(PROMPT)
    hidden = output.hidden_states["decoder"][0, 1:]
    head = output.lens_head()
    with torch.no_grad():
        logits = gpt2.model(torch.tensor([output.sequences[0].token_ids])).logits[0]
    ours = layer_logits(head, hidden, trained.translate)
    assert (ours[-1] - logits).abs().max() <= 1e-4
    torch.testing.assert_close(ours, _hand_logits(gpt2, hidden, trained), atol=1e-4, rtol=1e-4)
    assert (ours[0] - layer_logits(head, hidden)[0]).abs().max() > 1e-2  # training moved layer 0


def test_views_read_through_the_trained_lens(gpt2, trained):
    output = gpt2(PROMPT)
    hidden = output.hidden_states["decoder"][0, 1:]
    position = 6
    probs = torch.softmax(_hand_logits(gpt2, hidden[:, position - 1], trained), dim=-1)
    rows = output.layer_predictions(position=position, printJson=True, lens=trained)
    for layer, row in enumerate(rows):
        assert row[0]["token_id"] == int(probs[layer].argmax())
        assert row[0]["prob"] == pytest.approx(float(probs[layer].max()), rel=1e-4)
    chosen = output.sequences[0].token_ids[position]
    ranks = output.rankings(printJson=True, lens=trained)["rankings"][:, position - 1]
    expected = (probs > probs[:, chosen : chosen + 1]).sum(-1) + 1
    np.testing.assert_array_equal(ranks, expected.numpy())
    view = output.trajectories(lens=trained)
    assert view.data["title"].startswith("Tuned-lens trajectories")
    assert output.rankings(lens=trained).data["title"].startswith("Tuned lens: rank of each output token")
    assert output.rankings().data["title"].startswith("Rank of each output token")


# ------------------------------------------------------------------ training and evaluation
def test_training_lowers_held_out_kl_at_every_layer(gpt2, trained):
    result = ecco.evaluate_lens(gpt2, trained, TEXTS, printJson=True, progress=False)
    assert result["part"] == "held_out"
    split = Split(0.25, 0)
    held = [t for i, t in enumerate(TEXTS) if split.is_held_out(i)]
    assert result["n_tokens"] == sum(len(tiny.tokenizer()(t)["input_ids"]) for t in held)
    assert (result["tuned_kl"][:-1] < result["logit_kl"][:-1]).all(), result
    assert result["tuned_kl"][-1] == result["logit_kl"][-1] == 0
    assert result["tuned_ce"][-1] == pytest.approx(result["logit_ce"][-1])
    history = trained.info.training["train_kl"]
    assert len(history) == 4 and all(np.array(history[-1]) < np.array(history[0]))


def test_evaluation_matches_a_brute_force_pass(gpt2, trained):
    texts = TEXTS[:10]
    result = ecco.evaluate_lens(gpt2, trained, texts, printJson=True, progress=False, rows=7)
    assert result["part"] == "all"
    sums = np.zeros((4, 3))
    n_tokens = n_next = 0
    for text in texts:
        ids = tiny.tokenizer()(text)["input_ids"]
        with torch.no_grad():
            out = gpt2.model(torch.tensor([ids]), output_hidden_states=True)
        final = torch.log_softmax(out.logits[0], -1)
        hidden = torch.stack(out.hidden_states[1:])[:, 0]
        for which, lens in enumerate((None, trained)):
            log_q = torch.log_softmax(_hand_logits(gpt2, hidden, lens), -1)
            sums[which] += (final.exp() * (final - log_q)).sum(-1).sum(-1).numpy()
            sums[2 + which] -= log_q[:, :-1].gather(-1, torch.tensor(ids[1:])[None, :, None].expand(3, -1, 1)).sum((1, 2)).numpy()
        n_tokens += len(ids)
        n_next += len(ids) - 1
    assert (result["n_tokens"], result["n_next"]) == (n_tokens, n_next)
    for index, key in enumerate(("logit_kl", "tuned_kl", "logit_ce", "tuned_ce")):
        np.testing.assert_allclose(result[key], sums[index] / (n_tokens if index < 2 else n_next), rtol=1e-4, atol=1e-6)
    # The last layer's cross-entropy is the model's own language-modelling loss (transformers' labels= loss).
    total = 0.0
    for text in texts:
        ids = torch.tensor([tiny.tokenizer()(text)["input_ids"]])
        with torch.no_grad():
            total += float(gpt2.model(ids, labels=ids).loss) * (ids.shape[1] - 1)
    assert result["logit_ce"][-1] == pytest.approx(total / n_next, rel=1e-4)


def test_a_corpus_run_gives_the_same_evaluation_and_trains(gpt2, trained, tmp_path):
    run = gpt2.run_corpus(TEXTS, tmp_path / "run", hidden_states=True, activations=False, dtype="float32",
                          max_tokens=128, progress=False)
    from_run = ecco.evaluate_lens(gpt2, trained, run, printJson=True, progress=False)
    from_folder = ecco.evaluate_lens(gpt2, trained, str(tmp_path / "run"), printJson=True, progress=False)
    np.testing.assert_array_equal(from_folder["tuned_kl"], from_run["tuned_kl"])
    streamed = ecco.evaluate_lens(gpt2, trained, TEXTS, printJson=True, progress=False)
    assert from_run["part"] == streamed["part"] == "held_out"
    assert (from_run["n_tokens"], from_run["n_next"]) == (streamed["n_tokens"], streamed["n_next"])
    for key in ("logit_kl", "tuned_kl", "logit_ce", "tuned_ce"):
        np.testing.assert_allclose(from_run[key], streamed[key], rtol=1e-5, atol=1e-6)
    lens = _train(gpt2, run)
    again = ecco.evaluate_lens(gpt2, lens, TEXTS, printJson=True, progress=False)
    assert again["part"] == "held_out"  # the run's source is the same list of texts
    assert (again["tuned_kl"][:-1] < again["logit_kl"][:-1]).all()


def test_save_then_load_gives_identical_predictions(gpt2, trained, tmp_path):
    path = trained.save(tmp_path / "lenses" / "tiny")
    assert path.name == "tiny.safetensors"
    loaded = ecco.load_lens(path)
    assert torch.equal(loaded.weight, trained.weight) and torch.equal(loaded.bias, trained.bias)
    assert loaded.info == trained.info
    output = gpt2(PROMPT)
    for lens in (loaded, str(path)):
        a, b = output.lens_trajectories(lens=trained), output.lens_trajectories(lens=lens)
        for key in ("kl", "js", "prob", "rank"):
            np.testing.assert_array_equal(a[key], b[key])


def test_training_leaves_the_model_as_it_was(tmp_path):
    lm = _lm("gpt2")
    lm.model(torch.tensor([[5, 6, 7]]), output_hidden_states=True)  # transformers' own capture hooks, once
    lm.model.train()
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    hooks = hook_count(lm.model)
    _train(lm, TEXTS[:8], epochs=1, save=tmp_path / "l.safetensors")
    assert lm.model.training and hook_count(lm.model) == hooks
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())
    assert all(p.grad is None for p in lm.model.parameters())
    assert (tmp_path / "l.safetensors").is_file()


class _StopsInEpoch2(TextsSource):
    """The texts, until the second pass over them, which is interrupted as by Ctrl-C."""

    passes = 0

    def documents(self, start: int = 0):
        self.passes += 1
        if self.passes == 2:
            raise KeyboardInterrupt
        yield from super().documents(start)


def test_an_interrupted_training_keeps_its_finished_epochs(gpt2, tmp_path):
    path = tmp_path / "lens.safetensors"
    with pytest.raises(KeyboardInterrupt):
        _train(gpt2, _StopsInEpoch2(TEXTS), epochs=3, save=path)
    saved = ecco.load_lens(path)
    assert saved.info.training["epochs_done"] == 1
    one_epoch = _train(gpt2, TEXTS, epochs=1)
    assert torch.equal(saved.weight, one_epoch.weight) and torch.equal(saved.bias, one_epoch.bias)


def test_a_masked_model_trains_and_evaluates():
    lm = _lm("bert")
    lens = _train(lm, epochs=2)
    result = ecco.evaluate_lens(lm, lens, TEXTS, printJson=True, progress=False)
    assert np.isfinite(result["tuned_kl"]).all() and result["tuned_kl"][-1] == 0
    assert (result["tuned_kl"][:-1] < result["logit_kl"][:-1]).all()


def test_the_evaluation_view_and_figure(gpt2, trained):
    view = ecco.evaluate_lens(gpt2, trained, TEXTS, progress=False, tokens=200)
    assert view.view == "trajectory"
    assert [t["text"] for t in view.data["tokens"]] == ["logit lens", "tuned lens"]
    assert [s["key"] for s in view.data["series"]] == ["kl", "ce"]
    assert "200 tokens of held-out documents" in view.data["title"]
    data = ecco.evaluate_lens(gpt2, trained, TEXTS, progress=False, tokens=200, printJson=True)
    assert view.data["series"][0]["values"] == [data["logit_kl"].tolist(), data["tuned_kl"].tolist()]
    figure = ecco.evaluate_lens(gpt2, trained, TEXTS, progress=False, tokens=200, plot=True)
    assert len(figure.axes) == 2


# ------------------------------------------------------------------ bad input
def test_runs_without_every_layers_hidden_states_are_refused(gpt2, tmp_path):
    no_hidden = gpt2.run_corpus(TEXTS[:4], tmp_path / "a", progress=False, max_tokens=128)
    with pytest.raises(ValueError, match="stored no hidden states"):
        ecco.train_lens(gpt2, no_hidden, progress=False)
    some = gpt2.run_corpus(TEXTS[:4], tmp_path / "b", layers=[0, 2], hidden_states=True, progress=False, max_tokens=128)
    with pytest.raises(ValueError, match=r"missing: \[1\]"):
        ecco.train_lens(gpt2, some, progress=False)
    other = _lm("llama")
    with pytest.raises(ValueError, match="made with tiny-gpt2, not tiny-llama"):
        ecco.train_lens(other, some, progress=False)


def test_a_lens_for_another_model_is_refused(gpt2, trained, tmp_path):
    llama = _lm("llama")
    output = llama(PROMPT)
    with pytest.raises(ValueError, match="trained for tiny-gpt2, not tiny-llama"):
        output.rankings(lens=trained)
    with pytest.raises(ValueError, match="trained for tiny-gpt2, not tiny-llama"):
        ecco.evaluate_lens(llama, trained, TEXTS, progress=False)
    wider = ecco.from_model(tiny.model("gpt2", n_embd=48), tiny.tokenizer(), verbose=False, model_name="tiny-gpt2")
    with pytest.raises(ValueError, match="hidden size 32.*hidden size 48"):
        wider(PROMPT).rankings(lens=trained)
    torch.manual_seed(123)
    retrained = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False, model_name="tiny-gpt2")
    with torch.no_grad():
        retrained.model.lm_head.weight.mul_(1.5)
    with pytest.warns(UserWarning, match="other weights"):
        retrained(PROMPT).rankings(lens=trained)


def test_bad_lens_arguments(gpt2, tmp_path):
    output = gpt2(PROMPT)
    with pytest.raises(ValueError, match="lens must be 'logit'"):
        output.rankings(lens=42)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        output.rankings(lens=tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a lens")
    with pytest.raises(ValueError, match="not a saved lens"):
        output.rankings(lens=junk)
    with pytest.raises(ValueError, match="held_out"):
        ecco.train_lens(gpt2, TEXTS, held_out=1.0, progress=False)
    with pytest.raises(ValueError, match="lr must be a positive"):
        ecco.train_lens(gpt2, TEXTS, lr=0, progress=False)
    with pytest.raises(ValueError, match="encoder-decoder"):
        ecco.train_lens(_lm("t5"), TEXTS, progress=False)
    with pytest.raises(ValueError, match="more than tiny-gpt2 takes"):
        ecco.train_lens(gpt2, TEXTS, max_tokens=4096, progress=False)
    with pytest.raises(ValueError, match="batch_tokens=64 must be at least max_tokens=128"):
        ecco.train_lens(gpt2, TEXTS, batch_tokens=64, progress=False)
    with pytest.raises(ValueError, match="no training tokens"):
        ecco.train_lens(gpt2, TEXTS[:1], held_out=0.99, progress=False)
