"""Sampling-based attribution methods: Gradient SHAP, KernelSHAP and LIME.

**Gradient SHAP** (``gradient_shap``) is captum's ``GradientShap`` (Lundberg & Lee 2017's
expected gradients as captum implements it). For each of ``n_samples`` draws i: a baseline
``b_i`` from the DeepLiftShap distribution (:func:`.deeplift.shap_baselines`: the zero
embedding and ``shap_baselines - 1`` random-vocabulary sequences), Gaussian noise ``e_i`` of
std ``stdevs``, ``a_i ~ U(0, 1)``; with ``x_i = x + e_i`` the attribution is the mean over draws
of ``(x_i - b_i) * grad(b_i + a_i (x_i - b_i))`` (captum multiplies by the *noisy* input minus
the baseline). The draws follow captum's order so that ``np.random.seed(seed)`` before captum
reproduces them: ``numpy.random.RandomState(seed)`` picks each input's baseline indices (one
``choice`` per input, encoder then decoder, as captum draws them independently per input), then
the ``alphas`` (``uniform``); the noise comes from ``torch.Generator().manual_seed(seed)``, one
``torch.normal`` of shape (n_samples, positions, hidden) per input. All draws of an item are
shared by every target: ``_DRAWS_PER_PASS`` draws per forward pass, one batched backward for all
targets (``internal_batch_size`` targets at a time).

**KernelSHAP** (``kernel_shap``) and **LIME** (``lime``) are token-level perturbation methods,
like captum's ``LLMAttribution`` over ``KernelShap`` / ``Lime``: each source token is one
interpretable feature; a coalition keeps some tokens and gives the others the zero embedding
(positions stay, as in occlusion). The coalitions are drawn once per item over all its tokens
(seeded by ``seed``) and evaluated ``internal_batch_size`` (default 32) at a time; one perturbed
input gives the score of every target. Target k only sees its own sources (the other stacks
and the main stack up to its column), so its regression uses only those ``n_k`` features (the
later tokens do not change its score; in a regression they would only pick up noise) and they
get 0.

- KernelSHAP: the Shapley-kernel weighted linear regression with the efficiency constraint
  imposed exactly (sum of the values = f(all kept) - f(none kept), f(none) as intercept),
  solved as the minimum-norm solution on the constraint's plane (captum instead gives the two
  end points a weight of 1e6). When ``2^n <= n_samples`` (n: the item's tokens) every coalition
  is evaluated, and any target whose ``2^n_k`` coalitions all appear among the samples gets
  the regression over all of them with the kernel weights, which is the exact Shapley value.
  Otherwise ``n_samples`` coalitions are drawn as captum's ``KernelShap`` draws them (size s
  with probability proportional to (n - 1) / (s (n - s)), then a uniform subset of that size),
  plus the two end points, and every sample has weight 1 (it was drawn from the kernel). This
  holds for every target at once: the Shapley kernel is proportional to
  B(s, n - s) = integral of p^(s-1) (1-p)^(n-s-1) dp, i.e. a mixture of independent Bernoulli(p)
  features over the density 1 / (p (1 - p)); dropping the features a target does not see leaves
  the same mixture, so a sample's restriction to target k's n_k sources (when neither empty nor
  full) is a Shapley-kernel sample over those n_k.
- LIME: Bernoulli(1/2) coalitions (captum's default perturbation), each weighted by captum's
  default similarity, exp(-d^2 / 2) with d the cosine distance between the target's input and
  the perturbed input (flattened, all its stacks), and an unregularised weighted least-squares
  fit with an intercept (captum's ``SkLearnLinearRegression``; captum's ``Lime`` default is a
  Lasso with alpha 0.01, which sets every coefficient to 0 on probability-sized scores).

Both return the coefficients as (targets, positions, 1) per input, as occlusion does.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .batched import target_gradients
from .deeplift import shap_baselines
from .problem import Problem
from .registry import MethodOutput, Options, register

Inputs = tuple[torch.Tensor, ...]  # one tensor per stack (encoder, decoder)

GRADIENT_SHAP_SAMPLES = 20
KERNEL_SHAP_SAMPLES = 200
LIME_SAMPLES = 100
_DRAWS_PER_PASS = 16  # Gradient SHAP draws per forward / backward pass
_DEFAULT_BATCH = 32  # perturbed inputs per forward pass (KernelSHAP, LIME)
_MAX_EXACT_FEATURES = 30  # beyond this a target's coalitions are never all sampled


def gradient_shap_from(problem: Problem, baselines: Inputs, n_samples: int, stdevs: float, seed: int,
                       target_chunk: int | None = None) -> Inputs:
    """Gradient SHAP of every target against the baseline distribution ``baselines`` (per input
    (count, positions, hidden)), drawn as the module docstring says; per input (targets, positions, hidden)."""
    rng = np.random.RandomState(seed)
    chosen = tuple(b[torch.as_tensor(rng.choice(b.shape[0], n_samples), device=b.device)] for b in baselines)
    generator = torch.Generator().manual_seed(seed)
    noisy = tuple(
        x + torch.normal(0.0, stdevs, (n_samples, *x.shape[1:]), generator=generator).to(x)
        for x in problem.embeds
    )
    alphas = rng.uniform(0.0, 1.0, n_samples)
    totals: list[torch.Tensor] | None = None
    for start in range(0, n_samples, _DRAWS_PER_PASS):
        part = slice(start, start + _DRAWS_PER_PASS)
        a = torch.as_tensor(alphas[part], device=noisy[0].device)
        points = tuple(
            (a.view(-1, 1, 1).to(x) * x[part] + (1 - a.view(-1, 1, 1).to(x)) * b[part]).detach()
            for x, b in zip(noisy, chosen)
        )
        grads = target_gradients(problem, points, target_chunk)  # per input (targets, draws, positions, hidden)
        sums = [(g * (x[part] - b[part])[None]).sum(dim=1) for g, x, b in zip(grads, noisy, chosen)]
        totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
    return tuple(t / n_samples for t in totals)  # type: ignore[union-attr]


@register("gradient_shap", "Gradient SHAP")
def gradient_shap(problem: Problem, options: Options) -> MethodOutput:
    """Gradient SHAP over DeepLiftShap's baseline distribution (``n_samples`` draws, default 20)."""
    lengths = [int(e.shape[1]) for e in problem.embeds]
    baselines = shap_baselines(problem.spec.embeddings, lengths, options.shap_baselines, options.seed)
    n_samples = options.n_samples or GRADIENT_SHAP_SAMPLES
    return MethodOutput(
        gradient_shap_from(problem, baselines, n_samples, options.stdevs, options.seed, options.internal_batch_size)
    )


