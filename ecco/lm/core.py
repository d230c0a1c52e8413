"""What every job of an LM shares: the model behind its runner, the tokenizer, the capture
flags, and the assembly of captured chunks into an :class:`~ecco.output.OutputSeq`."""
from __future__ import annotations

import contextlib

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..capture import FFNRecorder, shift_left, stitch_attention, stitch_steps
from ..lens import LensHead
from ..models.kinds import Kind
from ..models.registry import resolve
from ..models.spec import ModelSpec
from ..output import OutputSeq
from ..record import ModelLink, SequenceMeta
from ..runner import Runner
from .flags import CaptureFlags
from .inputs import Inputs

Captures = dict[str, dict[str, torch.Tensor]]
Recorder = FFNRecorder | contextlib.nullcontext


class Core:
    """A model, its tokenizer and what to capture: the state every job (generation, forward
    pass, teacher forcing) reads. The jobs call the model with :func:`forward` and build their
    result with :func:`captures` and :func:`output`."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_name: str | None, flags: CaptureFlags
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self.spec: ModelSpec = resolve(model, flags.model_config)
        self.runner = Runner(model, self.spec)
        self.link = _link(self.runner, tokenizer)
        self.flags = flags
        self.inputs = Inputs(self.runner, tokenizer)

    @property
    def flags(self) -> CaptureFlags:
        """What is captured; setting it checks the activation layers against the model again."""
        return self._flags

    @flags.setter
    def flags(self, flags: CaptureFlags) -> None:
        self.activation_layers = flags.layers(self.spec, self.model_name)
        self.link.progress = flags.verbose  # attributions computed later by an output show progress as verbose says
        self._flags = flags

    @property
    def kind(self) -> Kind:
        """causal, masked or enc-dec."""
        return self.spec.kind


def require_next_token(core: Core, job: str) -> None:
    """A ValueError for an encoder-only model: ``job`` follows a next-token prediction."""
    if not core.kind.generates:
        raise ValueError(f"{core.model_name} is an encoder without a generative head: {job} follows a next-token "
                         "prediction and needs a causal or encoder-decoder model.")


def one_prompt(core: Core, text: object, job: str, what: str = "prompt") -> list[int]:
    """The token ids of one prompt (a text or its ids); a ValueError for a batch."""
    prompts = core.inputs.encode(text)
    if len(prompts) != 1:
        raise ValueError(f"{job} reads one {what}: give one text (or one list of token ids).")
    return prompts[0]


def decoder_start_id(core: Core) -> int:
    """The token an encoder-decoder model's decoder starts from."""
    return int(core.model.generation_config.decoder_start_token_id)


def recorder(core: Core, stack: str, live: bool = True) -> Recorder:
    """FFN hooks for one stack, or nothing when activations are off or not captured live."""
    if not (core.flags.activations and live):
        return contextlib.nullcontext()
    return FFNRecorder(core.spec, {stack: core.activation_layers[stack]}, core.flags.store_dtype)


def forward(core: Core, **inputs: object) -> object:
    """One model call through the runner, with the output flags of what is captured."""
    inputs.update(output_hidden_states=core.flags.hidden_states, output_attentions=core.flags.attention)
    return core.runner.forward(**inputs)


def output_fields(kind: Kind) -> tuple[dict[str, str], dict[str, str]]:
    """Where a transformers output keeps the hidden states of each stack, and the weights of
    each attention set (the same names in ``generate``'s output)."""
    if kind.encoder_decoder:
        return (
            {"encoder": "encoder_hidden_states", "decoder": "decoder_hidden_states"},
            {"encoder": "encoder_attentions", "decoder": "decoder_attentions", "cross": "cross_attentions"},
        )
    return {kind.main_stack: "hidden_states"}, {kind.main_stack: "attentions"}


def captures(
    core: Core, hidden: dict[str, list], attention: dict[str, list], recorders: list[Recorder], pads: list[int]
) -> Captures:
    """Stitch per-call chunks into whole-sequence arrays on the CPU.

    ``pads`` is the left padding of a causal batch; it is moved to the right end so
    every sequence starts at position 0.
    """
    dtype = core.flags.store_dtype
    found: Captures = {}
    if core.flags.hidden_states:
        found["hidden_states"] = {
            stack: shift_left(stitch_steps(steps, dtype), pads, [2]) for stack, steps in hidden.items()
        }
    if core.flags.attention:
        found["attention"] = {
            name: shift_left(stitch_attention(steps, steps[-1][0].shape[-1], dtype), pads, [3, 4])
            for name, steps in attention.items()
        }
    activations = {
        stack: shift_left(rec.collect(stack), pads, [3])
        for rec in recorders
        if isinstance(rec, FFNRecorder)
        for stack in rec.chunks
    }
    if activations:
        found["activations"] = activations
    return found


def generated_lengths(core: Core, generated: torch.Tensor) -> list[int]:
    """New tokens per item, up to and including the first end-of-sequence token."""
    eos = core.model.generation_config.eos_token_id
    eos_ids = set([eos] if isinstance(eos, int) else (eos or []))
    lengths = []
    for row in generated.tolist():
        hit = next((i for i, token in enumerate(row) if token in eos_ids), None)
        lengths.append(len(row) if hit is None else hit + 1)
    return lengths


def output(
    core: Core,
    token_ids: list[list[int]],
    n_input: list[int],
    generated: torch.Tensor | None,
    logits: torch.Tensor | None,
    n_generated: list[int],
    captures: Captures,
    segments: list[list[int]] | None = None,
) -> OutputSeq:
    """The OutputSeq of one call: token metadata, captures, and the probability and entropy
    of each generated token (``generated``, chosen from ``logits``) where there are some."""
    probs = entropy = None
    if logits is not None and generated is not None:
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
        steps = torch.arange(generated.shape[1])[None, :]
        valid = steps < torch.tensor(n_generated)[:, None]
        chosen = log_probs.gather(-1, generated[:, : log_probs.shape[1], None]).squeeze(-1)
        probs = torch.where(valid, chosen.exp(), torch.nan)
        entropy = torch.where(valid, -(log_probs.exp() * log_probs).sum(-1), torch.nan)
    meta = [
        SequenceMeta.from_ids(core.tokenizer, ids, n, None if segments is None else segments[i])
        for i, (ids, n) in enumerate(zip(token_ids, n_input))
    ]
    return OutputSeq(
        link=core.link,
        model_name=core.model_name,
        kind=core.kind,
        n_layers={name: stack.n_layers for name, stack in core.spec.stacks.items()},
        sequences=meta,
        activations={k: v.numpy() for k, v in captures.get("activations", {}).items()},
        activation_layers={k: list(v) for k, v in core.activation_layers.items()}
        if "activations" in captures
        else {},
        hidden_states=captures.get("hidden_states", {}),
        attention=captures.get("attention", {}),
        token_probs=probs,
        token_entropy=entropy,
    )


def _link(runner: Runner, tokenizer: PreTrainedTokenizerBase) -> ModelLink:
    """What outputs keep of the model: the tokenizer, the logit-lens head (if any), the runner."""
    try:
        return ModelLink(tokenizer, LensHead.from_model(runner.model, runner.spec), runner=runner)
    except ValueError as error:
        return ModelLink(tokenizer, None, str(error), runner=runner)
