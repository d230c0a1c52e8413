"""Corpus windows and batches against the tokenizer itself: every document token stored once,
with its left context, the tokenizer's own special tokens around every window, token texts that
join back to the document, and batches within their token budget."""
from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest
import transformers as tf
from tokenizers import Tokenizer, processors

import ecco
from ecco.corpus.sources import Document
from ecco.corpus.windows import (
    Window,
    batches,
    content_size,
    document_windows,
    encode_texts,
    padding_fraction,
    special_tokens,
    window_spans,
    windows_for,
)
from tests import tiny

LONG = Path(textwrap.__file__).read_text(encoding="utf-8")[:6000]  # real code, comments and docstrings
TEXTS = [
    "The cat sat on the mat, and then it slept.",
    "",
    "  Leading spaces, a tab\there, and two blank lines:\n\n\nthe end.  ",
    "Numbers 3.14159 and 2718 and the word unbelievable; café, naïve, 東京, emoji 🙂 too.",
    LONG,
    "def area(r):\n    return 3.14 * r ** 2\n" * 30,
]


def _templated(single: str) -> tf.PreTrainedTokenizerFast:
    """The tiny BPE with a post-processor adding ``single``'s special tokens (Llama's BOS, T5's EOS)."""
    bpe = Tokenizer.from_str(tiny.tokenizer().backend_tokenizer.to_str())
    specials = [(t, bpe.token_to_id(t)) for t in ("<s>", "</s>") if t in single]
    bpe.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    return tf.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _trimmed() -> tf.PreTrainedTokenizerFast:
    """The tiny BPE with offsets that leave out a token's leading space (RoBERTa's ``trim_offsets``)."""
    bpe = Tokenizer.from_str(tiny.tokenizer().backend_tokenizer.to_str())
    bpe.post_processor = processors.ByteLevel(trim_offsets=True)
    return tf.PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>")


@pytest.fixture(scope="module")
def smollm2():
    return ecco.from_pretrained("smollm2-135m", verbose=False).tokenizer


@pytest.fixture(scope="module")
def minilm():
    return ecco.from_pretrained("minilm-l6", verbose=False).tokenizer


@pytest.fixture(scope="module")
def slow_bert(tmp_path_factory):
    """A slow (pure Python) WordPiece BERT tokenizer on a vocabulary written here."""
    words = "the cat sat on mat and then it slept dog ran far away , . ; ##s ##ed ##ing un ##believ ##able".split()
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n", encoding="utf-8")
    cls = getattr(tf, "BertTokenizerLegacy", None) or tf.BertTokenizer
    tokenizer = cls(vocab_file=str(vocab))
    if tokenizer.is_fast:
        pytest.skip("no slow BERT tokenizer in this transformers")
    return tokenizer


def _tokenizers(request) -> dict:
    return {
        "gpt2-style": tiny.tokenizer(),
        "bert-style": tiny.pair_tokenizer(),
        "bos": _templated("<s> $A"),
        "eos": _templated("$A </s>"),
        "trimmed": _trimmed(),
        "smollm2": request.getfixturevalue("smollm2"),
        "minilm": request.getfixturevalue("minilm"),
    }


NAMES = ["gpt2-style", "bert-style", "bos", "eos", "trimmed", "smollm2", "minilm"]


