"""Gradients of every target at once, and integrated gradients on top of them.

One forward pass gives the (batch, targets) score matrix; ``torch.autograd.grad`` with
``is_grads_batched=True`` then takes the gradient of each target column in one vectorised
backward. Targets are processed in chunks of ``target_chunk`` to bound memory.
"""
from __future__ import annotations

import heapq
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import is_int
from .problem import Problem

Grads = tuple[torch.Tensor, ...]  # one (targets, batch, positions, hidden) tensor per input


def target_gradients(
    problem: Problem,
    inputs: tuple[torch.Tensor, ...],
    target_chunk: int | None = None,
    scores: Callable[..., torch.Tensor] | None = None,
) -> Grads:
    """d score_k / d inputs for every target k, for a batch of inputs (rows independent)."""
    score_fn = scores or problem.scores
    xs = tuple(x.detach().requires_grad_(True) for x in inputs)
    with torch.enable_grad():
        values = score_fn(*xs)  # (batch, targets)
    return gradients_per_target(values, xs, target_chunk)


def gradients_per_target(values: torch.Tensor, tensors: Grads, target_chunk: int | None = None) -> Grads:
    """d values[:, k] / d tensors for every column k: one (targets, *shape) tensor per input."""
    n = values.shape[1]
    chunk = max(1, min(target_chunk or n, n))
    parts: list[Grads] = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        selector = torch.zeros((stop - start, *values.shape), dtype=values.dtype, device=values.device)
        selector[torch.arange(stop - start), :, torch.arange(start, stop)] = 1.0
        parts.append(_batched_grad(values, tensors, selector))
    return tuple(torch.cat([p[i] for p in parts], dim=0) for i in range(len(tensors)))


def _batched_grad(values: torch.Tensor, xs: Grads, selector: torch.Tensor) -> Grads:
    try:
        return torch.autograd.grad(
            values, xs, grad_outputs=selector, is_grads_batched=True, retain_graph=True, materialize_grads=True
        )
    except RuntimeError:
        # An op without a vmap rule: one backward per target, same result.
        per_target = [
            torch.autograd.grad(values, xs, grad_outputs=s, retain_graph=True, materialize_grads=True)
            for s in selector
        ]
        return tuple(torch.stack(g) for g in zip(*per_target))


def completeness_error(attributions: tuple[torch.Tensor, ...], expected: torch.Tensor) -> np.ndarray:
    """Per target: |sum(attributions) - expected| / |expected|, attributions per input
    (targets, positions, hidden), ``expected`` (targets,)."""
    expected = expected.double().cpu()
    total = sum(a.sum(dim=(1, 2)) for a in attributions).double().cpu()
    return ((total - expected).abs() / expected.abs().clamp_min(1e-12)).numpy()