@torch.no_grad()
def coalition_scores(problem: Problem, keep: torch.Tensor, batch_size: int = _DEFAULT_BATCH) -> torch.Tensor:
    """(coalitions, targets) float64 scores of the inputs that keep the tokens where ``keep``
    ((coalitions, tokens) bool, tokens of every input in stack order) and zero the others."""
    lengths = [int(e.shape[1]) for e in problem.embeds]
    out = []
    for start in range(0, keep.shape[0], batch_size):
        parts = keep[start : start + batch_size].to(problem.embeds[0].device).split(lengths, dim=1)
        batch = tuple(torch.where(p[:, :, None], x, torch.zeros_like(x)) for x, p in zip(problem.embeds, parts))
        out.append(problem.scores(*batch).double())
    return torch.cat(out)


def visible(problem: Problem) -> torch.Tensor:
    """(targets, tokens) bool: the tokens (every input in stack order) that are sources of each target."""
    rows = []
    for k in range(problem.n_targets):
        counts = problem.source_counts(k)
        rows.append(torch.cat([torch.arange(int(e.shape[1])) < c for e, c in zip(problem.embeds, counts)]))
    return torch.stack(rows)


def _log_comb(n: torch.Tensor | float, k: torch.Tensor) -> torch.Tensor:
    n = torch.as_tensor(n, dtype=torch.float64)
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def _log_kernel(n: int, sizes: torch.Tensor) -> torch.Tensor:
    """log of the Shapley kernel (n - 1) / (C(n, s) s (n - s)) for 0 < s < n, without the constant n - 1."""
    s = sizes.double()
    return -_log_comb(n, s) - torch.log(s) - torch.log(n - s)