@pytest.mark.parametrize("name", NAMES)
def test_special_tokens_are_the_tokenizers_own(request, name):
    tokenizer = _tokenizers(request)[name]
    ids = lambda t: [tokenizer.convert_tokens_to_ids(x) for x in t]  # noqa: E731
    expected = {
        "gpt2-style": ([], []),
        "bert-style": (ids(["[CLS]"]), ids(["[SEP]"])),
        "bos": (ids(["<s>"]), []),
        "eos": ([], ids(["</s>"])),
        "trimmed": ([], []),
        "smollm2": ([], []),
        "minilm": ([tokenizer.cls_token_id], [tokenizer.sep_token_id]),
    }[name]
    assert special_tokens(tokenizer) == expected


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("max_tokens, overlap", [(24, 5), (40, 0), (17, 12)])
def test_every_document_token_is_stored_once_with_its_context(request, name, max_tokens, overlap):
    tokenizer = _tokenizers(request)[name]
    prefix, suffix = special_tokens(tokenizer)
    docs = [Document(i, text) for i, text in enumerate(TEXTS)]
    by_doc, skipped = windows_for(tokenizer, docs, max_tokens, overlap)
    assert skipped == [1] and list(by_doc) == [0, 2, 3, 4, 5]
    for doc in docs:
        ids = tokenizer(doc.text, add_special_tokens=False)["input_ids"]  # the document's tokens, directly
        windows = by_doc.get(doc.doc_id, [])
        assert bool(windows) == bool(ids)
        positions, stored = [], []
        for k, w in enumerate(windows):
            assert w.doc_id == doc.doc_id and len(w.ids) <= max_tokens
            assert w.ids[: len(prefix)] == prefix and w.ids[len(w.ids) - len(suffix) :] == suffix
            assert (w.special_prefix, w.special_suffix) == (len(prefix), len(suffix))
            assert w.content_ids == ids[w.start : w.start + w.n_content]  # the context it reads is the document's
            assert len(w.text_pieces) == w.n_content
            if k < len(windows) - 1:
                assert len(w.ids) == max_tokens  # only the last window may be short
            for position in w.stored_positions:
                assert position - w.start >= overlap or w.start == 0  # at least `overlap` tokens of left context
            positions.extend(w.stored_positions)
            stored.extend(w.stored_ids)
            first, stop = w.stored_span
            assert w.ids[first:stop] == w.stored_ids and len(w.stored_pieces) == w.n_stored == stop - first
        assert positions == list(range(len(ids)))  # each token exactly once, in order
        assert stored == ids
    assert len(by_doc[4]) > 3  # the long document really is windowed


@pytest.mark.parametrize("name", NAMES)
def test_a_short_document_is_exactly_the_tokenizers_input(request, name):
    tokenizer = _tokenizers(request)[name]
    (window,) = document_windows(tokenizer, Document(7, TEXTS[0]), 64, 8)
    assert window.ids == tokenizer(TEXTS[0])["input_ids"]  # with the tokenizer's own special tokens
    assert (window.start, window.keep, window.doc_id) == (0, 0, 7)


@pytest.mark.parametrize("name", NAMES)
def test_token_texts_join_back_to_the_document(request, name):
    tokenizer = _tokenizers(request)[name]
    for i, text in enumerate(TEXTS):
        pieces = [p for w in document_windows(tokenizer, Document(i, text), 20, 4) for p in w.stored_pieces]
        assert "".join(pieces) == text


@pytest.mark.parametrize("name", ["gpt2-style", "trimmed", "smollm2"])
def test_byte_level_token_texts_are_the_tokens_decoded(request, name):
    tokenizer = _tokenizers(request)[name]
    text = TEXTS[0] + "  two  spaces " + TEXTS[5]  # ASCII: every token decodes to its own text
    (ids, pieces), = encode_texts(tokenizer, [text])
    if name == "trimmed":
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert any(text[a:b] != p for (a, b), p in zip(offsets, pieces))  # the offsets alone would lose spaces
    assert pieces == [tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in ids]


def test_wordpiece_token_texts_include_the_whitespace_before_them(minilm):
    text = "  the cat sat   on the unbelievable mat.\n"
    (ids, pieces), = encode_texts(minilm, [text])
    words = minilm.convert_ids_to_tokens(ids)
    assert [p.strip() for p in pieces] == [w.removeprefix("##") for w in words]
    assert pieces[0] == "  the" and pieces[3] == "   on" and pieces[-1] == ".\n"
    assert "".join(pieces) == text


def test_slow_tokenizers_use_decoded_pieces(slow_bert):
    text = "the cat sat on the mat, and then it slept. unbelievable"
    by_doc, skipped = windows_for(slow_bert, [Document(0, text), Document(1, " \n ")], 8, 2)
    assert skipped == [1]  # whitespace only: no tokens
    ids = slow_bert(text, add_special_tokens=False)["input_ids"]
    windows = by_doc[0]
    assert [t for w in windows for t in w.stored_ids] == ids
    cls, sep = slow_bert.cls_token_id, slow_bert.sep_token_id
    assert all(w.ids[0] == cls and w.ids[-1] == sep and len(w.ids) <= 8 for w in windows)
    pieces = [p for w in windows for p in w.stored_pieces]
    assert [p.strip() for p in pieces] == [w.removeprefix("##") for w in slow_bert.convert_ids_to_tokens(ids)]


