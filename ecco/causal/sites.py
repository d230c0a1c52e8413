"""Where an intervention acts: a component of one block, and hooks that edit it for one call.

A *site* is a component of a stack's block, named as the registry names it:

- ``residual``: the block's output (the residual stream after the block);
- ``attention``: the self-attention module's result (its first output);
- ``mlp``: the MLP's result;
- ``heads``: the input of the attention's output projection, the heads side by side
  (``head_dim`` features each);
- ``neurons``: the input of the FFN output projection (ecco's neuron activations).

:func:`edit_output` / :func:`edit_input` hook a module so that an edit function sees the site's
tensor as ``(batch, positions, features)`` (OPT flattens batch and positions inside its blocks;
the hook restores the shape) and returns the tensor to use instead. :class:`Hooks` removes
every hook it holds when its block exits, whatever happens, so the model comes back unchanged.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models.spec import Stack

Handle = torch.utils.hooks.RemovableHandle

Edit = Callable[[torch.Tensor], torch.Tensor]

COMPONENTS = {
    "residual": "the block's output: the residual stream after the block",
    "attention": "the self-attention's result, before it is added to the residual stream",
    "mlp": "the MLP's result, before it is added to the residual stream",
    "heads": "the attention heads' outputs: the input of the attention's output projection",
    "neurons": "the FFN neuron activations: the input of the FFN output projection",
}


def check_component(component: str, allowed: tuple[str, ...] = tuple(COMPONENTS)) -> str:
    """``component`` if it is one of ``allowed``, else a ValueError listing them."""
    if component not in allowed:
        names = ", ".join(f"'{name}' ({COMPONENTS[name]})" for name in allowed)
        raise ValueError(f"Unknown component {component!r}: use one of {names}.")
    return component


def modules(stack: Stack, component: str, family: str) -> list[nn.Module]:
    """One module per block whose output (``residual``, ``attention``, ``mlp``) or input
    (``heads``, ``neurons``) is the site; a ValueError when the registry does not know it."""
    check_component(component)
    found = {
        "residual": stack.blocks,
        "attention": stack.attention,
        "mlp": stack.mlp,
        "heads": stack.attention_out,
        "neurons": stack.ffn_out,
    }[component]
    if len(found) != stack.n_layers:
        raise ValueError(
            f"The registry does not say where {family}'s {component} is ({COMPONENTS[component]}), so ecco cannot "
            f"intervene on it. Add it to the family's entry in ecco/models/architectures.py."
        )
    return list(found)


def reads_input(component: str) -> bool:
    """Whether the site is a module's input (``heads``, ``neurons``) rather than its output."""
    return component in ("heads", "neurons")


def head_dim(attention: nn.Module) -> int:
    """Features per head of an attention module (``head_dim`` / ``head_size`` /
    ``key_value_proj_dim`` on it or a submodule)."""
    for module in attention.modules():
        for name in ("head_dim", "head_size", "key_value_proj_dim"):
            value = getattr(module, name, None)
            if isinstance(value, int) and value > 0:
                return value
    raise ValueError(f"{type(attention).__name__} names no head_dim: its output cannot be split into heads.")


def _as_3d(x: torch.Tensor, batch: int | None) -> torch.Tensor:
    if x.dim() == 3:
        return x
    if x.dim() == 2 and batch:  # OPT: (batch * positions, features)
        return x.view(batch, -1, x.shape[-1])
    raise ValueError(f"ecco expected a (batch, positions, features) tensor at this site, got shape {tuple(x.shape)}.")


def _apply(edit: Edit, x: torch.Tensor, batch: int | None) -> torch.Tensor:
    return edit(_as_3d(x, batch)).reshape(x.shape)


def edit_output(module: nn.Module, edit: Edit, batch: int | None = None) -> Handle:
    """Hook ``module`` so that its (first) output is replaced by ``edit(output)``; ``batch``
    restores a flattened (batch * positions) output. The hook runs before the module's other
    forward hooks (transformers 5 keeps output-capturing hooks on the blocks, for
    ``hidden_states``: they must see the edited value)."""

    def hook(mod: nn.Module, args: tuple, out: object) -> object:
        if isinstance(out, tuple):
            return (_apply(edit, out[0], batch), *out[1:])
        return _apply(edit, out, batch)

    return module.register_forward_hook(hook, prepend=True)


def edit_input(module: nn.Module, edit: Edit, batch: int | None = None) -> Handle:
    """Hook ``module`` so that its first input is replaced by ``edit(input)``."""

    def hook(mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (_apply(edit, args[0], batch), *args[1:]), kwargs
        kwargs["hidden_states"] = _apply(edit, kwargs["hidden_states"], batch)
        return args, kwargs

    return module.register_forward_pre_hook(hook, with_kwargs=True)


def edit_site(module: nn.Module, component: str, edit: Edit, batch: int | None = None) -> Handle:
    """:func:`edit_input` or :func:`edit_output`, as the component's site is."""
    return (edit_input if reads_input(component) else edit_output)(module, edit, batch)


def keep_site(module: nn.Module, component: str, into: list[torch.Tensor], batch: int | None = None) -> Handle:
    """Hook that appends a detached copy of the site's tensor, (batch, positions, features), to ``into``."""

    def keep(x: torch.Tensor) -> torch.Tensor:
        into.append(x.detach().clone())
        return x

    return edit_site(module, component, keep, batch)


class Hooks:
    """Hook handles held for one block: ``with Hooks() as hooks: hooks.add(handle)``; all are
    removed on exit, also after an error."""

    def __init__(self) -> None:
        self._handles: list[Handle] = []

    def add(self, handle: Handle) -> None:
        """Hold ``handle`` until the block exits."""
        self._handles.append(handle)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
