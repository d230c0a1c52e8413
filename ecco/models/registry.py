"""Resolve a loaded transformers model to a :class:`ModelSpec`.

Three sources, in order of precedence:

1. ``model_config`` given by the user (Ecco's dict form, plus optional ``blocks``,
   ``final_norm`` and ``lm_head`` paths);
2. the registry of known architectures, keyed by the transformers ``*PreTrainedModel``
   class that every head class of a family derives from;
3. discovery from the module tree, for classes the registry does not know.

Anything that cannot be resolved raises :class:`ArchitectureError` naming what is
missing and how to pass it in ``model_config``.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from torch import nn

from .architectures import ENTRIES, GENERIC
from .kinds import Kind, as_kind
from .spec import ArchSpec, ModelSpec, Stack, StackSpec


class ArchitectureError(ValueError):
    """The model's architecture could not be resolved."""


_REGISTRY: dict[str, ArchSpec] = {}


def register(spec: ArchSpec, *class_names: str) -> None:
    """Register ``spec`` for models deriving from any of ``class_names``."""
    for name in class_names:
        _REGISTRY[name] = spec


for _entry, _classes in ENTRIES:
    register(_entry, *_classes)

# Discovery: names of FFN output projections and final norms seen across transformers.
_FFN_OUT_NAMES = (
    "mlp.down_proj", "mlp.c_proj", "mlp.fc_out", "mlp.dense_4h_to_h", "mlp.fc2",
    "feed_forward.w2", "output.dense", "ffn.lin2", "fc2",
)
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "layer_norm", "norm_f")
_CONFIG_HELP = (
    "Pass model_config={'type': 'causal'|'mlm'|'enc-dec', 'activations': [regex of the FFN "
    "output projection, e.g. 'mlp\\\\.down_proj'], 'blocks': 'model.layers', "
    "'final_norm': 'model.norm'} to ecco.from_pretrained / ecco.from_model."
)


def get_module(root: nn.Module, path: str) -> nn.Module | None:
    """Follow a dotted path (integer parts index ModuleLists, negatives allowed)."""
    module: nn.Module | None = root
    for part in path.split("."):
        if module is None:
            return None
        if re.fullmatch(r"-?\d+", part) and isinstance(module, (nn.ModuleList, nn.Sequential)):
            index = int(part)
            module = module[index] if -len(module) <= index < len(module) else None
        else:
            module = getattr(module, part, None)
            if module is not None and not isinstance(module, nn.Module):
                return None
    return module


def model_kind(model: nn.Module) -> Kind:
    """causal / masked / enc-dec, from the model's config and generation ability."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return Kind.ENC_DEC
    can_generate = getattr(model, "can_generate", None)
    return Kind.CAUSAL if callable(can_generate) and can_generate() else Kind.MASKED


def _lookup(model: nn.Module) -> ArchSpec | None:
    for cls in type(model).__mro__:
        if cls.__name__ in _REGISTRY:
            return _REGISTRY[cls.__name__]
    return None


def _resolve_stack(base: nn.Module, spec: StackSpec, name: str, model: nn.Module) -> Stack | None:
    blocks = get_module(base, spec.blocks)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        return None
    ffn = [get_module(block, spec.ffn_out) for block in blocks]
    if any(m is None for m in ffn):
        raise ArchitectureError(
            f"{type(model).__name__}: the FFN output projection '{spec.ffn_out}' is missing "
            f"from some blocks of '{spec.blocks}'. {_CONFIG_HELP}"
        )
    norm = get_module(base, spec.final_norm) if spec.final_norm else None
    if spec.final_norm and norm is None and spec.final_norm_required:
        raise ArchitectureError(
            f"{type(model).__name__}: the final norm '{spec.final_norm}' was not found. {_CONFIG_HELP}"
        )
    return Stack(name, list(blocks), ffn, norm, **_parts(spec, list(blocks)))


def _per_block(blocks: list[nn.Module], path: str | None) -> list[nn.Module]:
    """The module at ``path`` in every block; empty (not known) unless every block has one."""
    found = [get_module(block, path) for block in blocks] if path else []
    return found if found and all(m is not None for m in found) else []


def _parts(spec: StackSpec, blocks: list[nn.Module]) -> dict[str, list]:
    """The residual parts of a stack's blocks, resolved like ``ffn_out`` (see ``StackSpec``)."""
    names = ("attention", "attention_out", "mlp", "cross_attention", "cross_attention_out")
    parts: dict[str, list] = {name: _per_block(blocks, getattr(spec, name)) for name in names}
    after = [_per_block(blocks, path) for path in spec.post_norms or ()]
    parts["post_norms"] = list(zip(*after)) if after and all(after) else []
    return parts


