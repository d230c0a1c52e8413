"""The token sequence view, and the token entries other views reuse."""
from __future__ import annotations

from ..record import Record
from ..render import View


def title(record: Record, what: str, sequence: int | None = None) -> str:
    """A view's title: what it shows, the model, and the sequence when the output holds several."""
    where = f" · sequence {int(sequence)}" if sequence is not None and record.batch_size > 1 else ""
    return f"{what} · {record.model_name}{where}"


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
        "title": title(record, "Tokens", sequence),
    }


def tokens_view(record: Record, sequence: int = 0) -> View:
    """See :meth:`ecco.output.OutputSeq.tokens_view`."""
    return View("tokens", tokens_data(record, sequence))


def html(record: Record) -> str:
    """Every batch item's tokens view, as one notebook fragment."""
    return "".join(tokens_view(record, i).html for i in range(record.batch_size))
