"""Ablation during a call: neurons, attention heads or a direction of one layer, replaced for
every position the model reads or generates (activation addition is in :mod:`.steering`).

An :class:`Ablate` names a layer of a stack and what to ablate there:

- ``neurons``: FFN neuron activations (the ``neurons`` site: the input of the FFN output
  projection), by index;
- ``heads``: attention heads (the ``heads`` site: the input of the attention's output projection,
  ``head_dim`` features per head side by side), by index;
- ``direction``: a vector in the layer's neuron space (e.g. an NMF factor's loadings on the layer,
  :meth:`Ablate.factor`): the activation's component along the unit direction ``u`` is replaced,
  ``x + (r.u - x.u) u``, and the orthogonal part is kept.

``how`` says what replaces the values ``x``: ``'zero'`` (``r = 0``: for a direction the projection
is removed), ``'mean'`` (``r`` = the mean of the reference activations over all their positions)
or ``'resample'`` (``r`` = the reference activations at one position, drawn for each position of
the sequence: position ``p`` of every sequence takes reference row ``default_rng([seed, p])``'s
draw, so a cached generation step sees the same draw as a full pass, and a prompt alone or in a
batch gets the same values). The reference is resolved by the LM glue (texts run through the
model, a corpus run's per-neuron means, or arrays) and handed here as one vector (mean) or a
(rows, features) pool (resample).

A spec is checked against the model (:meth:`Ablate.resolve`) before anything runs, and its edit
is hooked onto the site by :func:`applied`, only for the ``with`` block.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import as_int, as_ints
from ..models.spec import ModelSpec, Stack
from . import sites

HOWS = {
    "zero": "replace by zero (a direction: remove the projection)",
    "mean": "replace by the mean over a reference (texts, token ids, a corpus run, or a mean array)",
    "resample": "replace by the values at one position of a reference, drawn per position with seed",
}
_LISTED = 8  # indices named in a description before "…"


@dataclass(frozen=True)
class Site:
    """Where an intervention acts: ``component`` (a :data:`sites.COMPONENTS` name) of ``layer``
    of ``stack``, hooked at ``module``, with ``width`` features per position (``heads``:
    ``head_dim`` each)."""

    stack: str
    layer: int
    component: str
    module: nn.Module
    width: int
    head_dim: int = 0

    @property
    def n_heads(self) -> int:
        """Heads side by side at a ``heads`` site."""
        return self.width // self.head_dim if self.head_dim else 0


def _in_out(module: nn.Module) -> tuple[int, int]:
    """(input, output) features of a projection: ``nn.Linear`` or GPT-2's ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if isinstance(getattr(module, "nf", None), int) and isinstance(weight, torch.Tensor):
        return int(weight.shape[0]), int(module.nf)
    raise ValueError(f"ecco cannot read the features of {type(module).__name__} (not a Linear or Conv1D projection).")


def stack_of(spec: ModelSpec, stack: str | None) -> tuple[str, Stack]:
    """The stack named ``stack`` (default: the main stack, the decoder if there is one)."""
    name = spec.kind.main_stack if stack is None else stack
    if name not in spec.stacks:
        raise ValueError(f"Unknown stack {stack!r}: this {spec.kind} model has the stacks {', '.join(spec.stacks)}.")
    return name, spec.stacks[name]


def resolve_site(spec: ModelSpec, stack: str | None, layer: int, component: str) -> Site:
    """``component`` of ``layer`` of ``stack``, checked against the model."""
    name, found = stack_of(spec, stack)
    if layer >= found.n_layers:
        raise ValueError(f"layer={layer} is out of range: the {name} has layers 0..{found.n_layers - 1}.")
    module = sites.modules(found, component, spec.family.name)[layer]
    if component == "heads":
        attention = sites.modules(found, "attention", spec.family.name)[layer]
        return Site(name, layer, component, module, _in_out(module)[0], sites.head_dim(attention))
    return Site(name, layer, component, module, _in_out(found.ffn_out[layer])[0 if component == "neurons" else 1])


