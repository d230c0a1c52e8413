"""What the user gives an LM, made into token ids: encoding, padding, context-window checks and
the checks of the other arguments (numbers of new tokens, attribution options)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..attribution import Options
from ..checks import as_int, as_ints, is_int
from ..models.kinds import Kind
from ..models.spec import ModelSpec
from ..runner import Runner

_DEFAULT_NEW_TOKENS = 8
# A text, token ids (a list, a 1-d tensor or array), or a batch of either (a list, a 2-d tensor or array).
Prompts = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]] | torch.Tensor | np.ndarray


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
        return self.runner.context_size()

    def _check_fits(self, length: int, what: str) -> None:
        context = self.context_size()
        if context is not None and length > context:
            raise ValueError(
                f"{what} {length} tokens, longer than the model's context window of {context} tokens. Shorten the text."
            )

    def encode(self, texts: Prompts) -> list[list[int]]:
        """Token ids of a text or a non-empty list of texts (tokenised with special tokens), or of
        prompts given as token ids (used as they are; see :func:`prompt_items`)."""
        batch, _ = prompt_items(texts)
        if not batch:
            raise ValueError("No input text given: pass a string or a non-empty list of strings (or token ids).")
        encoded = []
        for index, text in enumerate(batch):
            if isinstance(text, str) and not text.strip():
                raise ValueError(f"Input text {index} is empty: give the model some text to read.")
            ids = self.tokenizer(text, add_special_tokens=True)["input_ids"] if isinstance(text, str) else text
            self._check_ids(ids, f"Input {index}")
            self._check_fits(len(ids), f"Input text {index} is")
            encoded.append(list(ids))
        return encoded

    def continuations(self, texts: Prompts, count: int, what: str) -> list[list[int]]:
        """Token ids of target / foil texts (without special tokens) or token ids, one per prompt
        (one text or id list is used for every prompt)."""
        items, single = prompt_items(texts)
        items = items * count if single else items
        if len(items) != count:
            raise ValueError(f"Got {len(items)} {what}s for {count} prompts; give one {what} per prompt.")
        out = []
        for text in items:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if isinstance(text, str) else text
            if not ids:
                raise ValueError(f"The {what} {text!r} tokenizes to nothing: give a non-empty continuation.")
            self._check_ids(ids, f"The {what}")
            out.append(list(ids))
        return out

    def _check_ids(self, ids: list[int], what: str) -> None:
        """Token ids given by the user must exist in the model's vocabulary."""
        if not ids:
            raise ValueError(f"{what} has no token ids: give at least one token.")
        vocab = self.runner.model.get_input_embeddings().weight.shape[0]
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"{what} has token ids {bad[:5]} outside the model's vocabulary 0..{vocab - 1}.")

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
        self, inputs: Prompts | Mapping, text_pair: str | Sequence[str] | None
    ) -> dict[str, torch.Tensor]:
        """The tensors of ``lm(inputs, text_pair)``: from texts (sentence pairs for encoders), token
        ids or a tokenizer's output."""
        if isinstance(inputs, Mapping):
            return _tokenizer_output(inputs)
        texts, _ = prompt_items(inputs)
        if not all(isinstance(text, str) for text in texts):
            return self._id_inputs(inputs, text_pair)
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

    def _id_inputs(self, inputs: Prompts, text_pair: object) -> dict[str, torch.Tensor]:
        """The tensors of ``lm(token ids)``: the ids as given, right-padded, with the segment ids a
        tokenizer gives one text (all 0) where the model reads them."""
        if text_pair is not None:
            raise ValueError(
                "text_pair pairs texts: give both sentences as text, or pass the pair's token ids and "
                "token_type_ids as a tokenizer output (lm(lm.tokenizer(a, b, return_tensors='pt')))."
            )
        batch = self.pad(self.encode(inputs), left=False)
        encoding = {"input_ids": batch.ids.cpu(), "attention_mask": batch.mask.cpu()}
        if "token_type_ids" in self.tokenizer.model_input_names:
            encoding["token_type_ids"] = torch.zeros_like(encoding["input_ids"])
        return encoding


def prompt_items(prompts: Prompts) -> tuple[list[str | list[int]], bool]:
    """The prompts of a call, each a text or a list of token ids, and whether one was given.

    One prompt is a string, a list of token ids or a 1-d integer tensor / NumPy array; a batch is
    a list of those, or a 2-d integer tensor / array (one prompt per row, taken whole)."""
    if isinstance(prompts, str):
        return [prompts], True
    if isinstance(prompts, (torch.Tensor, np.ndarray)):
        if prompts.ndim not in (1, 2):
            raise ValueError(f"Token ids must be 1-d (one prompt) or 2-d (a batch), got shape {tuple(prompts.shape)}.")
        if prompts.ndim == 1:
            return [as_ints(prompts, "token ids")], True
        return [as_ints(row, f"token ids of row {i}") for i, row in enumerate(prompts)], False
    if isinstance(prompts, Mapping):
        raise ValueError("A tokenizer output is read by lm(inputs); pass its input_ids here.")
    if is_int(prompts) or not isinstance(prompts, Sequence):
        raise ValueError(f"Give a text, a list of texts or token ids (a list, or a 1-d / 2-d tensor), got {prompts!r}.")
    items = list(prompts)
    if items and all(is_int(i) for i in items):
        return [as_ints(items, "token ids")], True
    return [item if isinstance(item, str) else as_ints(item, f"prompt {i}") for i, item in enumerate(items)], False


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
    return Options.from_mapping(values, [stack.n_layers for stack in spec.stacks.values()] if spec is not None else [])