def gauss_legendre(n: int, start: float = 0.0, stop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [start, stop]."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    half = (stop - start) / 2
    return start + half * (nodes + 1), weights * half


@dataclass
class IGResult:
    """Integrated gradients of every target: attributions and how converged they are."""

    attributions: Grads  # per input (targets, positions, hidden)
    completeness_error: np.ndarray  # (targets,) |sum(attr) - (f(x) - f(b))| / |f(x) - f(b)|
    n_steps: int
    converged: bool
    delta: np.ndarray = field(repr=False)  # f(x) - f(baseline) per target


class _Integrator:
    """Accumulates sum_k w_k * grad(baseline + a_k (x - baseline)) over quadrature nodes."""

    def __init__(self, problem: Problem, baselines: Grads, step_chunk: int, target_chunk: int | None):
        self.problem = problem
        self.baselines = baselines
        self.diff = tuple(x - b for x, b in zip(problem.embeds, baselines))
        self.step_chunk = step_chunk
        self.target_chunk = target_chunk
        self.evaluations = 0
        with torch.no_grad():
            ends = problem.scores(*(torch.cat([x, b]) for x, b in zip(problem.embeds, baselines)))
        self.delta = (ends[0] - ends[1]).double().cpu()  # f(x) - f(baseline) per target
        self.scale = self.delta.abs().clamp_min(1e-12)

    def integral(self, nodes: np.ndarray, weights: np.ndarray) -> Grads:
        """sum_k w_k * grad at node k, per input: (targets, positions, hidden)."""
        total: list[torch.Tensor] | None = None
        for start in range(0, len(nodes), self.step_chunk):
            alphas = torch.tensor(nodes[start : start + self.step_chunk], dtype=self.diff[0].dtype)
            w = torch.tensor(weights[start : start + self.step_chunk], dtype=self.diff[0].dtype)
            view = (-1, 1, 1)
            inputs = tuple(
                (b + alphas.view(view).to(d.device) * d).detach() for b, d in zip(self.baselines, self.diff)
            )
            grads = target_gradients(self.problem, inputs, self.target_chunk)
            summed = [torch.einsum("tkph,k->tph", g, w.to(g.device)) for g in grads]
            total = summed if total is None else [a + s for a, s in zip(total, summed)]
            self.evaluations += len(alphas)
        return tuple(total)  # type: ignore[arg-type]

    def attributions(self, integral: Grads) -> Grads:
        return tuple(g * d[0] for g, d in zip(integral, self.diff))

    def sums(self, integral: Grads) -> torch.Tensor:
        """Completeness sum per target: sum over positions and hidden of the attributions."""
        return sum(a.sum(dim=(1, 2)) for a in self.attributions(integral)).double().cpu()  # type: ignore[union-attr]

    def error(self, integral: Grads) -> torch.Tensor:
        """Relative completeness error per target."""
        return (self.sums(integral) - self.delta).abs() / self.scale


def integrated_gradients(
    problem: Problem,
    n_steps: int | str = 50,
    baselines: Grads | None = None,
    *,
    tolerance: float = 0.01,
    max_steps: int = 512,
    step_chunk: int = 4,
    target_chunk: int | None = None,
) -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017) of every target, sharing each
    interpolation step's forward pass across all targets.

    ``n_steps`` is a number of Gauss-Legendre nodes, or ``'auto'``: adaptive quadrature that
    starts from a geometrically graded partition of [0, 1] (intervals [0, 2^-8], ..., [1/2, 1],
    because pre-norm models change fastest near alpha = 0), then bisects the sub-interval whose
    estimate changes most until the completeness error of every target is within ``tolerance``
    or ``max_steps`` nodes were used.
    """
    baselines = baselines or tuple(torch.zeros_like(e) for e in problem.embeds)
    integrator = _Integrator(problem, baselines, step_chunk, target_chunk)
    if n_steps == "auto":
        integral, converged = _adaptive(integrator, tolerance, max_steps)
    else:
        if not is_int(n_steps) or int(n_steps) < 1:
            raise ValueError(f"n_steps must be a positive integer or 'auto', got {n_steps!r}.")
        n_steps = int(n_steps)
        integral = integrator.integral(*gauss_legendre(n_steps))
        converged = bool(integrator.error(integral).max() <= tolerance)
    return IGResult(
        attributions=integrator.attributions(integral),
        completeness_error=integrator.error(integral).numpy(),
        n_steps=integrator.evaluations,
        converged=converged,
        delta=integrator.delta.numpy(),
    )


_NODES_PER_INTERVAL = 4
_GRADED_LEVELS = 8  # initial intervals [0, 2^-8], [2^-8, 2^-7], ..., [1/2, 1]


def _adaptive(integrator: _Integrator, tolerance: float, max_steps: int) -> tuple[Grads, bool]:
    """Adaptive Gauss-Legendre quadrature over [0, 1], refined by bisection."""

    def estimate(a: float, b: float) -> Grads:
        return integrator.integral(*gauss_legendre(_NODES_PER_INTERVAL, a, b))

    def total(parts: dict[tuple[float, float], Grads]) -> Grads:
        return tuple(sum(p[i] for p in parts.values()) for i in range(len(integrator.diff)))  # type: ignore[misc]

    edges = [0.0] + [2.0**-k for k in range(_GRADED_LEVELS, -1, -1)]
    parts = {(a, b): estimate(a, b) for a, b in zip(edges, edges[1:])}
    queue: list[tuple[float, float, float]] = [(-np.inf, a, b) for a, b in parts]  # (-estimated error, a, b)
    heapq.heapify(queue)
    while True:
        integral = total(parts)
        if integrator.error(integral).max() <= tolerance:
            return integral, True
        if integrator.evaluations + 2 * _NODES_PER_INTERVAL > max_steps or not queue:
            return integral, False
        _, a, b = heapq.heappop(queue)
        mid = (a + b) / 2
        left, right = estimate(a, mid), estimate(mid, b)
        change = integrator.sums(tuple(lp + rp - w for lp, rp, w in zip(left, right, parts.pop((a, b)))))
        local = float((change.abs() / integrator.scale).max())
        parts[(a, mid)], parts[(mid, b)] = left, right
        for lo, hi in ((a, mid), (mid, b)):
            heapq.heappush(queue, (-local / 2, lo, hi))


def warn_unconverged(result: IGResult, tolerance: float) -> None:
    """Tell the user when IG did not reach its completeness tolerance."""
    if not result.converged:
        warnings.warn(
            f"Integrated gradients did not converge: completeness error up to "
            f"{result.completeness_error.max():.1%} (tolerance {tolerance:.1%}) after {result.n_steps} steps. "
            "Use n_steps='auto' with a larger max_steps, or read output.attributions[...].completeness_error.",
            stacklevel=2,
        )
