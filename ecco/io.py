"""Save and read a record (an OutputSeq): one safetensors file, no pickle.

Format (version 1): every array is a tensor named ``<field>.<key>`` (``activations.decoder``,
``hidden_states.encoder``, ``attention.cross``, ...) or ``<field>`` (``token_probs``); the
file's string metadata holds ``ecco`` = a JSON document with the format version, the model
name and kind, layer counts, the activation layer numbers and, per sequence, its token ids,
readable tokens and flags. Attributions are stored per method as ``attribution.<method>.values``
and ``.raw`` (sequences, targets, sources) float64 tensors padded with NaN, plus
``.completeness`` when the method reports it; their targets, label, score (explained and asked), steps and foil are
in the metadata. The intervention diffs of a generation with interventions are stored per sequence
``i`` as ``intervention.<i>.<probabilities>`` float64 tensors, their token ids and descriptions in
the metadata; the clean run (``output.clean``) is not saved, with a warning: save it on its own
(``output.clean.save(path)``) to keep its captures. Arrays come back bit-exactly, in their stored dtype.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .attribution import AttributionResult
from .causal.diff import InterventionDiff
from .record import ModelLink, Record, SequenceMeta

FORMAT_VERSION = 1
R = TypeVar("R", bound=Record)
_DICT_FIELDS = ("activations", "hidden_states", "attention")
_TENSOR_FIELDS = ("token_probs", "token_entropy")
_DIFF_PROBS = ("clean_probs", "intervened_probs", "intervened_clean_probs")
_DIFF_IDS = ("descriptions", "prompt_ids", "clean_ids", "intervened_ids")


def save(output: Record, path: str | Path) -> Path:
    """Write ``output`` to ``path`` (conventionally ``*.ecco.safetensors``)."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name in _DICT_FIELDS:
        for key, value in getattr(output, name).items():
            tensors[f"{name}.{key}"] = torch.as_tensor(value).contiguous()
    for name in _TENSOR_FIELDS:
        value = getattr(output, name)
        if value is not None:
            tensors[name] = value.contiguous()
    for name, result in output.attributions.items():
        tensors[f"attribution.{name}.values"] = _pad_ragged(result.values)
        tensors[f"attribution.{name}.raw"] = _pad_ragged(result.raw)
        if result.completeness_error is not None:
            tensors[f"attribution.{name}.completeness"] = _pad_ragged([[e] for e in result.completeness_error])[:, 0]
    for i, diff in enumerate(output.intervention_diffs):
        tensors.update({f"intervention.{i}.{name}": torch.as_tensor(getattr(diff, name), dtype=torch.float64)
                        for name in _DIFF_PROBS})
    if output.clean is not None:
        warnings.warn("output.clean (the generation without interventions) is not saved, only the intervention diffs: "
                      "save it on its own with output.clean.save(path) to keep its captures.", stacklevel=3)
    meta = {
        "format_version": FORMAT_VERSION,
        "model_name": output.model_name,
        "kind": output.kind,
        "n_layers": output.n_layers,
        "activation_layers": output.activation_layers,
        "sequences": [asdict(s) for s in output.sequences],
        "attributions": {
            name: {"label": r.label, "score": r.score, "targets": r.targets, "n_steps": r.n_steps,
                   "foil_ids": r.foil_ids, "foil_text": r.foil_text, "asked_score": r.asked_score}
            for name, r in output.attributions.items()
        },
        "interventions": [{name: getattr(diff, name) for name in _DIFF_IDS} for diff in output.intervention_diffs],
    }
    save_file(tensors, str(path), metadata={"ecco": json.dumps(meta)})
    return path


def read(path: str | Path, cls: type[R], link: ModelLink | None = None) -> R:
    """Read a record written by :func:`save` as a ``cls`` (``ecco.load`` reads an OutputSeq),
    attached to ``link`` (the live model's tokenizer, lens head and runner) if given."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
        if "ecco" not in header:
            raise ValueError(f"{path} is not an ecco output file (no 'ecco' metadata).")
        meta = json.loads(header["ecco"])
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise ValueError(
                f"{path} has ecco format version {version}; this ecco reads version {FORMAT_VERSION}. "
                + ("It was saved by a newer ecco: upgrade ecco (pip install -U ecco) to read it."
                   if newer else "It was not written by this ecco: make the output again and save it.")
            )
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    fields: dict = {name: {} for name in _DICT_FIELDS}
    fields["attributions"] = {
        name: _attribution(name, info, tensors) for name, info in meta.get("attributions", {}).items()
    }
    for name, tensor in tensors.items():
        field_name, _, key = name.partition(".")
        if field_name in ("attribution", "intervention"):
            continue
        if field_name in _DICT_FIELDS:
            fields[field_name][key] = tensor.numpy() if field_name == "activations" else tensor
        else:
            fields[field_name] = tensor
    return cls(
        link=link,
        model_name=meta["model_name"],
        kind=meta["kind"],
        n_layers=meta["n_layers"],
        sequences=[SequenceMeta(**s) for s in meta["sequences"]],
        activation_layers=meta["activation_layers"],
        intervention_diffs=[
            InterventionDiff(**info, **{name: tensors[f"intervention.{i}.{name}"].numpy() for name in _DIFF_PROBS})
            for i, info in enumerate(meta.get("interventions", []))
        ],
        **fields,
    )


def _pad_ragged(rows: list) -> torch.Tensor:
    """(sequences, items, length) float64 tensor from nested lists of 1-d arrays, NaN-padded."""
    n_items = max((len(r) for r in rows), default=0)
    width = max((len(a) for r in rows for a in r), default=0)
    out = torch.full((len(rows), n_items, width), float("nan"), dtype=torch.float64)
    for i, row in enumerate(rows):
        for j, values in enumerate(row):
            out[i, j, : len(values)] = torch.as_tensor(values, dtype=torch.float64)
    return out


def _unpad(tensor: torch.Tensor, lengths: list[list[int]]) -> list[list]:
    return [[tensor[i, j, :n].numpy() for j, n in enumerate(row)] for i, row in enumerate(lengths)]


def _attribution(name: str, info: dict, tensors: dict[str, torch.Tensor]) -> AttributionResult:
    targets = info["targets"]
    completeness = tensors.get(f"attribution.{name}.completeness")
    return AttributionResult(
        method=name,
        label=info["label"],
        score=info["score"],
        targets=targets,
        values=_unpad(tensors[f"attribution.{name}.values"], targets),
        raw=_unpad(tensors[f"attribution.{name}.raw"], targets),
        completeness_error=None
        if completeness is None
        else [completeness[i, : len(t)].numpy() for i, t in enumerate(targets)],
        n_steps=info["n_steps"],
        foil_ids=info["foil_ids"],
        foil_text=info["foil_text"],
        asked_score=info.get("asked_score"),
    )
