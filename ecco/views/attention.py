"""Attention views of a record: head view, model view, and the neuron view of one head."""
from __future__ import annotations

import math

from .. import attention
from ..access import check_attention, model_inputs, packed_set, set_tokens
from ..checks import as_int, as_ints
from ..record import Record
from ..render import View
from .tokens import title


def _check(
    record: Record, attention_set: str | None, layer: int | None, heads: list[int] | None
) -> tuple[str, int | None, list[int] | None]:
    """The attention set's name, and ``layer`` and ``heads`` checked against it (Python ints)."""
    name = check_attention(record, attention_set)
    weights = record.attention[name]
    layer = attention.check_layer_head(weights, name, layer, None)[0]
    if heads is not None:
        heads = [attention.check_layer_head(weights, name, None, head)[1] for head in as_ints(heads, "heads")]
    return name, layer, heads


def _sets(record: Record, name: str, sequence: int) -> dict:
    record.check_sequence(sequence)
    names = list(record.attention)
    return {
        "sets": [packed_set(record, n, sequence) for n in names],
        "set": names.index(name),
    }


def attention_head_view(
    record: Record, layer: int | None = None, heads: list[int] | None = None, sequence: int = 0,
    attention_set: str | None = None, printJson: bool = False,
) -> View | dict:
    """See :meth:`ecco.output.OutputSeq.attention_head_view`."""
    name, layer, heads = _check(record, attention_set, layer, heads)
    data = _sets(record, name, sequence) | {
        "layer": 0 if layer is None else layer,
        "heads": None if heads is None else list(heads),
        "title": title(record, f"Attention heads: {name} attention", sequence),
    }
    return data if printJson else View("attention_head", data)


def attention_model_view(
    record: Record, sequence: int = 0, attention_set: str | None = None, printJson: bool = False
) -> View | dict:
    """See :meth:`ecco.output.OutputSeq.attention_model_view`."""
    name = _check(record, attention_set, None, None)[0]
    data = _sets(record, name, sequence) | {"title": title(record, "Attention of every layer and head", sequence)}
    return data if printJson else View("attention_model", data)


def _finite(row: list[float]) -> list[float | None]:
    return [None if not math.isfinite(v) or v < -1e30 else v for v in row]


def attention_neuron_view(
    record: Record, layer: int, head: int, sequence: int = 0, attention_set: str | None = None,
    selected: int | None = None, printJson: bool = False,
) -> View | dict:
    """See :meth:`ecco.output.OutputSeq.attention_neuron_view`."""
    name, layer, (head,) = _check(record, attention_set, as_int(layer, "layer"), [as_int(head, "head")])
    queries, keys = set_tokens(record, name, sequence)
    last = len(queries) - 1
    wrong = f"selected={selected} is out of range: the query tokens are numbered 0..{last} (None: the last)."
    selected = last if selected is None else as_int(selected, "selected", 0, last, wrong)
    runner = record.runner("The neuron view")
    found = attention.queries_keys(runner, model_inputs(record, sequence, runner.device), (name, layer))
    bias = None if found.bias is None else found.bias[head]
    weights = record.attention[name][sequence, layer, head, : len(queries), : len(keys)].float()
    data = {
        "queries": queries,
        "keys": keys,
        "layer": layer,
        "head": head,
        "set": name,
        "stack": "encoder" if name == "encoder" else "decoder",
        "query": found.query[head].tolist(),
        "key": found.key[head].tolist(),
        "scale": found.scale,
        "bias": None if bias is None else [_finite(row) for row in bias.tolist()],
        "weights": weights.tolist(),
        "selected": selected,
        "title": title(record, f"How head {head} of layer {layer} ({name} attention) weighs the tokens", sequence),
    }
    return data if printJson else View("attention_neuron", data)
