"""The three kinds of model ecco reads, as one enum that knows each kind's conventions.

A kind is still its string (``Kind.CAUSAL == "causal"``), so saved files and user code that
compare strings keep working; ecco's own code asks the kind a question instead of comparing
strings in many places.
"""
from __future__ import annotations

from enum import Enum


class Kind(str, Enum):
    """causal (decoder-only), masked (encoder-only) or enc-dec (encoder-decoder)."""

    CAUSAL = "causal"
    MASKED = "masked"
    ENC_DEC = "enc-dec"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def stacks(self) -> tuple[str, ...]:
        """Names of the stacks of blocks, in the order tokens are listed."""
        return {"causal": ("decoder",), "masked": ("encoder",), "enc-dec": ("encoder", "decoder")}[self.value]

    @property
    def main_stack(self) -> str:
        """The stack whose outputs are the model's predictions (the decoder if there is one)."""
        return self.stacks[-1]

    @property
    def generates(self) -> bool:
        """Whether the model continues text (causal and encoder-decoder models)."""
        return self is not Kind.MASKED

    @property
    def encoder_decoder(self) -> bool:
        """Whether the model has an encoder and a decoder."""
        return self is Kind.ENC_DEC

    @property
    def decoder_start(self) -> int:
        """Tokens before the first generated one in the decoder: the decoder start token."""
        return 1 if self is Kind.ENC_DEC else 0


def as_kind(value: str | Kind) -> Kind:
    """A :class:`Kind` from its name, with a clear error for anything else."""
    try:
        return Kind(value)
    except ValueError:
        raise ValueError(f"Unknown model kind {value!r}; valid kinds: causal, masked, enc-dec.") from None