def as_vector(values: object, name: str) -> np.ndarray:
    """A finite, non-zero 1-d float64 copy of ``values`` (read-only)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        vector = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-d array of numbers, got {type(values).__name__}.") from None
    if vector.ndim != 1 or not len(vector):
        raise ValueError(f"{name} must be a non-empty 1-d array of numbers, got shape {vector.shape}.")
    if not np.isfinite(vector).all():
        raise ValueError(f"{name} has non-finite values (NaN or inf): give a finite vector.")
    if not vector.any():
        raise ValueError(f"{name} is all zeros: it has no direction.")
    vector.setflags(write=False)
    return vector


def check_width(vector: np.ndarray, site: Site, name: str) -> None:
    """``vector`` must have one value per feature of the site."""
    if len(vector) != site.width:
        where = {"neurons": "neuron activations", "heads": "heads (side by side)"}.get(site.component, site.component)
        raise ValueError(f"{name} has {len(vector)} values, but {site.stack} layer {site.layer}'s {where} has "
                         f"{site.width} features: give a vector of length {site.width}.")


def listed(indices: Sequence[int]) -> str:
    """``1, 2, 3`` (at most :data:`_LISTED`, then how many in all)."""
    if not indices:
        return "(none)"
    shown = ", ".join(str(i) for i in indices[:_LISTED])
    return shown if len(indices) <= _LISTED else f"{shown}, … ({len(indices)} in all)"


class Positions:
    """The position in its sequence of every column an edit sees, over the successive forward
    passes of one call (a prompt chunk, then one column per cached step): columns are counted
    from the first pass, less each row's left padding ``pads`` (rows of a beam search repeat
    their item's padding)."""

    def __init__(self, pads: Sequence[int]) -> None:
        self.pads = torch.tensor(list(pads) or [0])
        self.offset = 0
        self.current = torch.zeros((0, 0), dtype=torch.long)

    def advance(self, rows: int, width: int) -> torch.Tensor:
        """(rows, width) positions of the next pass's columns, kept as ``current`` (call once per pass)."""
        columns = torch.arange(self.offset, self.offset + width)
        self.offset += width
        pads = self.pads[torch.arange(rows) * len(self.pads) // rows]
        self.current = (columns[None, :] - pads[:, None]).clamp(min=0)
        return self.current


def only_at(edit: sites.Edit, positions: Positions, keep: tuple[int, ...] | None) -> sites.Edit:
    """``edit`` with the pass's positions tracked; with ``keep``, its result is used only at those
    positions of each sequence (the others keep ``x``)."""
    wanted = None if keep is None else torch.tensor(keep, dtype=torch.long)

    def tracked(x: torch.Tensor) -> torch.Tensor:
        at = positions.advance(x.shape[0], x.shape[1])
        y = edit(x)
        if wanted is None:
            return y
        return torch.where(torch.isin(at, wanted).to(x.device).unsqueeze(-1), y, x)

    return tracked


def check_shared(intervention: object) -> None:
    """Check and normalise the fields every intervention (:class:`Ablate`, ``Steer``) has: ``layer``
    (an int >= 0), ``positions`` (sorted unique ints >= 0, or None: every position) and ``stack``
    (a stack's name or None)."""
    set_ = object.__setattr__
    set_(intervention, "layer", as_int(intervention.layer, "layer", 0))
    positions = intervention.positions
    set_(intervention, "positions", None if positions is None else tuple(sorted(set(as_ints(positions, "positions", 0)))))
    if intervention.stack is not None and not isinstance(intervention.stack, str):
        raise ValueError(f"stack must be a stack's name ('encoder' or 'decoder'), got {intervention.stack!r}.")


def at_positions(positions: tuple[int, ...] | None) -> str:
    """`` at positions 3, 4`` for :meth:`describe`, or nothing."""
    return "" if positions is None else f" at positions {listed(positions)}"


def draws(seed: int, positions: torch.Tensor, n: int, cache: dict[int, int]) -> torch.Tensor:
    """The reference row drawn for each position (``default_rng([seed, p]).integers(n)``)."""
    for p in positions.unique().tolist():
        if p not in cache:
            cache[p] = int(np.random.default_rng([seed, p]).integers(n))
    return torch.tensor([cache[p] for p in positions.reshape(-1).tolist()]).view(positions.shape)


def replacement(how: str, reference: torch.Tensor | None, seed: int, positions: Positions) -> Callable:
    """``x -> r``: the values that replace ``x`` (batch, positions, features), as ``how`` says;
    None for ``'zero'``."""
    if how == "zero":
        return lambda x: None
    cast: dict[tuple, torch.Tensor] = {}  # the reference where and as the model computes, made once

    def like(x: torch.Tensor) -> torch.Tensor:
        if (x.device, x.dtype) not in cast:
            cast[x.device, x.dtype] = reference.to(device=x.device, dtype=x.dtype)
        return cast[x.device, x.dtype]

    if how == "mean":
        return like
    cache: dict[int, int] = {}

    def resample(x: torch.Tensor) -> torch.Tensor:
        rows = draws(seed, positions.current, len(reference), cache)
        return like(x)[rows.to(x.device)]

    return resample


@dataclass(frozen=True, eq=False)
class Ablate:
    """Ablate neurons, heads or a direction of ``layer`` (see the module docstring): exactly one
    of ``neurons``, ``heads``, ``direction``; ``how`` one of :data:`HOWS`; ``reference`` for
    ``'mean'`` / ``'resample'``; ``stack`` default: the decoder (the main stack); ``seed`` for
    ``'resample'``; ``label`` names the direction in :meth:`describe`; ``positions`` limits the
    ablation to those positions of each sequence (counted from its first token, prompt and
    generated alike; default: every position). An empty index list ablates nothing: the run
    equals the clean one bit for bit."""

    layer: int
    neurons: Sequence[int] | None = None
    heads: Sequence[int] | None = None
    direction: np.ndarray | Sequence[float] | None = None
    how: str = "zero"
    reference: object = None
    stack: str | None = None
    seed: int = 0
    label: str | None = None
    positions: Sequence[int] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_shared(self)
        given = [name for name in ("neurons", "heads", "direction") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"Ablate takes exactly one of neurons=, heads= or direction=; got {given or 'none'}.")
        for name in ("neurons", "heads"):
            if getattr(self, name) is not None:
                set_(self, name, tuple(as_ints(getattr(self, name), name, 0)))
        if self.direction is not None:
            set_(self, "direction", as_vector(self.direction, "direction"))
        if self.how not in HOWS:
            raise ValueError(f"Unknown how={self.how!r}: use one of " + "; ".join(f"'{k}' ({v})" for k, v in HOWS.items()))
        if self.how == "zero" and self.reference is not None:
            raise ValueError("reference= is used by how='mean' or 'resample'; a zero-ablation takes none.")
        if self.how != "zero" and self.reference is None:
            raise ValueError(f"how={self.how!r} needs reference=: texts or token ids run through the model"
                             + (", a corpus run, or a mean array" if self.how == "mean" else ", or a (rows, features) array")
                             + ".")
        set_(self, "seed", as_int(self.seed, "seed"))

    @classmethod
    def factor(cls, factors: object, k: int, layer: int, how: str = "zero", reference: object = None,
               seed: int = 0, positions: Sequence[int] | None = None) -> Ablate:
        """Ablate factor ``k``'s direction at ``layer``: its loadings on that layer's neurons
        (``factor_direction``), in the factors' stack."""
        stack, direction = factor_direction(factors, k, layer)
        return cls(layer, direction=direction, how=how, reference=reference, stack=stack, seed=seed,
                   label=f"{getattr(factors, 'method', 'factor').upper()} factor {k}", positions=positions)

    @property
    def needs_reference(self) -> str | None:
        """``'mean'`` or ``'resample'`` when a reference must be resolved, else None."""
        return None if self.how == "zero" else self.how

    def describe(self) -> str:
        """One line, e.g. ``zero-ablate decoder layer 3 neurons 5, 7``."""
        where = f"{self.stack + ' ' if self.stack else ''}layer {self.layer}"
        if self.direction is not None:
            what = f"along {self.label or 'a direction'} (|d| = {np.linalg.norm(self.direction):.3g})"
        else:
            what = f"neurons {listed(self.neurons)}" if self.neurons is not None else f"heads {listed(self.heads)}"
        return f"{self.how}-ablate {where} {what}{at_positions(self.positions)}"

    def resolve(self, spec: ModelSpec) -> Site:
        """The site, with the indices / direction checked against the model."""
        site = resolve_site(spec, self.stack, self.layer, "heads" if self.heads is not None else "neurons")
        if self.direction is not None:
            check_width(self.direction, site, "direction")
        elif self.neurons is not None:
            bad = [i for i in self.neurons if i >= site.width]
            if bad:
                raise ValueError(f"neurons {bad} are out of range: {site.stack} layer {site.layer} has neurons "
                                 f"0..{site.width - 1}.")
        else:
            bad = [h for h in self.heads if h >= site.n_heads]
            if bad:
                raise ValueError(f"heads {bad} are out of range: {site.stack} layer {site.layer} has heads "
                                 f"0..{site.n_heads - 1}.")
        return site

    def columns(self, site: Site) -> list[int]:
        """The site's features the neuron / head indices cover."""
        if self.neurons is not None:
            return sorted(set(self.neurons))
        return [h * site.head_dim + j for h in sorted(set(self.heads)) for j in range(site.head_dim)]

    def edit(self, site: Site, reference: torch.Tensor | None, positions: Positions) -> sites.Edit:
        """The edit of ``x`` (batch, positions, features) at ``site``."""
        values = replacement(self.how, reference, self.seed, positions)
        if self.direction is not None:
            unit = torch.as_tensor(self.direction / np.linalg.norm(self.direction))

            def along(x: torch.Tensor) -> torch.Tensor:
                u = unit.to(device=x.device, dtype=x.dtype)
                r = values(x)
                target = 0.0 if r is None else r @ u
                return x + (target - x @ u).unsqueeze(-1) * u

            return along
        columns = self.columns(site)
        if not columns:
            return lambda x: x
        index = torch.tensor(columns)

        def replace(x: torch.Tensor) -> torch.Tensor:
            r = values(x)
            out = x.clone()
            out[..., index.to(x.device)] = 0.0 if r is None else r[..., index.to(x.device)]
            return out

        return replace


def factor_direction(factors: object, k: int, layer: int) -> tuple[str, np.ndarray]:
    """(stack, vector): factor ``k``'s loadings on ``layer``'s neurons, from ``output.run_nmf()``'s
    result (any method of ``run_decomposition``) or a corpus-fitted ``CorpusFactors``. NMF with
    ``nonneg='split'`` loads the positive and the negative parts of each neuron apart; the
    direction is their difference (positive − negative), the change of the raw activations that
    one unit of the factor reconstructs."""
    selection = getattr(factors, "selection", None)
    layers = getattr(factors, "layers", None) or getattr(selection, "layers", None)
    stack = getattr(factors, "stack", None) or getattr(selection, "stack", None)
    loadings = getattr(factors, "loadings", None)
    if layers is None or stack is None or loadings is None:
        raise ValueError(f"factors must be the result of output.run_nmf(...) / run_decomposition(...) or a corpus run's "
                         f"fit_factors(...), got {type(factors).__name__}.")
    loadings = np.asarray(loadings, dtype=np.float64)
    k = as_int(k, "k", 0, len(loadings) - 1, f"k={k} is out of range: these factors have 0..{len(loadings) - 1}.")
    layer = as_int(layer, "layer")
    if layer not in layers:
        raise ValueError(f"The factors were fitted on {stack} layers {list(layers)}, not layer {layer}.")
    row = loadings[k]
    if getattr(factors, "nonneg", None) == "split":
        row = row[: len(row) // 2] - row[len(row) // 2 :]
    vector = row.reshape(len(layers), -1)[list(layers).index(layer)]
    if not vector.any():
        raise ValueError(f"Factor {k} has no weight on layer {layer}: it has no direction there.")
    return stack, vector


@dataclass
class Prepared:
    """An intervention checked against the model: its site and its resolved reference (a
    mean vector, a (rows, features) pool, or None)."""

    intervention: object  # Ablate or Steer
    site: Site
    reference: torch.Tensor | None = None


def check_reference(prepared: Prepared) -> Prepared:
    """The reference must fit the site: one value per feature (mean), or rows of them (resample)."""
    how, ref, site = prepared.intervention.needs_reference, prepared.reference, prepared.site
    if how is None:
        return prepared
    expected = (site.width,) if how == "mean" else ("rows", site.width)
    if ref is None or ref.dim() != len(expected) or ref.shape[-1] != site.width or (how == "resample" and not len(ref)):
        shape = None if ref is None else tuple(ref.shape)
        raise ValueError(f"The {how} reference of {site.stack} layer {site.layer} must have shape {expected} "
                         f"(the {site.component} site's features), got {shape}.")
    if not torch.isfinite(ref).all():
        raise ValueError(f"The {how} reference has non-finite values (NaN or inf).")
    return prepared


@contextlib.contextmanager
def applied(prepared: Sequence[Prepared], pads: Sequence[int]) -> Iterator[None]:
    """Every prepared intervention hooked onto its site for the block (removed on exit, also
    after an error); ``pads``: the left padding of each item of the call's batch."""
    with sites.Hooks() as hooks:
        for item in prepared:
            positions = Positions(pads)
            edit = only_at(item.intervention.edit(item.site, item.reference, positions), positions,
                           item.intervention.positions)
            handle = sites.edit_site(item.site.module, item.site.component, edit, batch=max(len(pads), 1))
            hooks.add(handle)
        yield
