"""Where the tokens of one sequence sit: the one place that knows the position conventions.

A sequence's token list holds, for encoder-decoder models, the encoder tokens then the
decoder tokens (the decoder start token first); for other models just its tokens. Each stack
stores its own arrays from column 0. A :class:`Layout` answers, for one sequence:

- which stacks exist and which is the main one (the decoder if any);
- which token-list positions a stack holds, and the column of position ``p`` in it;
- which positions were generated (the explained targets of an attribution);
- which hidden-state column predicts the token at ``p`` (where the lens reads and where the
  logits of an attribution target are taken).
"""
from __future__ import annotations

from dataclasses import dataclass

from .models.kinds import Kind, as_kind


@dataclass(frozen=True)
class Layout:
    """Positions of one sequence of ``length`` tokens whose first ``n_input`` are the prompt
    (the encoder input for encoder-decoder models)."""

    kind: Kind
    length: int
    n_input: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", as_kind(self.kind))

    # ------------------------------------------------------------------ stacks
    @property
    def stacks(self) -> tuple[str, ...]:
        """Names of the stacks, in the order tokens are listed."""
        return self.kind.stacks

    @property
    def main(self) -> str:
        """The main stack: the decoder if there is one, else the encoder."""
        return self.kind.main_stack

    def span(self, stack: str) -> range:
        """Token-list positions held by ``stack``."""
        if stack not in self.stacks:
            raise ValueError(f"A {self.kind} model has no {stack!r} stack; its stacks: {', '.join(self.stacks)}.")
        if self.kind.encoder_decoder:
            return range(0, self.n_input) if stack == "encoder" else range(self.n_input, self.length)
        return range(0, self.length)

    def column(self, stack: str, position: int) -> int:
        """The column of token-list ``position`` in ``stack``'s arrays."""
        span = self.span(stack)
        if position not in span:
            raise ValueError(f"position {position} is not in the {stack} (positions {span.start}..{span.stop - 1}).")
        return position - span.start

    def attention_spans(self, name: str) -> tuple[range, range]:
        """(query positions, key positions) of an attention set: a stack's self-attention, or
        'cross' (decoder queries over encoder keys)."""
        if name == "cross":
            if not self.kind.encoder_decoder:
                raise ValueError(f"A {self.kind} model has no cross-attention.")
            return self.span("decoder"), self.span("encoder")
        return self.span(name), self.span(name)

    # ------------------------------------------------------------- predictions
    @property
    def first_predicted(self) -> int:
        """The first position whose token some hidden state predicts: 1 for causal models
        (the first token has no prediction), the first token after the decoder start for
        encoder-decoder models, 0 for masked models (each position predicts itself)."""
        if self.kind is Kind.MASKED:
            return 0
        return self.span(self.main).start + 1

    @property
    def first_generated(self) -> int:
        """The position of the first generated token (``length`` when none was)."""
        if self.kind is Kind.MASKED:
            return self.length
        return self.n_input + self.kind.decoder_start

    @property
    def generated(self) -> range:
        """Positions of the generated (or teacher-forced continuation) tokens."""
        return range(self.first_generated, self.length)

    def predicting_column(self, position: int) -> int:
        """The main stack's column whose output predicts the token at ``position``."""
        if not self.first_predicted <= position < self.length:
            raise ValueError(
                f"position={position} has no prediction: use a position from {self.first_predicted} to "
                f"{self.length - 1}."
            )
        return position - self.first_predicted

    def predicted_position(self, column: int) -> int:
        """Inverse of :meth:`predicting_column`: the position predicted at a main-stack column."""
        return column + self.first_predicted

    def step(self, position: int) -> int:
        """Index of a generated ``position`` among the generated tokens (per-step scores)."""
        return position - self.first_generated
