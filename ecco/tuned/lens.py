"""A trained lens (the tuned lens of Belrose et al., 2023): one affine translator per layer that
maps the layer's hidden state into the basis the model's head reads.

Layer ``l``'s translator is ``h -> h + h @ W_l.T + b_l``, with ``W_l`` and ``b_l`` zero at the
start, so an untrained lens is exactly the logit lens. The last layer has none: its hidden
state is the model's own output, so its lens is the model's logits. The lens reads through the
model's head (:class:`ecco.lens.LensHead`), which is not part of the lens and never trained.

A lens remembers the model it was trained for (name, class, sizes, a fingerprint of the head's
weights) and refuses another one with a message that says which fact differs.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

FORMAT = "ecco-tuned-lens"
VERSION = 1


@dataclass
class LensInfo:
    """The model a lens belongs to, and how it was trained."""

    model_name: str | None
    model_class: str
    n_layers: int  # blocks of the stack the lens reads (the last one has no translator)
    hidden_size: int
    vocab_size: int
    head_fingerprint: tuple[float, float]  # LensHead.fingerprint() of the model it was trained on
    stack: str = "decoder"
    trained: bool = False
    training: dict = field(default_factory=dict)  # source, split, optimiser settings, tokens, losses

    def to_json(self) -> dict:
        """The info as stored in a saved lens."""
        data = asdict(self)
        data["head_fingerprint"] = list(self.head_fingerprint)
        return data

    @classmethod
    def from_json(cls, data: dict) -> LensInfo:
        """Inverse of :meth:`to_json`."""
        data = dict(data)
        data["head_fingerprint"] = tuple(float(v) for v in data["head_fingerprint"])
        return cls(**data)


class TunedLens:
    """Per-layer affine translators for layers 0..L-2 (``weight`` (L-1, d, d), ``bias`` (L-1, d),
    float32), plus the :class:`LensInfo` of the model they belong to."""

    def __init__(self, info: LensInfo, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        shape = (info.n_layers - 1, info.hidden_size)
        self.info = info
        self.weight = torch.zeros(*shape, info.hidden_size) if weight is None else weight.detach().float()
        self.bias = torch.zeros(shape) if bias is None else bias.detach().float()
        if tuple(self.weight.shape) != (*shape, info.hidden_size) or tuple(self.bias.shape) != shape:
            raise ValueError(
                f"Translator shapes {tuple(self.weight.shape)} and {tuple(self.bias.shape)} do not fit a model with "
                f"{info.n_layers} layers of size {info.hidden_size}: the file is damaged or was edited."
            )

    def __repr__(self) -> str:
        state = "trained" if self.info.trained else "untrained (identity: the logit lens)"
        return f"TunedLens({self.info.model_name!r}, {self.info.n_layers} layers, hidden {self.info.hidden_size}, {state})"

    @property
    def n_layers(self) -> int:
        """Layers the lens reads (translators for all but the last)."""
        return self.info.n_layers

    def translate(self, hidden: torch.Tensor) -> torch.Tensor:
        """The translated hidden states of layers 0..L-2: ``hidden`` is (L-1, ..., d)."""
        if hidden.shape[0] != self.n_layers - 1:
            raise ValueError(f"translate takes the hidden states of layers 0..{self.n_layers - 2}, got {hidden.shape[0]} rows.")
        weight = self.weight.to(hidden.device, hidden.dtype)
        bias = self.bias.to(hidden.device, hidden.dtype)
        flat = hidden.reshape(hidden.shape[0], -1, hidden.shape[-1])
        moved = torch.baddbmm(bias[:, None, :], flat, weight.transpose(1, 2))
        return hidden + moved.reshape(hidden.shape)

    # ------------------------------------------------------------------ checks
    def check_model(self, model_name: str | None, n_layers: int, hidden_size: int, vocab_size: int | None,
                    fingerprint: tuple[float, float] | None) -> None:
        """A ValueError naming the first fact of the model that differs from the one the lens
        was trained for; a warning when only the head's weights differ (same name and shapes)."""
        info = self.info
        trained_for = f"This lens was trained for {info.model_name or 'an unnamed model'}"
        if model_name and info.model_name and model_name != info.model_name:
            raise ValueError(
                f"{trained_for}, not {model_name}: train a lens for this model with ecco.train_lens(lm, ...), "
                "or load the model the lens belongs to."
            )
        for what, mine, theirs in (("layers", info.n_layers, n_layers), ("hidden size", info.hidden_size, hidden_size),
                                   ("vocabulary", info.vocab_size, vocab_size)):
            if theirs is not None and mine != theirs:
                raise ValueError(
                    f"{trained_for} ({what} {mine}), but this model has {what} {theirs}: the lens cannot read it. "
                    "Train one for this model with ecco.train_lens(lm, ...)."
                )
        if fingerprint is not None and not all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) for a, b in zip(info.head_fingerprint, fingerprint)
        ):
            warnings.warn(
                f"{trained_for} with the same shapes, but this model's output head has other weights (another "
                "checkpoint or a fine-tune?): its readings may be off. Train a lens for these weights.",
                stacklevel=3,
            )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the lens to one ``.safetensors`` file (translators, and the info as metadata)."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(path.suffix + ".safetensors") if path.suffix else path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"format": FORMAT, "version": str(VERSION), "info": json.dumps(self.info.to_json())}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> TunedLens:
        """A lens written by :meth:`save`."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: give the file written by lens.save(path).")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except SafetensorError as error:
            raise ValueError(f"{path} is not a saved lens (not a safetensors file: {error}).") from error
        if metadata.get("format") != FORMAT or set(tensors) != {"weight", "bias"}:
            raise ValueError(f"{path} is a safetensors file, but not a lens saved by ecco (TunedLens.save).")
        if int(metadata.get("version", 0)) > VERSION:
            raise ValueError(f"{path} was saved by a newer ecco (lens format {metadata['version']}); upgrade ecco.")
        return cls(LensInfo.from_json(json.loads(metadata["info"])), tensors["weight"], tensors["bias"])


def load_lens(path: str | os.PathLike) -> TunedLens:
    """A trained lens saved with ``lens.save(path)``."""
    return TunedLens.load(path)