def kernel_coalitions(n: int, n_samples: int, seed: int) -> torch.Tensor:
    """(rows, n) bool: all kept, none kept, then every other coalition if 2^n <= n_samples,
    else ``n_samples`` coalitions drawn as captum's KernelShap draws them (seeded)."""
    ends = torch.stack([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    if n < 2:
        return ends
    if n < 63 and 2**n <= n_samples:
        codes = torch.arange(1, 2**n - 1)
        return torch.cat([ends, (codes[:, None] >> torch.arange(n)) & 1 == 1])
    generator = torch.Generator().manual_seed(seed)
    s = torch.arange(1, n, dtype=torch.float64)
    sizes = torch.multinomial(1 / (s * (n - s)), n_samples, replacement=True, generator=generator) + 1
    ranks = torch.rand(n_samples, n, generator=generator).argsort(dim=1).argsort(dim=1)
    return torch.cat([ends, ranks < sizes[:, None]])


def _all_coalitions(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """If the rows of ``z`` (samples, n_k) hold all 2^n_k coalitions: each once, with its mean score; else None."""
    n_k = z.shape[1]
    if n_k > _MAX_EXACT_FEATURES or 2**n_k > z.shape[0]:
        return None
    bits = torch.arange(n_k)
    codes = (z.long() << bits).sum(dim=1)
    unique, inverse = torch.unique(codes, return_inverse=True)
    if len(unique) < 2**n_k:
        return None
    means = torch.zeros(len(unique), dtype=y.dtype).index_add_(0, inverse, y) / torch.bincount(inverse).to(y.dtype)
    return (unique[:, None] >> bits) & 1 == 1, means


def constrained_fit(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, full: float, empty: float) -> torch.Tensor:
    """Weighted least squares of ``y - empty`` on the coalitions ``z`` (samples, n_k) without
    intercept, subject to sum(values) = full - empty; the minimum-norm solution if underdetermined."""
    n_k = z.shape[1]
    base = torch.full((n_k,), (full - empty) / n_k, dtype=torch.float64)
    if n_k == 1 or z.shape[0] == 0:
        return base
    z = z.double()
    centred = z - z.mean(dim=1, keepdim=True)  # z projected on the plane sum = 0
    root = weights.sqrt()
    return base + torch.linalg.pinv(root[:, None] * centred) @ (root * (y - empty - z @ base))


def weighted_linear_fit(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Coefficients of the weighted least-squares fit y ~ c + z @ coef (as scikit-learn's
    LinearRegression with ``sample_weight``: centred, minimum-norm if underdetermined)."""
    z = z.double()
    share = weights / weights.sum()
    root = weights.sqrt()
    return torch.linalg.pinv(root[:, None] * (z - share @ z)) @ (root * (y - share @ y))


def _per_token(problem: Problem, values: torch.Tensor) -> MethodOutput:
    """(targets, tokens) values to (targets, positions, 1) per input."""
    lengths = [int(e.shape[1]) for e in problem.embeds]
    parts = values.split(lengths, dim=1)
    return MethodOutput(tuple(p.unsqueeze(-1).to(device=e.device, dtype=e.dtype) for p, e in zip(parts, problem.embeds)))


def _fit_targets(problem: Problem, keep: torch.Tensor, fit: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                 options: Options) -> MethodOutput:
    """Scores of the coalitions ``keep``, then per target k ``fit(sources_k, z_k, y_k)`` on its own
    sources only (``sources_k``: (tokens,) bool, ``z_k = keep[:, sources_k]``, ``y_k`` its scores)."""
    scores = coalition_scores(problem, keep, options.internal_batch_size or _DEFAULT_BATCH).cpu()
    sources = visible(problem)
    values = torch.zeros(problem.n_targets, keep.shape[1], dtype=torch.float64)
    for k in range(problem.n_targets):
        values[k, sources[k]] = fit(sources[k], keep[:, sources[k]], scores[:, k])
    return _per_token(problem, values)


@register("kernel_shap", "KernelSHAP")
def kernel_shap(problem: Problem, options: Options) -> MethodOutput:
    """KernelSHAP over zero-embedding token removal (``n_samples`` coalitions, default 200)."""
    n = sum(int(e.shape[1]) for e in problem.embeds)
    keep = kernel_coalitions(n, options.n_samples or KERNEL_SHAP_SAMPLES, options.seed)

    def fit(sources: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        full, empty = float(y[0]), float(y[1])
        n_k = z.shape[1]
        exact = _all_coalitions(z, y)
        if exact is not None:
            z, y = exact
        sizes = z.sum(dim=1)
        inner = (sizes > 0) & (sizes < n_k)
        z, y, sizes = z[inner], y[inner], sizes[inner]
        # sampled: drawn from target k's own kernel already (see the module docstring), weight 1
        weights = torch.ones(len(y), dtype=torch.float64) if exact is None else _log_kernel(n_k, sizes).exp()
        return constrained_fit(z, y, weights, full, empty)

    return _fit_targets(problem, keep, fit, options)


@register("lime", "LIME")
def lime(problem: Problem, options: Options) -> MethodOutput:
    """LIME over zero-embedding token removal (``n_samples`` Bernoulli(1/2) coalitions, default 100)."""
    n = sum(int(e.shape[1]) for e in problem.embeds)
    generator = torch.Generator().manual_seed(options.seed)
    keep = torch.rand(options.n_samples or LIME_SAMPLES, n, generator=generator) < 0.5
    norms = torch.cat([e[0].double().pow(2).sum(dim=-1) for e in problem.embeds]).cpu()  # squared norm per token

    def fit(sources: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        own = norms[sources]
        cosine = (z.double() @ own).sqrt() / own.sum().sqrt().clamp_min(1e-12)  # cos(x, x with the dropped tokens zeroed)
        return weighted_linear_fit(z, y, torch.exp(-((1 - cosine) ** 2) / 2))

    return _fit_targets(problem, keep, fit, options)
