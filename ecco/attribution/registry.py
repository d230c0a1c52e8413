"""Attribution methods by name: a new method is one ``@register`` entry."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

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
