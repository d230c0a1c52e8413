"""What one ecco call captured, as plain data: the :class:`Record` of arrays and token
metadata, and the link to the live model that some analyses need.

A record knows where its tokens sit (:meth:`Record.layout`) and checks the indices users give;
it does no analysis and shows nothing (views live in :mod:`ecco.views`).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import get_args

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .attribution import AttributionResult, Target, explain, generated_targets
from .attribution.problem import Score
from .attribution.registry import get_method
from .causal.diff import InterventionDiff
from .checks import as_int
from .layout import Layout
from .lens import LensHead
from .models.kinds import Kind, as_kind
from .models.spec import ModelSpec
from .runner import Runner
from .shapes import Activations, AttentionWeights, HiddenStates
from .tokens import describe_tokens


@dataclass
class ModelLink:
    """The live parts of the model that some views need; never saved (see ``ecco.load(path, lm=...)``)."""

    tokenizer: PreTrainedTokenizerBase
    lens: LensHead | None
    lens_error: str | None = None
    runner: Runner | None = None
    progress: bool = True  # attribution computed on demand shows a progress bar (the LM's ``verbose``)

    @property
    def model(self) -> nn.Module | None:
        """The live model, if this output still has it."""
        return None if self.runner is None else self.runner.model

    @property
    def spec(self) -> ModelSpec | None:
        """The live model's resolved spec, if this output still has it."""
        return None if self.runner is None else self.runner.spec


class MissingAttributionError(ValueError, KeyError):
    """Attributions that an output does not hold and cannot compute (a ValueError; a KeyError too,
    so that ``output.attribution.get(method)`` returns None)."""

    __str__ = BaseException.__str__  # KeyError's would quote the message


@dataclass
class SequenceMeta:
    """One batch item: its token ids and how to show them."""

    token_ids: list[int]
    n_input_tokens: int
    tokens: list[str]
    continues_word: list[bool]
    special: list[bool]
    token_type_ids: list[int] | None = None  # segment ids of sentence pairs (BERT-style)

    @classmethod
    def from_ids(
        cls, tokenizer: PreTrainedTokenizerBase, ids: list[int], n_input: int, token_type_ids: list[int] | None = None
    ) -> SequenceMeta:
        """Token metadata of ``ids`` (the first ``n_input`` are the prompt), read with ``tokenizer``."""
        text = describe_tokens(tokenizer, ids)
        return cls(list(ids), int(n_input), text.text, text.continues_word, text.special, token_type_ids)

    def __len__(self) -> int:
        return len(self.token_ids)


