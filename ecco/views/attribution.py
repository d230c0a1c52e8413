"""Input-saliency views of a record's attributions."""
from __future__ import annotations

import torch

from ..attribution import AttributionResult
from ..attribution.aggregate import word_spans
from ..checks import as_int, is_int
from ..record import Record
from ..render import View
from .tokens import title, tokens_data


def attribution_result(record: Record, attr_method: str) -> AttributionResult:
    """The attributions of one method: computed now if the output still has its live model,
    with a clear error otherwise (see :meth:`ecco.record.Record.attribution_result`)."""
    return record.attribution_result(attr_method)


def _hidden_positions(record: Record, sequence: int, ignore_tokens: list[int | str] | None) -> set[int]:
    seq = record.sequences[sequence]
    hidden = set()
    items = ignore_tokens if ignore_tokens is not None else []
    items = [items] if isinstance(items, str) or is_int(items) else items
    for item in items:
        if is_int(item):
            wrong = f"ignore_tokens position {item} is outside 0..{len(seq) - 1} (this sequence's tokens)."
            hidden.add(as_int(item, "ignore_tokens position", 0, len(seq) - 1, wrong))
        elif isinstance(item, str):
            hidden.update(i for i, text in enumerate(seq.tokens) if text == item or text.strip() == item)
        else:
            raise ValueError(f"ignore_tokens entries are token positions (integers) or token texts, got {item!r}.")
    return hidden


def _step_value(values: torch.Tensor | None, sequence: int, step: int) -> float | None:
    """One per-step score as a JSON-safe float (None when missing)."""
    if values is None or not 0 <= step < values.shape[1]:
        return None
    value = float(values[sequence, step])
    return None if value != value else value


def primary_attributions(
    record: Record, attr_method: str = "grad_x_input", style: str = "minimal",
    ignore_tokens: list[int | str] | None = None, printJson: bool = False, sequence: int = 0,
) -> View | dict:
    """See :meth:`ecco.output.OutputSeq.primary_attributions`."""
    if style not in ("minimal", "detailed"):
        raise ValueError(f"style must be 'minimal' or 'detailed', got {style!r}.")
    seq = record.check_sequence(sequence)
    hidden = _hidden_positions(record, sequence, ignore_tokens)
    result = attribution_result(record, attr_method)  # may run the model: the arguments are checked first
    data = tokens_data(record, sequence)
    for token in data["tokens"]:
        token["hidden"] = token["position"] in hidden
    targets = result.targets[sequence]
    layout = record.layout(sequence)
    errors = result.completeness_error
    data.update(
        targets=targets,
        attributions=[v.tolist() for v in result.values[sequence]],
        raw=[v.tolist() for v in result.raw[sequence]],
        words=[list(span) for span in word_spans(seq.continues_word)],
        method=attr_method,
        method_label=result.label,
        style=style,
        probs=[_step_value(record.token_probs, sequence, layout.step(t)) for t in targets],
        entropy=[_step_value(record.token_entropy, sequence, layout.step(t)) for t in targets],
        completeness=None if errors is None else [float(e) for e in errors[sequence]],
        foil=result.foil_text[sequence] if result.foil_text else None,
        title=title(record, f"{result.label} attribution", sequence),
    )
    return data if printJson else View("attribution", data)


def word_attributions(record: Record, attr_method: str = "grad_x_input", sequence: int = 0, raw: bool = False) -> dict:
    """See :meth:`ecco.output.OutputSeq.word_attributions`."""
    seq = record.check_sequence(sequence)
    result = attribution_result(record, attr_method)
    spans = word_spans(seq.continues_word)
    return {
        "words": ["".join(seq.tokens[a:b]) for a, b in spans],
        "targets": result.targets[sequence],
        "values": result.word_values(sequence, seq.continues_word, raw=raw),
    }
