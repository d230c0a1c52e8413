"""Activation addition (Turner et al. 2023, "Activation Addition: Steering Language Models Without
Optimization"): ``scale * vector`` added to one site of one layer at every position the model
reads or generates (prompt and new tokens).

The default site is ``'residual'``, the residual stream after block ``layer`` (the block's output,
before any final norm), with a vector of the model's hidden size; ``'neurons'`` adds to the layer's
FFN neuron activations (e.g. a factor's loadings, :meth:`Steer.factor`); ``'attention'``,
``'mlp'`` (hidden size) and ``'heads'`` (the heads side by side) are the other sites of
:mod:`.sites`. :func:`contrast` makes a vector from two prompts' residuals (positive − negative).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.spec import ModelSpec
from . import sites
from .interventions import (
    Positions,
    Site,
    as_vector,
    at_positions,
    check_shared,
    check_width,
    factor_direction,
    resolve_site,
)

REDUCE = {"mean": "the mean over the prompt's tokens", "last": "the last token's"}
_WHERE = {
    "residual": "the residual after",
    "attention": "the attention output of",
    "mlp": "the MLP output of",
    "heads": "the heads of",
    "neurons": "the neuron activations of",
}


@dataclass(frozen=True, eq=False)
class Steer:
    """Add ``scale * vector`` to ``site`` of ``layer`` (see the module docstring), in ``stack``
    (default: the decoder); ``label`` names the vector in :meth:`describe`; ``positions`` limits
    the addition to those positions of each sequence (default: every position)."""

    layer: int
    vector: np.ndarray | Sequence[float]
    scale: float = 1.0
    site: str = "residual"
    stack: str | None = None
    label: str | None = None
    positions: Sequence[int] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_shared(self)
        set_(self, "vector", as_vector(self.vector, "vector"))
        try:
            scale = float(self.scale)
        except (TypeError, ValueError):
            raise ValueError(f"scale must be a number, got {self.scale!r}.") from None
        if not np.isfinite(scale) or isinstance(self.scale, bool):
            raise ValueError(f"scale must be a finite number, got {self.scale!r}.")
        set_(self, "scale", scale)
        sites.check_component(self.site)

    @classmethod
    def factor(cls, factors: object, k: int, layer: int, scale: float = 1.0,
               positions: Sequence[int] | None = None) -> Steer:
        """Add ``scale`` units of factor ``k`` to ``layer``'s neuron activations: its loadings on
        the layer (the change one unit of the factor reconstructs there), in the factors' stack."""
        stack, vector = factor_direction(factors, k, layer)
        return cls(layer, vector, scale, "neurons", stack, label=f"{getattr(factors, 'method', 'factor').upper()} factor {k}",
                   positions=positions)

    @property
    def needs_reference(self) -> None:
        """Steering needs no reference."""
        return None

    def describe(self) -> str:
        """One line, e.g. ``add 4 × steering vector (|v| = 1.2) to the residual after layer 6``."""
        where = f"{self.stack + ' ' if self.stack else ''}layer {self.layer}"
        return (f"add {self.scale:g} × {self.label or 'steering vector'} (|v| = {np.linalg.norm(self.vector):.3g}) "
                f"to {_WHERE[self.site]} {where}{at_positions(self.positions)}")

    def resolve(self, spec: ModelSpec) -> Site:
        """The site, with the vector's length checked against it."""
        site = resolve_site(spec, self.stack, self.layer, self.site)
        check_width(self.vector, site, "vector")
        return site

    def edit(self, site: Site, reference: None, positions: Positions) -> sites.Edit:
        """``x + scale * vector`` (at every position; :func:`~.interventions.only_at` limits it)."""
        added = torch.as_tensor(self.scale * self.vector)
        return lambda x: x + added.to(device=x.device, dtype=x.dtype)


def contrast(positive: Sequence[torch.Tensor], negative: Sequence[torch.Tensor], reduce: str = "mean") -> np.ndarray:
    """A steering vector from two sets of prompts' activations, each (positions, features): each
    prompt reduced to one vector (``'mean'`` over its tokens or its ``'last'`` token's), averaged
    over its set, positive − negative, float64."""
    if reduce not in REDUCE:
        raise ValueError(f"Unknown reduce={reduce!r}: use one of " + "; ".join(f"'{k}' ({v})" for k, v in REDUCE.items()))

    def side(prompts: Sequence[torch.Tensor]) -> torch.Tensor:
        rows = [x.double().mean(0) if reduce == "mean" else x[-1].double() for x in prompts]
        return torch.stack(rows).mean(0)

    return (side(positive) - side(negative)).cpu().numpy()