@dataclass
class Record:
    """Tokens and captures of one call (a prompt or a batch).

    Arrays follow Ecco's layouts, with the batch first and every sequence starting at
    position 0 (shorter items padded at the end; ``lengths`` says where each ends):

    - ``activations[stack]``: numpy (batch, layers, neurons, positions), layers as listed in
      ``activation_layers[stack]`` (numeric order);
    - ``hidden_states[stack]``: torch (batch, layers + 1, positions, hidden), index 0 the
      embeddings, the last already through the model's final norm (as transformers gives it);
    - ``attention['encoder'|'decoder'|'cross']``: torch (batch, layers, heads, queries, keys);
    - ``token_probs`` / ``token_entropy``: (batch, generated) probability of each generated
      token and entropy (nats) of the next-token distribution it was drawn from, from the
      model's raw logits (before temperature or top-k/p); NaN past an item's end.

    ``stack`` is 'decoder' for causal models, 'encoder' for encoders, both for
    encoder-decoder models, whose token lists hold the encoder tokens then the decoder's.

    A generation with interventions (``lm.generate(..., interventions=[...])``) records the
    intervened run; ``clean`` is the same generation without them (not saved by
    :meth:`~ecco.output.OutputSeq.save`), ``intervention_diffs`` one
    :class:`~ecco.causal.diff.InterventionDiff` per sequence (saved).
    """

    model_name: str
    kind: Kind
    n_layers: dict[str, int]
    sequences: list[SequenceMeta]
    activations: dict[str, Activations] = field(default_factory=dict)
    activation_layers: dict[str, list[int]] = field(default_factory=dict)
    hidden_states: dict[str, HiddenStates] = field(default_factory=dict)
    attention: dict[str, AttentionWeights] = field(default_factory=dict)
    token_probs: torch.Tensor | None = None
    token_entropy: torch.Tensor | None = None
    attributions: dict[str, AttributionResult] = field(default_factory=dict)
    link: ModelLink | None = field(default=None, repr=False, compare=False)
    clean: Record | None = field(default=None, repr=False, compare=False)
    intervention_diffs: list[InterventionDiff] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = as_kind(self.kind)

    # ------------------------------------------------------------ Ecco's names
    @property
    def tokens(self) -> list[list[str]]:
        """Readable token strings, one list per batch item."""
        return [s.tokens for s in self.sequences]

    @property
    def token_ids(self) -> torch.Tensor:
        """(batch, positions) token ids, right-padded with -1 past each item's length."""
        out = torch.full((len(self.sequences), max(self.lengths)), -1, dtype=torch.long)
        for row, seq in enumerate(self.sequences):
            out[row, : len(seq)] = torch.tensor(seq.token_ids)
        return out

    @property
    def lengths(self) -> list[int]:
        """Number of tokens of each batch item."""
        return [len(s) for s in self.sequences]

    @property
    def n_input_tokens(self) -> int | list[int]:
        """Prompt length (encoder length for encoder-decoder models); a list for a batch
        whose prompts differ in length."""
        counts = [s.n_input_tokens for s in self.sequences]
        return counts[0] if len(set(counts)) == 1 else counts

    @property
    def batch_size(self) -> int:
        """Number of batch items."""
        return len(self.sequences)

    @property
    def attribution(self) -> AttributionValues:
        """Ecco's view of attributions: per method, one normalised array per explained token
        (for a batch, one such list per sequence). Details: ``attributions[method]``. Asking for
        a method not computed yet computes it with the live model (see :meth:`attribution_result`)."""
        return AttributionValues(self)

    @property
    def decoder_hidden_states(self) -> torch.Tensor | None:
        """``hidden_states['decoder']`` (Ecco's name)."""
        return self.hidden_states.get("decoder")

    @property
    def encoder_hidden_states(self) -> torch.Tensor | None:
        """``hidden_states['encoder']`` (Ecco's name)."""
        return self.hidden_states.get("encoder")

    @property
    def output_text(self) -> list[str]:
        """The generated text of each item (empty for forward-only outputs)."""
        return ["".join(s.tokens[s.n_input_tokens :]) for s in self.sequences]

    def __str__(self) -> str:
        return "\n".join("".join(s.tokens) for s in self.sequences)

    def __repr__(self) -> str:
        captured = [name for name in ("activations", "hidden_states", "attention") if getattr(self, name)]
        return (
            f"{type(self).__name__}(model={self.model_name!r}, kind={self.kind}, batch={self.batch_size}, "
            f"lengths={self.lengths}, captured={captured})"
        )

    # ------------------------------------------------------------------ checks
    def sequence_index(self, sequence: int) -> int:
        """``sequence`` as a Python int, with a clear error when no such batch item exists."""
        return as_int(
            sequence, "sequence", 0, self.batch_size - 1,
            f"sequence={sequence} is out of range: this output holds {self.batch_size} "
            f"sequence(s), numbered 0..{self.batch_size - 1}.",
        )

    def check_sequence(self, sequence: int) -> SequenceMeta:
        """The batch item ``sequence``, with a clear error when it does not exist."""
        return self.sequences[self.sequence_index(sequence)]

    def layout(self, sequence: int) -> Layout:
        """Where the tokens of batch item ``sequence`` sit (checked)."""
        seq = self.check_sequence(sequence)
        return Layout(self.kind, len(seq), seq.n_input_tokens)

    # ------------------------------------------------------------- live model
    def attribution_result(self, method: str) -> AttributionResult:
        """The attributions of ``method``. When this output does not hold them yet but still has
        its live model, they are computed now, with the same numbers as ``attribution=[method]``
        when the output was made (the same targets, foils and score, default options), and kept
        in ``attributions``; without the model, a clear error."""
        if method in self.attributions:
            return self.attributions[method]
        try:
            get_method(method)
        except ValueError as error:
            raise MissingAttributionError(str(error)) from None
        if self.link is None or self.link.runner is None:
            available = ", ".join(self.attributions) or "none"
            raise MissingAttributionError(
                f"No {method!r} attributions in this output (available: {available}), and it has no live model "
                f"to compute them: read it with ecco.load(path, lm=lm), or compute them with "
                f"lm.generate(..., attribution=[{method!r}]) or lm.attribute(prompt, target, attribution=[{method!r}])."
            )
        self._refuse_rerun_if_intervened(f"{method!r} attribution")
        sequences, score = self._attribution_plan()
        result = explain(self.link.runner, sequences, [method], score=score, progress=self.link.progress)[method]
        if result.foil_ids:
            result.foil_text = next(r.foil_text for r in self.attributions.values())
        self.attributions[method] = result
        return result

    def _attribution_plan(self) -> tuple[list[tuple[list[int], int, Target]], Score]:
        """What new attributions explain: the targets (and foils) of the attributions this output
        holds, else every generated token (as ``lm.generate`` does); and the score they explained."""
        if not self.kind.generates:
            raise ValueError(
                f"This output of a masked model ({self.model_name}) comes from a forward pass: no token was "
                "generated, so there is nothing to attribute. Input attribution explains the tokens a causal "
                "or encoder-decoder model generates (lm.generate or lm.attribute)."
            )
        known = next(iter(self.attributions.values()), None)
        # The score asked for; files saved before results kept it: any method but LRP (which reports
        # the logit it explains) explains the score asked.
        asked = [r.asked_score for r in self.attributions.values() if r.asked_score in get_args(Score)] or [
            r.score for r in self.attributions.values() if r.method != "lrp" and r.score in get_args(Score)
        ]
        sequences = []
        for index, seq in enumerate(self.sequences):
            target = generated_targets(self.kind, seq.token_ids, seq.n_input_tokens)
            if known is not None:
                layout = self.layout(index)
                positions = known.targets[index]
                foils = known.foil_ids[index] if known.foil_ids else None
                target = Target([layout.predicting_column(p) for p in positions], [seq.token_ids[p] for p in positions], foils)
            if not target.positions:
                raise ValueError(
                    f"Sequence {index} of this output has no generated tokens to attribute (lm(text) only reads the "
                    "text): use lm.generate(text, attribution=[...]) or lm.attribute(prompt, target)."
                )
            sequences.append((seq.token_ids, seq.n_input_tokens, target))
        return sequences, asked[0] if asked else "prob"

    def lens_head(self) -> LensHead:
        """The model's lens head, with a clear error when this record has none."""
        if self.link is None:
            raise ValueError(
                "The logit lens needs the model's head: load the output with ecco.load(path, lm=lm), or "
                "use an output made by this session's LM."
            )
        if self.link.lens is None:
            raise ValueError(self.link.lens_error or "This model has no LM head for the logit lens.")
        return self.link.lens

    def runner(self, what: str) -> Runner:
        """The live model's runner, for analyses that rerun the model (``what`` names them)."""
        if self.link is None or self.link.runner is None:
            raise ValueError(f"{what} reruns the model: use an output of this session's LM or ecco.load(path, lm=lm).")
        self._refuse_rerun_if_intervened(what)
        return self.link.runner

    def _refuse_rerun_if_intervened(self, what: str) -> None:
        """A ValueError when this output was generated with interventions: a rerun would use the
        model without them and describe another computation than the one recorded."""
        if self.intervention_diffs:
            raise ValueError(
                f"{what} reruns the model, but this output was generated with interventions, which exist only during "
                "lm.generate: a rerun would explain the model without them. Use output.clean for the clean run, or "
                "capture what you need in the same lm.generate(..., interventions=...) call (e.g. attention=True)."
            )

    def token_text(self, token_id: int) -> str:
        """The text of one token id (the id itself when the tokenizer is not at hand)."""
        return self.link.tokenizer.decode([int(token_id)]) if self.link else str(token_id)

    @property
    def mask_token_id(self) -> int | None:
        """The tokenizer's mask token id, if any."""
        return self.link.tokenizer.mask_token_id if self.link else None


class AttributionValues(Mapping):
    """``output.attribution``: per method, Ecco's normalised values (one array per explained token;
    for a batch, one list per sequence). Lists the methods computed so far; asking for another
    computes it when the output still has its live model (:meth:`Record.attribution_result`)."""

    def __init__(self, record: Record) -> None:
        self._record = record

    def __getitem__(self, method: str) -> list:
        values = self._record.attribution_result(method).values
        return values[0] if self._record.batch_size == 1 else values

    def __contains__(self, method: object) -> bool:
        return method in self._record.attributions

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._record.attributions))

    def __len__(self) -> int:
        return len(self._record.attributions)

    def __repr__(self) -> str:
        return f"AttributionValues(computed={list(self)})"
