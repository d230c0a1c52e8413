"""What one ecco call captured, as plain data: the :class:`Record` of arrays and token
metadata, and the link to the live model that some analyses need.

A record knows where its tokens sit (:meth:`Record.layout`) and checks the indices users give;
it does no analysis and shows nothing (views live in :mod:`ecco.views`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .attribution import AttributionResult
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

    @property
    def model(self) -> nn.Module | None:
        """The live model, if this output still has it."""
        return None if self.runner is None else self.runner.model

    @property
    def spec(self) -> ModelSpec | None:
        """The live model's resolved spec, if this output still has it."""
        return None if self.runner is None else self.runner.spec


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
    def attribution(self) -> dict[str, list]:
        """Ecco's view of attributions: per method, one normalised array per explained token
        (for a batch, one such list per sequence). Details: ``attributions[method]``."""
        single = self.batch_size == 1
        return {name: (r.values[0] if single else r.values) for name, r in self.attributions.items()}

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
        return self.link.runner

    def token_text(self, token_id: int) -> str:
        """The text of one token id (the id itself when the tokenizer is not at hand)."""
        return self.link.tokenizer.decode([int(token_id)]) if self.link else str(token_id)

    @property
    def mask_token_id(self) -> int | None:
        """The tokenizer's mask token id, if any."""
        return self.link.tokenizer.mask_token_id if self.link else None
