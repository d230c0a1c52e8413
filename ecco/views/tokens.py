"""The token sequence view, and the token entries other views reuse."""
from __future__ import annotations

from ..record import Record
from ..render import View


def token_entries(record: Record, sequence: int) -> list[dict]:
    """One entry per token of batch item ``sequence``: text, id, position and flags."""
    seq = record.check_sequence(sequence)
    return [
        {
            "text": text,
            "id": token_id,
            "position": position,
            "is_input": position < seq.n_input_tokens,
            "continues_word": continues,
            "special": special,
        }
        for position, (text, token_id, continues, special) in enumerate(
            zip(seq.tokens, seq.token_ids, seq.continues_word, seq.special)
        )
    ]


def tokens_data(record: Record, sequence: int = 0) -> dict:
    """The tokens view's data."""
    seq = record.check_sequence(sequence)
    return {
        "tokens": token_entries(record, sequence),
        "n_input_tokens": seq.n_input_tokens,
        "title": f"{record.model_name} · sequence {sequence}" if record.batch_size > 1 else record.model_name,
    }


def tokens_view(record: Record, sequence: int = 0) -> View:
    """See :meth:`ecco.output.OutputSeq.tokens_view`."""
    return View("tokens", tokens_data(record, sequence))


def html(record: Record) -> str:
    """Every batch item's tokens view, as one notebook fragment."""
    return "".join(tokens_view(record, i).html for i in range(record.batch_size))
