"""Reading a record for the analyses: checked selections of its arrays, as the core functions
(:mod:`ecco.lens`, :mod:`ecco.decomposition`, :mod:`ecco.attention`) take them.

Every function here checks the user's indices against the record and says what is valid; the
maths stays in the core modules, the presentation in :mod:`ecco.views`.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from . import attention, decomposition, lens
from .checks import as_int, is_int
from .record import Record
from .tuned.lens import TunedLens


def check_position(record: Record, position: int, sequence: int) -> int:
    """``position`` checked against batch item ``sequence``, as a Python int."""
    seq = record.check_sequence(sequence)
    out_of_range = f"position={position} is out of range: sequence {sequence} has tokens 0..{len(seq) - 1}."
    return as_int(position, "position", 0, len(seq) - 1, out_of_range)


# ----------------------------------------------------------------- neurons
def _choose(captured: dict, name: str | None, what: str, flag: str, noun: str) -> str:
    """``name`` (the decoder's, else the encoder's, by default) among the ``captured`` arrays."""
    if not captured:
        raise ValueError(
            f"This output has no {what}: create the LM with {flag}=True, e.g. "
            f"ecco.from_pretrained(name, {flag}=True)."
        )
    name = name or ("decoder" if "decoder" in captured else "encoder")
    if name not in captured:
        raise ValueError(f"No {name!r} {noun} in this output; available: {', '.join(captured)}.")
    return name


def activation_stack(record: Record, stack: str | None = None) -> str:
    """The stack whose activations to use (the decoder's by default), checked."""
    return _choose(record.activations, stack, "neuron activations", "activations", "activations")


def select_activations(
    record: Record,
    from_layer: int | None = None,
    to_layer: int | None = None,
    sequences: list[int] | None = None,
    stack: str | None = None,
    exclude: int | str | Iterable[int | str] | None = None,
) -> decomposition.Selection:
    """The record's activations of layers [from_layer, to_layer) as one (features, tokens) matrix,
    without the tokens of ``exclude`` (see :func:`excluded_positions`)."""
    stack = activation_stack(record, stack)
    sequences = None if sequences is None else [record.sequence_index(s) for s in sequences]
    spans = [record.layout(s).span(stack) for s in range(record.batch_size)]
    chosen = range(record.batch_size) if sequences is None else sequences
    return decomposition.select_layers(
        record.activations[stack], record.activation_layers[stack], record.n_layers[stack], spans,
        from_layer, to_layer, sequences, stack, excluded_positions(record, exclude, spans, chosen),
    )


def excluded_positions(
    record: Record, exclude: int | str | Iterable[int | str] | None, spans: list[range], sequences: Iterable[int]
) -> set[tuple[int, int]]:
    """(sequence, position) pairs to leave out: token-list positions, ``'first'`` (each
    sequence's first token in the stack, where transformers put a massive activation) and
    ``'special'`` (special tokens)."""
    items = [] if exclude is None else [exclude] if isinstance(exclude, str) or is_int(exclude) else list(exclude)
    out: set[tuple[int, int]] = set()
    for item in items:
        for s in sequences:
            span, seq = spans[s], record.sequences[s]
            if item == "first":
                out.update((s, p) for p in span[:1])
            elif item == "special":
                out.update((s, p) for p in span if seq.special[p])
            elif is_int(item) and 0 <= int(item) < len(seq):
                out.add((s, int(item)))
            else:
                raise ValueError(
                    f"exclude entry {item!r} is not 'first', 'special' or a token position 0..{len(seq) - 1}."
                )
    return out


# --------------------------------------------------------------------- lens
def check_layer(record: Record, layer: int | None) -> int | None:
    """``layer`` (None: all) checked against the main stack's layers, as a Python int."""
    n = record.n_layers[record.kind.main_stack]
    out_of_range = f"layer={layer} is out of range: the model has layers 0..{n - 1}."
    return None if layer is None else as_int(layer, "layer", 0, n - 1, out_of_range)


@dataclass
class LensReader:
    """How a view reads layers: the model's head, and a trained lens's translators (None: the logit lens)."""

    head: lens.LensHead
    translate: lens.Translate | None
    name: str  # 'Logit lens' or 'Tuned lens', for titles

    def heading(self, text: str) -> str:
        """A view's title: ``text`` as the logit lens has always shown it, or marked as a trained lens's."""
        return text if self.translate is None else f"{self.name}: {text[0].lower()}{text[1:]}"


def lens_reader(record: Record, chosen: object = "logit") -> LensReader:
    """The lens a view asked for: ``'logit'``, a :class:`~ecco.tuned.lens.TunedLens`, or the path of
    one saved with ``lens.save(path)``; a trained lens is checked against the record's model."""
    head = record.lens_head()
    if isinstance(chosen, str) and chosen == "logit":
        return LensReader(head, None, "Logit lens")
    if isinstance(chosen, (str, os.PathLike)):
        chosen = TunedLens.load(chosen)
    if not isinstance(chosen, TunedLens):
        raise ValueError(
            f"lens must be 'logit', a trained lens (ecco.train_lens / ecco.load_lens) or the path of a saved lens, "
            f"got {type(chosen).__name__}."
        )
    stack = record.kind.main_stack
    if chosen.info.stack != stack:
        raise ValueError(f"This lens reads a model's {chosen.info.stack} stack; this output's lens reads its {stack} stack.")
    states = block_hidden(record, 0, [0])
    chosen.check_model(record.model_name, record.n_layers[stack], states.shape[-1], head.vocab, head.fingerprint())
    return LensReader(head, chosen.translate, "Tuned lens")


def lens_site(record: Record, position: int, sequence: int = 0) -> lens.LensSite:
    """Where the lens reads for ``position`` of batch item ``sequence`` (checked)."""
    position = check_position(record, position, sequence)
    return lens.lens_site(record.layout(sequence), record.sequences[sequence].token_ids, position)


def lens_sites(record: Record, sequence: int) -> list[lens.LensSite]:
    """The sites ``rankings`` shows: generated tokens, else every predictable token."""
    seq = record.check_sequence(sequence)
    layout = record.layout(sequence)
    positions = lens.default_positions(layout, seq.token_ids, seq.special, record.mask_token_id)
    return [lens.lens_site(layout, seq.token_ids, p) for p in positions]


def block_hidden(record: Record, sequence: int, columns: list[int]) -> torch.Tensor:
    """(layers, positions, hidden): outputs of blocks 0..L-1 of the main stack (the embeddings
    row dropped)."""
    stack = record.kind.main_stack
    if stack not in record.hidden_states:
        raise ValueError("This output has no hidden states: create the LM with hidden_states=True (the default).")
    return record.hidden_states[stack][sequence, 1:, columns].float()


def chosen_ids(record: Record, sequence: int, sites: list[lens.LensSite]) -> torch.Tensor:
    """The token each site is about (the model's final top-1 where no token is known)."""
    head = record.lens_head()
    if all(s.token_id is not None for s in sites):
        return lens.chosen_ids(head, torch.empty(0), sites)
    return lens.chosen_ids(head, block_hidden(record, sequence, [s.column for s in sites])[-1], sites)


# ---------------------------------------------------------------- attention
def check_attention(record: Record, name: str | None = None) -> str:
    """The attention set to show (the main one by default), checked."""
    return _choose(record.attention, name, "attention weights", "attention", "attention")


def set_tokens(record: Record, name: str, sequence: int) -> tuple[list[dict], list[dict]]:
    """(query tokens, key tokens) of attention set ``name`` for batch item ``sequence``."""
    seq = record.check_sequence(sequence)
    return attention.set_tokens(record.layout(sequence), seq.tokens, name)


def packed_set(record: Record, name: str, sequence: int) -> dict:
    """One attention set of one batch item, packed for the views."""
    queries, keys = set_tokens(record, name, sequence)
    return attention.packed_set(record.attention[name][sequence], name, queries, keys)


def model_inputs(record: Record, sequence: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The inputs that reproduce batch item ``sequence`` in one forward pass."""
    seq = record.check_sequence(sequence)
    layout = record.layout(sequence)
    ids = torch.tensor([seq.token_ids], device=device)
    if record.kind.encoder_decoder:
        encoder, decoder = layout.span("encoder"), layout.span("decoder")
        return {"input_ids": ids[:, encoder.start : encoder.stop], "decoder_input_ids": ids[:, decoder.start : decoder.stop]}
    inputs = {"input_ids": ids}
    if seq.token_type_ids is not None:
        inputs["token_type_ids"] = torch.tensor([seq.token_type_ids], device=device)
    return inputs
