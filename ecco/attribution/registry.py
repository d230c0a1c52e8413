"""Attribution methods by name: a new method is one ``@register`` entry."""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields

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
    n_samples: int | None = None  # sampling methods (Gradient SHAP, KernelSHAP, LIME): draws; None: the method's default
    stdevs: float = 0.0  # Gradient SHAP: std of the Gaussian noise added to each input sample
    layer: int | None = None  # raw attention (default: the last block) and layer methods (default: the middle one)
    heads: str | int = "mean"  # raw attention: 'mean' or 'max' over heads, or one head's index

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
        if self.n_samples is not None:
            self.n_samples = as_int(self.n_samples, "n_samples", 1)
        if isinstance(self.stdevs, bool) or not isinstance(self.stdevs, numbers.Real) or not self.stdevs >= 0:
            raise ValueError(f"stdevs must be a non-negative number (the noise's standard deviation), got {self.stdevs!r}.")
        self.stdevs = float(self.stdevs)
        if self.layer is not None:
            self.layer = as_int(self.layer, "layer")
        if self.heads not in ("mean", "max"):
            if not is_int(self.heads):
                raise ValueError(f"heads must be 'mean', 'max' or a head index, got {self.heads!r}.")
            self.heads = as_int(self.heads, "heads", 0)

    @classmethod
    def from_mapping(cls, values: Mapping | None, layer_counts: Iterable[int] = ()) -> Options:
        """Options from keyword arguments, with a clear error for unknown names or bad values
        (``layer`` / ``gradcam_layer`` checked against each of ``layer_counts``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"Unknown attribution option(s) {unknown}; valid options: {sorted(known)}.")
        options = cls(**(values or {}))
        for n in layer_counts:
            options.check_layers(n)
        return options

    def to_json(self) -> dict:
        """The checked settings as plain JSON values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check_layers(self, n_layers: int) -> None:
        """``gradcam_layer`` and ``layer`` must name one of ``n_layers`` blocks (negative: from the end)."""
        for name in ("gradcam_layer", "layer"):
            value = getattr(self, name)
            if value is not None:
                as_int(
                    value, name, -n_layers, n_layers - 1,
                    f"{name}={value} is out of range: the model has {n_layers} blocks, "
                    f"so give a block from {-n_layers} to {n_layers - 1} (-1 is the last).",
                )

    def block(self, n_layers: int, default: int) -> int:
        """The block index ``layer`` names among ``n_layers`` (``default`` when it is None), from 0."""
        self.check_layers(n_layers)
        return (default if self.layer is None else self.layer) % n_layers


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


class UnsupportedMethodError(ValueError):
    """A method that cannot run on this model or input; the message says why (a dataset run
    records it and goes on with the other methods)."""


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
