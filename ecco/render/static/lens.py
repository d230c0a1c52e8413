"""Static renderings of the logit-lens views: layer_predictions, rankings and trajectory."""

from __future__ import annotations

import math
from typing import Any

from markupsafe import Markup

from .html import (
    BLUE,
    MUTED,
    OUTLINE,
    at,
    capped,
    chip,
    collapsed,
    css,
    el,
    finite,
    fmt,
    legend,
    note,
    pct,
    table,
    text_on,
    tint,
    viridis,
)
from .images import caption, colour, line_chart

CONTEXT_SHOWN = 12
MAX_COLUMNS = 80    # rankings columns
MAX_LAYERS = 200
MAX_TABLE_TOKENS = 24   # trajectory values table


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict]:
    return [v if isinstance(v, dict) else {} for v in _list(value)]


# ------------------------------------------------------------------ layer predictions
def render_layer_predictions(data: dict) -> Markup:
    """The logit lens at one position: one row per layer with its top-k candidates (shaded by
    probability, the actual next token outlined) and the actual token's rank at that layer."""
    layers = _dicts(data.get("layers"))[:MAX_LAYERS]
    actual = data.get("actual") if isinstance(data.get("actual"), dict) else None
    actual_id = None if actual is None else actual.get("id")
    by_layer = {r.get("layer"): r for r in _dicts(data.get("actual_by_layer"))}
    context = _dicts(data.get("context"))
    shown = context[-CONTEXT_SHOWN:]
    head = ["position ", str(data.get("position")), " after ", "\u2026" if len(context) > len(shown) else ""]
    head += [chip(t.get("text", "")) for t in shown] + [" ?  \u00b7 actual ", chip(actual.get("text", "")) if actual else "none"]

    def candidate(c: dict) -> Markup:
        p = finite(c.get("prob"))
        is_actual = actual_id is not None and c.get("id") == actual_id
        return el("span", {"class": "ecco-s-candidate", "style": css(
            display="inline-block", margin="1px 3px 1px 0", padding="0 3px", border_radius="3px",
            background_color=tint(BLUE, p) if p is not None else None, outline=OUTLINE if is_actual else None),
            "title": f"rank {c.get('rank')} \u00b7 id {c.get('id')} \u00b7 p {pct(p, 2)}"}, [
            chip(c.get("text", ""), style=css(border="0", padding="0")), " ",
            el("span", {"style": css(font_size="11px")}, pct(p, 1))])

    rows = []
    for entry in layers:
        cands = _dicts(entry.get("candidates"))
        row = [str(entry.get("layer")), (Markup("").join(candidate(c) for c in cands) or "no candidates", css(text_align="left"),
                                         None)]
        if by_layer:
            r = by_layer.get(entry.get("layer"), {})
            rank, prob = finite(r.get("rank")), finite(r.get("prob"))
            row.append((("\u2013" if rank is None else str(int(rank))), css(font_weight="600") if rank == 1 else None,
                        f"probability of the actual token: {pct(prob, 2)}"))
        rows.append(row)
    columns = ("layer", "top candidates (probability)") + (("rank of actual",) if by_layer else ())
    return Markup("").join(p for p in (
        note(head), table(columns, rows, "ecco-s-lp") if rows else note("no layers"),
        capped(len(layers), len(_list(data.get("layers"))), "layers"),
        legend("shade = probability; outlined: the actual next token") if actual else None,
    ) if p)


# ------------------------------------------------------------------ rankings
def _compact(rank: float) -> str:
    return str(int(rank)) if rank < 100000 else f"{round(rank / 1000)}k"


def render_rankings(data: dict) -> Markup:
    """Rank of tokens at every layer: a table of layers by tokens, darker = better rank (log scale)."""
    layers = _list(data.get("layers"))[:MAX_LAYERS]
    all_columns = _dicts(data.get("columns"))
    columns = all_columns[:MAX_COLUMNS]
    ranks, probs = data.get("ranks"), data.get("probs")
    top = finite(data.get("max_rank"))
    if top is None or top < 2:
        top = max([2.0] + [v for r in range(len(layers)) for c in range(len(columns)) if (v := at(ranks, r, c)) is not None])

    def cell(r: int, c: int) -> Any:
        rank = at(ranks, r, c)
        if rank is None:
            return "\u2013"
        shade = math.log(max(rank, 1)) / math.log(top)
        col = columns[c]
        return (_compact(rank), css(background_color=viridis(shade), color=text_on(shade)),
                f"layer {layers[r]} \u00b7 rank {int(rank)} \u00b7 p {pct(at(probs, r, c), 2)} \u00b7 "
                f"position {col.get('position')} \u00b7 id {col.get('id')}")

    head = ["layer"] + [chip(col.get("text", "")) for col in columns]
    rows = [[str(layer)] + [cell(r, c) for c in range(len(columns))] for r, layer in enumerate(layers)]
    return Markup("").join(p for p in (
        note(data["caption"]) if data.get("caption") else None,
        table(head, rows, "ecco-s-rankings") if rows and columns else note("nothing to show"),
        capped(len(columns), len(all_columns), "tokens"), capped(len(layers), len(_list(data.get("layers"))), "layers"),
        legend(f"rank at each layer, log scale from 1 (dark) to {_compact(top)} (light)"),
    ) if p)


# ------------------------------------------------------------------ trajectory
def render_trajectory(data: dict) -> Markup:
    """Per-layer curves of the logit lens: one line chart per series, one line per token, and the
    numbers in a collapsed table."""
    layers = [finite(x) for x in _list(data.get("layers"))]
    tokens = _dicts(data.get("tokens"))
    series = _dicts(data.get("series"))
    xs = [x if x is not None else float(i) for i, x in enumerate(layers)]
    charts = []
    for s in series:
        values = [[at(s.get("values"), t, li) for li in range(len(xs))] for t in range(len(tokens))]
        label = str(s.get("label") or s.get("key") or "")
        chart = line_chart(xs, values, str(s.get("unit") or s.get("key") or ""), f"{label} by layer")
        charts.append(el("figure", {"class": "ecco-s-traj-panel", "style": css(display="inline-block", margin="0 12px 8px 0",
                                                                                  vertical_align="top")},
                         [el("figcaption", {"style": css(font_size="12px")}, label), chart]))
    keys = [el("span", {"style": css(display="inline-block", margin="0 10px 0 0")}, [
        el("span", {"style": css(display="inline-block", width="14px", height="3px", background_color=colour(t),
                                 vertical_align="middle", margin="0 4px 0 0")}),
        chip(tok.get("text", "")), el("span", {"style": css(color=MUTED)}, f" @{tok.get('position')}")])
        for t, tok in enumerate(tokens)]
    return Markup("").join(p for p in (
        Markup("").join(charts) if series and tokens else note("nothing to show"),
        legend(keys) if tokens else None, _values(xs, tokens, series),
    ) if p)


def _values(xs: list[float], tokens: list[dict], series: list[dict]) -> Markup:
    """The numbers of every series, token by layer, in a collapsed table."""
    if not series or not tokens:
        return Markup("")
    shown = tokens[:MAX_TABLE_TOKENS]
    tables = []
    for s in series:
        rows = [[chip(tok.get("text", ""))] + [fmt(at(s.get("values"), t, li)) for li in range(len(xs))]
                for t, tok in enumerate(shown)]
        tables.append(caption(str(s.get("label") or s.get("key") or "")))
        tables.append(table(["layer"] + [f"{x:g}" for x in xs], rows, "ecco-s-traj-values"))
    return collapsed("the numbers", tables, capped(len(shown), len(tokens), "tokens"))
