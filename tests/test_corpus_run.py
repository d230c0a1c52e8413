"""Corpus runs on tiny models: the stored rows against the model's own outputs, the summaries
against brute force over the stored arrays, the datasets round trip, and bad input."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch

import ecco
from ecco.corpus import store
from tests import tiny
from tests.conftest import FFN_PATHS, ffn_inputs, hook_count

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n" * 3,
    "print('hello world')",
    "x = [i * i for i in range(10) if i % 2]\n" * 4,
]


def _lm(arch: str = "gpt2", tokenizer=None) -> ecco.LM:
    return ecco.from_model(tiny.model(arch), tokenizer or tiny.tokenizer(), verbose=False)


def _run(lm, out, **options):
    options = {"max_tokens": 48, "overlap": 8, "batch_tokens": 160, "shard_tokens": 60, "progress": False, **options}
    return lm.run_corpus(TEXTS, out, **options)


@pytest.fixture(scope="module")
def gpt2_run(tmp_path_factory):
    lm = _lm()
    return lm, _run(lm, tmp_path_factory.mktemp("run"), hidden_states=True)


def test_rows_are_the_models_own_ffn_inputs(gpt2_run):
    lm, run = gpt2_run
    tokenizer = tiny.tokenizer()
    for doc in (0, 4):  # short documents: one window, the model reads them alone
        ids = tokenizer(TEXTS[doc], add_special_tokens=False)["input_ids"]
        out, ffn = ffn_inputs(lm.model, "gpt2", {"decoder": 3}, input_ids=torch.tensor([ids]))
        assert run.token_ids(doc) == ids
        for layer in range(3):
            np.testing.assert_allclose(run.activations(layer, doc).astype(np.float32),
                                       ffn["decoder"][layer].numpy(), atol=2e-3, rtol=2e-3)
            np.testing.assert_allclose(run.hidden_states(layer, doc).astype(np.float32),
                                       out.hidden_states[layer + 1][0].numpy(), atol=2e-3, rtol=2e-3)
        assert "".join(run.tokens(doc)) == TEXTS[doc]


def test_long_documents_are_windowed_and_every_token_stored_once(gpt2_run):
    lm, run = gpt2_run
    tokenizer = tiny.tokenizer()
    table = run.table
    for doc, text in enumerate(TEXTS):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            with pytest.raises(KeyError, match="no stored tokens"):
                run.rows(doc)
            continue
        rows = run.rows(doc)
        assert table.column("position").take(rows).to_pylist() == list(range(len(ids)))
        assert run.token_ids(doc) == ids
    assert len(tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]) > 48  # really windowed
    # a token of a later window is computed from its window (start..token), not from the document start
    ids = tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    position = 60  # windows of 48 with 8 overlap: the second window starts at 40 and stores 48..87
    _, ffn = ffn_inputs(lm.model, "gpt2", {"decoder": 3}, input_ids=torch.tensor([ids[40 : position + 1]]))
    row = run.row(1, position)
    stored = run.array("ffn.decoder.2", np.array([row]))[0].astype(np.float32)
    np.testing.assert_allclose(stored, ffn["decoder"][2][-1].numpy(), atol=2e-3, rtol=2e-3)


def test_summaries_equal_brute_force_over_the_stored_rows(gpt2_run):
    _, run = gpt2_run
    docs = run.table.column("doc_id").to_numpy()
    positions = run.table.column("position").to_numpy()
    for layer in range(3):
        values = run.activations(layer).astype(np.float32)
        summary = run.summary.neurons[f"ffn.decoder.{layer}"]
        np.testing.assert_allclose(summary.mean, values.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(summary.std, values.std(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(summary.fraction_positive, (values > 0).mean(0))
        edges = np.asarray(summary.edges, dtype=np.float32)
        for neuron in (0, 64):
            expected = np.bincount(np.searchsorted(edges, values[:, neuron], side="right"), minlength=len(edges) + 1)
            np.testing.assert_array_equal(summary.histogram[neuron], expected)
        for neuron in (0, 7, values.shape[1] - 1):
            order = np.lexsort((positions, docs, -values[:, neuron]))[: summary.k]
            np.testing.assert_array_equal(summary.top_values[neuron], values[order, neuron])
            np.testing.assert_array_equal(summary.top_doc_ids[neuron], docs[order])
            np.testing.assert_array_equal(summary.top_positions[neuron], positions[order])
    value, context = run.top_tokens(1, 5, k=1)[0]
    assert context.token == run.tokens(context.doc_id)[context.position]
    tokens = run.tokens(1)
    around = run.context(1, 20, width=3)
    assert (around.before, around.token, around.after) == (tokens[17:20], tokens[20], tokens[21:24])
    assert run.context(1, 1, width=3).before == tokens[:1]
    assert value == run.summary.neurons["ffn.decoder.1"].top_values[5][0]


def test_lens_summary_is_the_models_own_entropy_and_kl(gpt2_run):
    lm, run = gpt2_run
    tokenizer = tiny.tokenizer()
    entropy, kl, count = np.zeros(3), np.zeros(3), 0
    model = lm.model
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        for start, first_stored in _windows(len(ids), 48, 8):
            with torch.no_grad():
                out = model(torch.tensor([ids[start : start + 48]]), output_hidden_states=True)
            states = out.hidden_states[1:]
            logits = [model.lm_head(model.transformer.ln_f(h)) for h in states[:-1]] + [model.lm_head(states[-1])]
            logp = [torch.log_softmax(x[0, first_stored - start :], -1).double() for x in logits]
            for layer in range(3):
                entropy[layer] += -(logp[layer].exp() * logp[layer]).sum(-1).sum().item()
                kl[layer] += (logp[-1].exp() * (logp[-1] - logp[layer])).sum(-1).sum().item()
            count += logp[0].shape[0]
    lens = run.summary.lens
    np.testing.assert_allclose(lens.mean_entropy, entropy / count, rtol=1e-4)
    np.testing.assert_allclose(lens.mean_kl, kl / count, rtol=1e-3, atol=1e-6)
    assert kl[-1] == pytest.approx(0, abs=1e-6)


def _windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(window start, first stored position): the rule the docs state, written out."""
    out, start = [(0, 0)], 0
    while start + size < n:
        start += size - overlap
        out.append((start, start + overlap))
    return out


