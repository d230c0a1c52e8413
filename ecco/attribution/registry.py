"""Attribution methods by name: a new method is one ``@register`` entry."""
from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import as_int, is_int
from .problem import Problem


@dataclass
class Options:
    """Settings shared by the methods (each reads what it needs)."""

    n_steps: int | str = 50  # integrated gradients: nodes, or 'auto'
    tolerance: float = 0.01  # IG completeness tolerance ('auto' refines until it holds)
    max_steps: int = 512  # IG step budget for 'auto'
    step_chunk: int = 4  # IG interpolation steps per forward pass
    internal_batch_size: int | None = None  # targets per batched backward (bounds memory)
    shap_baselines: int = 4  # DeepLiftShap: size of the baseline distribution
    gradcam_layer: int = -1  # Guided Grad-CAM: block whose output gives the CAM
    seed: int = 0

    def __post_init__(self) -> None:
        """Check every setting (NumPy integers are integers), with an error that says what is valid."""
        if self.n_steps != "auto":
            if not is_int(self.n_steps) or int(self.n_steps) < 1:
                raise ValueError(f"n_steps must be a positive integer (Gauss-Legendre nodes) or 'auto', got {self.n_steps!r}.")
            self.n_steps = int(self.n_steps)
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, numbers.Real) or not self.tolerance > 0:
            raise ValueError(f"tolerance must be a positive number (a relative completeness error), got {self.tolerance!r}.")
        self.tolerance = float(self.tolerance)
        for name in ("max_steps", "step_chunk", "shap_baselines"):
            setattr(self, name, as_int(getattr(self, name), name, 1))
        if self.internal_batch_size is not None:
            self.internal_batch_size = as_int(self.internal_batch_size, "internal_batch_size", 1)
        self.gradcam_layer = as_int(self.gradcam_layer, "gradcam_layer")
        self.seed = as_int(self.seed, "seed", 0)

    def check_layers(self, n_layers: int) -> None:
        """``gradcam_layer`` must name one of ``n_layers`` blocks (negative: from the end)."""
        as_int(
            self.gradcam_layer, "gradcam_layer", -n_layers, n_layers - 1,
            f"gradcam_layer={self.gradcam_layer} is out of range: the model has {n_layers} blocks, "
            f"so give a block from {-n_layers} to {n_layers - 1} (-1, the default, is the last).",
        )


@dataclass
class MethodOutput:
    """Per input: (targets, positions, hidden) attributions, plus convergence where known."""

    attributions: tuple[torch.Tensor, ...]
    completeness_error: np.ndarray | None = None
    n_steps: int | None = None
    explained: str | None = None  # the score actually explained, when a method changes it


@dataclass(frozen=True)
class Method:
    """A registered method: its name, label, function and whether it needs eager attention."""

    name: str
    label: str
    compute: Callable[[Problem, Options], MethodOutput]
    eager_attention: bool = False  # needs the attention softmax to run as a visible op


METHODS: dict[str, Method] = {}


def register(name: str, label: str, eager_attention: bool = False) -> Callable:
    """Decorator: ``@register('ig', 'Integrated gradients')`` on ``fn(problem, options)``."""

    def add(fn: Callable[[Problem, Options], MethodOutput]) -> Callable:
        METHODS[name] = Method(name, label, fn, eager_attention)
        return fn

    return add


def get_method(name: str) -> Method:
    """The method called ``name``, or a ValueError listing the valid names."""
    if name not in METHODS:
        raise ValueError(f"Unknown attribution method {name!r}; valid methods: {', '.join(METHODS)}.")
    return METHODS[name]
