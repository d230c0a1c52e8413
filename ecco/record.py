"""The plain parts of a captured record: per-sequence token metadata and the live-model link."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PreTrainedTokenizerBase

from .lens import LensHead
from .models.spec import ModelSpec
from .runner import Runner
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
        text = describe_tokens(tokenizer, ids)
        return cls(list(ids), int(n_input), text.text, text.continues_word, text.special, token_type_ids)

    def __len__(self) -> int:
        return len(self.token_ids)