def test_manifest_datasets_and_bytes(gpt2_run, tmp_path):
    _, run = gpt2_run
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["model"] and manifest["versions"]["torch"] == torch.__version__
    assert manifest["totals"]["skipped_documents"] == 1 and [d for s in manifest["shards"] for d in s["skipped_docs"]] == [2]
    assert manifest["totals"]["tokens"] == run.table.num_rows
    assert manifest["totals"]["documents"] == len(TEXTS)
    loaded = datasets.load_from_disk(str(run.path))
    assert loaded.num_rows == run.table.num_rows and loaded.features["ffn.decoder.0"].length == 128
    row = loaded[3]
    np.testing.assert_array_equal(np.asarray(row["ffn.decoder.0"], dtype=np.float16), run.array("ffn.decoder.0", [3])[0])
    arrow = datasets.load_dataset("arrow", data_files=[str(run.path / s["file"]) for s in manifest["shards"]],
                                  split="train", cache_dir=str(tmp_path))
    assert arrow["token_id"] == loaded["token_id"]
    sizes = run.bytes_per_token_per_layer()
    assert sizes["ffn.decoder.0"] == 128 * 2 and sizes["hidden.decoder.0"] == 32 * 2
    assert sizes["total"] > 3 * (128 + 32) * 2
    assert ecco.load_corpus(run.path).table.num_rows == run.table.num_rows


def test_documents_are_named_by_their_files(gpt2_run, tmp_path):
    lm, run = gpt2_run
    assert run.document_name(0) == "document 0" and isinstance(run, ecco.Corpus) and run.lm is lm
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text(TEXTS[0])
    (folder / "sub" / "a.py").write_text(TEXTS[1])
    named = lm.run_corpus(folder, tmp_path / "named", max_tokens=48, overlap=8, shard_tokens=10, progress=False)
    assert len(named.manifest.shards) == 2  # names come back from every shard
    assert [named.document_name(d) for d in (0, 1)] == ["b.txt", "sub/a.py"]
    assert ecco.load_corpus(named.path).document_name(1) == "sub/a.py"