def test_window_spans_follow_the_rule():
    assert window_spans(0, 4, 1) == []
    assert window_spans(4, 4, 1) == [(0, 4, 0)]
    assert window_spans(5, 4, 1) == [(0, 4, 0), (3, 5, 1)]
    assert window_spans(10, 4, 1) == [(0, 4, 0), (3, 7, 1), (6, 10, 1)]
    assert window_spans(100, 48, 8)[1] == (40, 88, 8)  # the second window starts at 40 and stores 48..87
    with pytest.raises(ValueError, match="cannot overlap"):
        window_spans(10, 4, 4)


def test_bad_window_settings_say_what_to_change():
    bert = tiny.pair_tokenizer()  # two special tokens
    assert content_size(bert, 10, 7) == 8
    with pytest.raises(ValueError, match=r"max_tokens=10 leaves 8 .*2 special tokens.*overlap=8.*at least 11"):
        document_windows(bert, Document(0, TEXTS[4]), 10, 8)
    with pytest.raises(ValueError, match="overlap"):
        windows_for(bert, [Document(0, "x")], 32, -1)
    with pytest.raises(ValueError, match="max_tokens"):
        windows_for(bert, [Document(0, "x")], 0, 0)
    assert windows_for(bert, [], 32, 4) == ({}, [])


def test_many_documents_take_one_tokenizer_call(monkeypatch):
    tokenizer = tiny.tokenizer()
    docs = [Document(i, f"document {i}: " + TEXTS[i % len(TEXTS)]) for i in range(50)]
    one_by_one = {d.doc_id: document_windows(tokenizer, d, 30, 6) for d in docs}
    calls = []
    real = type(tokenizer).__call__

    def counting(self, text, *args, **kwargs):
        calls.append(len(text) if isinstance(text, list) else 1)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", counting)
    by_doc, skipped = windows_for(tokenizer, docs, 30, 6)
    assert calls.count(50) == 1 and len(calls) <= 3  # the documents in one call (and the special-token probe)
    assert skipped == [] and by_doc == one_by_one


def _w(doc_id: int, n: int, start: int = 0) -> Window:
    return Window(doc_id, start, list(range(n)), 0, 0, 0, ["x"] * n)


def test_batches_by_hand():
    windows = [_w(0, 5), _w(1, 3), _w(2, 8), _w(3, 8), _w(4, 2), _w(5, 7)]
    cut = batches(windows, 16)
    assert [[(w.doc_id, len(w.ids)) for w in b] for b in cut] == [[(2, 8), (3, 8)], [(5, 7), (0, 5)], [(1, 3), (4, 2)]]
    # padded: 2*8 + 2*7 + 2*3 = 36 slots for 8+8+7+5+3+2 = 33 tokens
    assert padding_fraction(cut) == pytest.approx(3 / 36)
    assert batches([], 16) == [] and padding_fraction([]) == 0.0
    ties = batches([_w(3, 4, 10), _w(1, 4, 20), _w(3, 4, 0)], 100)
    assert [(w.doc_id, w.start) for w in ties[0]] == [(1, 20), (3, 0), (3, 10)]
    with pytest.raises(ValueError, match="batch_tokens=7 is less than a window of 8 tokens"):
        batches(windows, 7)


def test_batches_respect_the_budget_on_real_windows():
    tokenizer = tiny.pair_tokenizer()
    docs = [Document(i, TEXTS[i % len(TEXTS)][: 40 + 37 * i]) for i in range(40)]
    by_doc, _ = windows_for(tokenizer, docs, 32, 4)
    windows = [w for ws in by_doc.values() for w in ws]
    rng = random.Random(0)
    for budget in (32, 50, 100, 256):
        shuffled = windows[:]
        rng.shuffle(shuffled)
        cut = batches(shuffled, budget)
        assert cut == batches(windows, budget)  # the input order does not matter
        assert sorted((w.doc_id, w.start) for b in cut for w in b) == sorted((w.doc_id, w.start) for w in windows)
        widths = [max(len(w.ids) for w in b) for b in cut]
        assert all(len(b) * width <= budget for b, width in zip(cut, widths))
        assert widths == sorted(widths, reverse=True)
        slots = sum(len(b) * width for b, width in zip(cut, widths))
        assert padding_fraction(cut) == pytest.approx(1 - sum(len(w.ids) for w in windows) / slots)
