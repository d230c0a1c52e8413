"""Readable tokens and word boundaries come from the tokenizer."""
from __future__ import annotations

from ecco.tokens import describe_tokens


def test_bpe_pieces_and_word_continuation(tokenizer):
    ids = tokenizer("the quick brownish fox")["input_ids"]
    text = describe_tokens(tokenizer, ids)
    assert "".join(text.text) == "the quick brownish fox"
    words = tokenizer("the quick brownish fox").word_ids()
    assert text.continues_word == [i > 0 and words[i] == words[i - 1] for i in range(len(ids))]
    assert any(text.continues_word)  # "brownish" is not one token of this tiny vocabulary


def test_special_tokens_flagged_and_never_continue(tokenizer):
    ids = [tokenizer.bos_token_id] + tokenizer("hello world")["input_ids"] + [tokenizer.eos_token_id]
    text = describe_tokens(tokenizer, ids)
    assert text.special[0] and text.special[-1] and not any(text.special[1:-1])
    assert not text.continues_word[0] and not text.continues_word[-1]
    assert text.text[0] == "<s>"


def test_non_canonical_split_falls_back_to_text(tokenizer):
    # "hello" spelled letter by letter is not how the tokenizer would split it.
    ids = [tokenizer.convert_tokens_to_ids(c) for c in "hello"]
    text = describe_tokens(tokenizer, ids)
    assert text.text == list("hello")
    assert text.continues_word == [False, True, True, True, True]