@pytest.mark.parametrize("arch, tokenizer, stack", [("bert", tiny.pair_tokenizer, "encoder"), ("t5", tiny.tokenizer, "encoder")])
def test_encoders_and_encoder_decoders(tmp_path, arch, tokenizer, stack):
    lm = _lm(arch, tokenizer())
    run = _run(lm, tmp_path / arch, layers=[0, 1])
    ids = tokenizer()(TEXTS[4])["input_ids"]  # with the model's own special tokens
    inputs = {"input_ids": torch.tensor([ids])}
    if arch == "t5":
        inputs["decoder_input_ids"] = torch.tensor([[0]])
    if arch == "bert":
        _, ffn = ffn_inputs(lm.model, arch, {"encoder": 2}, **inputs)
    else:
        _, ffn = _t5_encoder(lm.model, ids)
    first = 1 if arch == "bert" else 0  # [CLS] is not stored
    content = run.token_ids(4)
    assert content == ids[first : first + len(content)]
    np.testing.assert_allclose(run.activations(1, 4).astype(np.float32), ffn[stack][1][first : first + len(content)].numpy(),
                               atol=2e-3, rtol=2e-3)
    if arch == "t5":
        with pytest.raises(ValueError, match="encoder"):
            _run(lm, tmp_path / "dec", stack="decoder")


def _t5_encoder(model, ids):
    modules = dict(model.named_modules())
    seen = []
    handles = [modules[FFN_PATHS["t5"]["encoder"].format(i)].register_forward_pre_hook(lambda m, a: seen.append(a[0][0]))
               for i in range(2)]
    try:
        with torch.no_grad():
            model.get_encoder()(input_ids=torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    return None, {"encoder": torch.stack(seen)}


def test_bad_input_says_what_to_do(tmp_path):
    lm = _lm()
    with pytest.raises(ValueError, match="empty"):
        _run_texts(lm, [], tmp_path / "a")
    with pytest.raises(ValueError, match="out of range|0..2"):
        _run(lm, tmp_path / "b", layers=[3])
    ds = datasets.Dataset.from_dict({"content": ["a b c"]})
    with pytest.raises(ValueError, match="content"):
        lm.run_corpus(ds, tmp_path / "c", progress=False)
    _run(lm, tmp_path / "d", layers=[0])
    with pytest.raises(store.RunMismatchError, match="layers"):
        _run(lm, tmp_path / "d", layers=[1])
    _run(lm, tmp_path / "d", layers=[1], overwrite=True)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("mine")
    with pytest.raises(store.RunMismatchError, match="not empty"):
        _run(lm, tmp_path / "e")
    with pytest.raises(ValueError, match="max_tokens"):
        _run(lm, tmp_path / "f", max_tokens=1000)
    with pytest.raises(ValueError, match="increasing"):
        _run(lm, tmp_path / "h", hist_edges=[1.0, 0.0])
    assert not (tmp_path / "h").exists()
    with pytest.raises(ValueError, match="Nothing to capture"):
        _run(lm, tmp_path / "g", activations=False)


def _run_texts(lm, texts, out):
    return lm.run_corpus(texts, out, progress=False)


def test_full_disk_leaves_no_partial_shard_and_the_model_as_it_was(tmp_path, monkeypatch):
    lm = _lm()
    lm.model.train()
    hooks = hook_count(lm.model)
    real = store.shutil.disk_usage
    monkeypatch.setattr(store.shutil, "disk_usage", lambda path: real(path)._replace(free=10_000))
    with pytest.raises(store.DiskFullError, match="disk space"):
        _run(lm, tmp_path / "full")
    assert not list((tmp_path / "full" / "shards").iterdir())
    monkeypatch.undo()
    calls = {"n": 0}
    write = store.pa.ipc.RecordBatchStreamWriter.write_batch

    def failing(self, batch, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return write(self, batch, *args)

    monkeypatch.setattr(store.pa.ipc.RecordBatchStreamWriter, "write_batch", failing)
    with pytest.raises(store.DiskFullError, match="filled up"):
        _run(lm, tmp_path / "full2")
    assert not list((tmp_path / "full2" / "shards").iterdir())
    assert lm.model.training and hook_count(lm.model) == hooks
    monkeypatch.undo()
    run = _run(lm, tmp_path / "full2")
    assert run.manifest.complete
