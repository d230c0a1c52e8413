"""What the user gives an LM, made into token ids: encoding, padding, context-window checks and
the checks of the other arguments (numbers of new tokens, attribution options)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from transformers import PreTrainedTokenizerBase

from ..attribution import Options
from ..checks import as_int
from ..models.kinds import Kind
from ..models.spec import ModelSpec
from ..runner import Runner

_DEFAULT_NEW_TOKENS = 8


@dataclass
class Batch:
    """Padded token ids of a batch of prompts."""

    ids: torch.Tensor
    mask: torch.Tensor
    lengths: list[int]
    pads: list[int]  # left padding per item (causal models), else zeros


class Inputs:
    """Tokenises and pads texts for one model, with clear errors for what cannot run."""

    def __init__(self, runner: Runner, tokenizer: PreTrainedTokenizerBase) -> None:
        self.runner = runner
        self.tokenizer = tokenizer

    def context_size(self) -> int | None:
        """The model's context window in tokens, if its config says."""
        config = self.runner.model.config
        for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _check_fits(self, length: int, what: str) -> None:
        context = self.context_size()
        if context is not None and length > context:
            raise ValueError(
                f"{what} {length} tokens, longer than the model's context window of {context} tokens. Shorten the text."
            )

    def encode(self, texts: str | Sequence[str]) -> list[list[int]]:
        """Token ids (with special tokens) of a text or a non-empty list of texts."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        if not batch:
            raise ValueError("No input text given: pass a string or a non-empty list of strings.")
        encoded = []
        for index, text in enumerate(batch):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"Input text {index} is empty: give the model some text to read.")
            ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
            self._check_fits(len(ids), f"Input text {index} is")
            encoded.append(ids)
        return encoded

    def continuations(self, texts: str | Sequence[str], count: int, what: str) -> list[list[int]]:
        """Token ids of target / foil texts, one per prompt, without special tokens."""
        texts = [texts] * count if isinstance(texts, str) else list(texts)
        if len(texts) != count:
            raise ValueError(f"Got {len(texts)} {what}s for {count} prompts; give one {what} per prompt.")
        out = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if isinstance(text, str) else []
            if not ids:
                raise ValueError(f"The {what} {text!r} tokenizes to nothing: give a non-empty continuation.")
            out.append(list(ids))
        return out

    def check_context(self, length: int, what: str) -> None:
        """A causal sequence of ``length`` tokens must fit the context window."""
        context = self.context_size()
        if context is not None and self.runner.spec.kind is Kind.CAUSAL and length > context:
            raise ValueError(
                f"{what} make {length} tokens, longer than the model's context window of {context} tokens. "
                "Shorten the text or generate fewer tokens."
            )

    def pad_id(self) -> int:
        """The id that pads a batch: the tokenizer's pad or end-of-sequence token, else the model's pad."""
        for candidate in (
            self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, self.runner.model.config.pad_token_id
        ):
            if candidate is not None:
                return int(candidate)
        return 0

    def pad(self, sequences: list[list[int]], left: bool) -> Batch:
        """Pad token id lists to one width (on the left for generation with causal models)."""
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id(), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        pads = []
        for row, seq in enumerate(sequences):
            start = width - len(seq) if left else 0
            ids[row, start : start + len(seq)] = torch.tensor(seq)
            mask[row, start : start + len(seq)] = 1
            pads.append(start)
        device = self.runner.device
        return Batch(ids.to(device), mask.to(device), [len(s) for s in sequences], pads)

    def forward_inputs(
        self, inputs: str | Sequence[str] | Mapping, text_pair: str | Sequence[str] | None
    ) -> dict[str, torch.Tensor]:
        """The tensors of ``lm(inputs, text_pair)``: from texts (sentence pairs for encoders) or
        from a tokenizer's output."""
        if isinstance(inputs, Mapping):
            return _tokenizer_output(inputs)
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        pairs = None if text_pair is None else ([text_pair] if isinstance(text_pair, str) else list(text_pair))
        self.encode(texts)
        if pairs is not None:
            if len(pairs) != len(texts):
                raise ValueError(f"text_pair has {len(pairs)} texts for {len(texts)} inputs; give one per input.")
            self.encode(pairs)
        if len(texts) > 1 and self.tokenizer.pad_token_id is None:
            # A tokenizer without a pad token (GPT-2, Llama) cannot pad a batch itself.
            sequences = [
                self.tokenizer(t, p, add_special_tokens=True)["input_ids"]
                for t, p in zip(texts, pairs or [None] * len(texts))
            ]
            batch = self.pad(sequences, left=False)
            return {"input_ids": batch.ids.cpu(), "attention_mask": batch.mask.cpu()}
        encoding = self.tokenizer(texts, pairs, padding=True, return_tensors="pt")
        self._check_fits(encoding["input_ids"].shape[1], "The input is")
        return dict(encoding)


def _tokenizer_output(inputs: Mapping) -> dict[str, torch.Tensor]:
    """A tokenizer's output as (batch, positions) tensors, with an attention mask."""
    if "input_ids" not in inputs:
        raise ValueError("lm(inputs) needs 'input_ids' in a tokenizer output, or plain text.")
    ids = torch.as_tensor(inputs["input_ids"])
    ids = ids[None] if ids.dim() == 1 else ids
    encoding = {k: torch.as_tensor(v) for k, v in inputs.items() if v is not None}
    encoding["input_ids"] = ids
    encoding.setdefault("attention_mask", torch.ones_like(ids))
    encoding["attention_mask"] = encoding["attention_mask"].reshape(ids.shape)
    if ids.shape[1] == 0:
        raise ValueError("lm(inputs) got no tokens: give the model some text to read.")
    return encoding


def new_tokens(prompt_lengths: list[int], generate: int | None, max_length: int | None) -> int:
    """The number of new tokens: ``generate``, or ``max_length`` less the longest prompt."""
    if generate is not None and max_length is not None:
        raise ValueError("Pass either generate (new tokens) or max_length (total length), not both.")
    if generate is None and max_length is None:
        return _DEFAULT_NEW_TOKENS
    if generate is not None:
        return as_int(generate, "generate", 1, None, f"generate must be a positive number of new tokens, got {generate!r}.")
    n = as_int(max_length, "max_length") - max(prompt_lengths)
    if n < 1:
        raise ValueError(
            f"max_length={max_length} leaves no room to generate after a {max(prompt_lengths)}-token "
            "prompt; max_length counts the prompt too (or use generate=N new tokens)."
        )
    return n


def attribution_options(values: Mapping | None, spec: ModelSpec | None = None) -> Options:
    """Options from keyword arguments, with a clear error for unknown names or bad values
    (checked against the blocks of ``spec``'s stacks when given), before the model runs."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(values or {}) - known)
    if unknown:
        raise ValueError(f"Unknown attribution option(s) {unknown}; valid options: {sorted(known)}.")
    options = Options(**(values or {}))
    for stack in spec.stacks.values() if spec is not None else ():
        options.check_layers(stack.n_layers)
    return options
