"""What an LM captures: the capture flags of ``ecco.from_pretrained``, ``ecco.from_model`` and
``LM``, defined and checked in one place."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch

from ..checks import as_ints
from ..models.spec import ModelSpec

_STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class CaptureFlags:
    """What ecco captures on every call (Ecco's keyword arguments), checked when made.

    Attributes:
        activations: capture FFN neuron activations (the input of each FFN output projection).
        attention: capture attention weights; the model runs with eager attention for the call.
        hidden_states: capture the hidden states of every layer (index 0: the embeddings).
        activations_layer_nums: the layers whose activations are captured, in every stack
            (default: all layers).
        verbose: show the text as it is generated (in notebooks) and attribution progress bars.
        model_config: Ecco's model config (``type``, ``activations`` regexes, ``embedding``,
            ...) for an architecture ecco does not know; see the models page.
        store_dtype: ``'float32'`` or ``'float16'`` (or the torch dtype): the dtype captured
            arrays are stored in.
    """

    activations: bool = False
    attention: bool = False
    hidden_states: bool = True
    activations_layer_nums: Sequence[int] | None = None
    verbose: bool = True
    model_config: Mapping | None = None
    store_dtype: str | torch.dtype = torch.float32

    def __post_init__(self) -> None:
        object.__setattr__(self, "store_dtype", _store_dtype(self.store_dtype))
        if self.activations_layer_nums is not None:  # NumPy arrays and integers are accepted
            object.__setattr__(self, "activations_layer_nums", as_ints(self.activations_layer_nums, "activations_layer_nums"))

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, object]) -> CaptureFlags:
        """The flags among a function's arguments (its ``locals()``), by name."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})

    def keywords(self) -> dict[str, object]:
        """The flags as keyword arguments of ``LM``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def layers(self, spec: ModelSpec, model_name: str) -> dict[str, list[int]]:
        """Per stack of ``spec``, the layers whose activations are captured, in numeric order."""
        selection = {}
        for name, stack in spec.stacks.items():
            if self.activations_layer_nums is None:
                selection[name] = list(range(stack.n_layers))
                continue
            bad = [n for n in self.activations_layer_nums if not 0 <= n < stack.n_layers]
            if bad:
                raise ValueError(
                    f"activations_layer_nums {bad} out of range: the {name} of {model_name} has "
                    f"{stack.n_layers} layers, numbered 0..{stack.n_layers - 1}."
                )
            selection[name] = sorted(set(self.activations_layer_nums))
        return selection


def _store_dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in _STORE_DTYPES.values():
        return value
    if isinstance(value, str) and value in _STORE_DTYPES:
        return _STORE_DTYPES[value]
    raise ValueError(f"store_dtype must be 'float32' or 'float16', got {value!r}.")