def _hidden_size(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    for attr in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def _linear_dims(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a Linear or a GPT-2 style Conv1D."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):
        rows, cols = module.weight.shape
        return int(rows), int(cols)
    return None


def _discover_ffn_out(block: nn.Module, hidden: int | None) -> str | None:
    for name in _FFN_OUT_NAMES:
        if get_module(block, name) is not None:
            return name
    # Fallback: the last projection that maps a wider space back to the hidden size.
    found = None
    for name, module in block.named_modules():
        dims = _linear_dims(module)
        if dims and hidden and dims[1] == hidden and dims[0] > hidden:
            found = name
    return found


def _discover(model: nn.Module, kind: Kind) -> ArchSpec | None:
    base = model.base_model
    lists = [
        (name, module)
        for name, module in base.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and len({type(m) for m in module}) == 1
    ]
    # Keep only top-level stacks: lists of modules that themselves hold sub-layers.
    lists = [(n, m) for n, m in lists if not any(n.startswith(o + ".") for o, _ in lists)]
    if kind.encoder_decoder:
        chosen = [next(((n, m) for n, m in lists if part in n), None) for part in ("encoder", "decoder")]
        if None in chosen:
            return None
    else:
        if not lists:
            return None
        chosen = [max(lists, key=lambda item: len(item[1]))]
    hidden = _hidden_size(model)
    stacks = []
    for path, blocks in chosen:
        ffn = _discover_ffn_out(blocks[0], hidden)
        if ffn is None:
            raise ArchitectureError(
                f"{type(model).__name__}: found the blocks at '{path}' but not their FFN output "
                f"projection. {_CONFIG_HELP}"
            )
        container = path.rsplit(".", 1)[0] + "." if "." in path else ""
        norm = next(
            (container + n for n in _FINAL_NORM_NAMES if get_module(base, container + n) is not None),
            None,
        )
        stacks.append(StackSpec(path, ffn, norm, False))
    return dataclasses.replace(GENERIC, name=f"discovered:{type(model).__name__}", stacks=tuple(stacks))


def _config_module(model: nn.Module, config: Mapping, key: str, stack: str) -> nn.Module | None:
    """A module named in model_config: a path, or a dict of paths keyed by stack name."""
    path = config.get(key)
    if isinstance(path, Mapping):
        path = path.get(stack)
    if not isinstance(path, str):
        return None
    module = get_module(model, path)
    if module is None:
        raise ArchitectureError(f"model_config {key!r}: no module at {path!r} in {type(model).__name__}.")
    return module


def _from_model_config(model: nn.Module, config: Mapping, kind: Kind) -> ModelSpec:
    """Ecco's ``model_config``: FFN modules matched by regex, ordered by layer number."""
    patterns = config.get("activations")
    if not patterns:
        raise ArchitectureError(
            "model_config needs an 'activations' entry: a list of regular expressions matching "
            f"the FFN output projection modules. {_CONFIG_HELP}"
        )
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    matches = [
        (name, module)
        for name, module in model.named_modules()
        if name and any(re.search(p, name) for p in patterns)
    ]
    if not matches:
        raise ArchitectureError(
            f"model_config 'activations' {patterns} matched no module of {type(model).__name__}."
        )
    names = kind.stacks
    stacks: dict[str, Stack] = {}
    for stack_name in names:
        selected = [
            (name, module)
            for name, module in matches
            if len(names) == 1 or stack_name in name
        ]
        selected.sort(key=lambda item: [int(n) for n in re.findall(r"\d+", item[0])])
        blocks = _config_module(model, config, "blocks", stack_name)
        norm = _config_module(model, config, "final_norm", stack_name)
        block_list = list(blocks) if blocks is not None else [m for _, m in selected]
        stacks[stack_name] = Stack(stack_name, block_list, [m for _, m in selected], norm)
    embedding_path = config.get("embedding", "")
    embeddings = get_module(model, re.sub(r"\.weight$", "", embedding_path)) if embedding_path else None
    head_path = config.get("lm_head")
    head = get_module(model, head_path) if isinstance(head_path, str) else model.get_output_embeddings()
    name = f"model_config:{type(model).__name__}"
    return ModelSpec(
        arch=name,
        kind=kind,
        embeddings=embeddings or model.get_input_embeddings(),
        stacks=stacks,
        lm_head=head,
        family=dataclasses.replace(GENERIC, name=name),
    )


def _config_kind(config: Mapping | None) -> Kind | None:
    if not config or "type" not in config:
        return None
    kind = {"mlm": "masked", "encoder": "masked"}.get(config["type"], config["type"])
    try:
        return as_kind(kind)
    except ValueError:
        raise ArchitectureError(
            f"model_config type {config['type']!r} is not one of 'causal', 'mlm', 'enc-dec'."
        ) from None


def resolve(model: nn.Module, model_config: Mapping | None = None) -> ModelSpec:
    """Resolve ``model`` to a :class:`ModelSpec` (see the module docstring)."""
    kind = _config_kind(model_config) or model_kind(model)
    if model_config and model_config.get("activations"):
        return _from_model_config(model, model_config, kind)
    arch = _lookup(model) or _discover(model, kind)
    if arch is None:
        raise ArchitectureError(
            f"Could not find the transformer blocks of {type(model).__name__} "
            f"(kind '{kind}'). {_CONFIG_HELP}"
        )
    base = model.base_model
    resolved = [s for s in (_resolve_stack(base, spec, "", model) for spec in arch.stacks) if s]
    names = kind.stacks
    if len(resolved) != len(names):
        raise ArchitectureError(
            f"{type(model).__name__} ({arch.name}) is '{kind}' and needs {len(names)} stack(s) of "
            f"blocks, found {len(resolved)}. {_CONFIG_HELP}"
        )
    stacks = {}
    for name, stack in zip(names, resolved):
        stack.name = name
        stacks[name] = stack
    return ModelSpec(
        arch=arch.name,
        kind=kind,
        embeddings=model.get_input_embeddings(),
        stacks=stacks,
        lm_head=model.get_output_embeddings(),
        family=arch,
    )
