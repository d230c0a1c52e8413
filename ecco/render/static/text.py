"""Static renderings of the views that colour the text: tokens, attribution, neuron and nmf."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from .html import (
    BLUE,
    MUTED,
    ORANGE,
    OUTLINE,
    at,
    bar,
    capped,
    chip,
    collapsed,
    css,
    diverging,
    el,
    fmt,
    legend,
    note,
    pct,
    rgb,
    signed,
    swatch,
    table,
    tint,
    tokens_line,
)
from .images import sparkline

MAX_TOKENS = 2000   # tokens drawn as text
MAX_TARGETS = 100   # rows of the attribution "every target" table
TOP_SOURCES = 10
INPUT_BG, OUTPUT_BG = "rgba(128,128,128,0.1)", "rgba(45,112,230,0.18)"
NMF_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
               (23, 190, 207), (227, 119, 194), (188, 189, 34), (140, 86, 75), (90, 70, 220))


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _tokens(data: dict) -> list[dict]:
    return [t if isinstance(t, dict) else {} for t in _list(data, "tokens")]


def _kind(tok: dict) -> str:
    return ("input" if tok.get("is_input", True) else "generated") + (", special" if tok.get("special") else "")


def _by_sequence(tokens: list[dict], chip_of: Callable[[int, dict], Markup]) -> Markup:
    """The tokens as text, one paragraph per sequence (labelled when there are several)."""
    shown = tokens[:MAX_TOKENS]
    sequences = list(dict.fromkeys(t.get("sequence", 0) for t in shown))
    blocks = []
    for seq in sequences:
        members = [(i, t) for i, t in enumerate(shown) if t.get("sequence", 0) == seq]
        label = note(f"sequence {seq}") if len(sequences) > 1 else None
        blocks.append([label, tokens_line((chip_of(i, t), not t.get("continues_word")) for i, t in members)])
    return Markup("").join(_flatten(blocks)) + capped(len(shown), len(tokens), "tokens")


def _flatten(blocks: list[list[Markup | None]]) -> list[Markup]:
    return [m for block in blocks for m in block if m is not None]


def render_tokens(data: dict) -> Markup:
    """The tokens view: input tokens grey, generated tokens blue, id and position in each title."""
    tokens = _tokens(data)

    def chip_of(i: int, tok: dict) -> Markup:
        look = css(font_style="italic", border_style="dashed") if tok.get("special") else ""
        return chip(tok.get("text", ""), INPUT_BG if tok.get("is_input", True) else OUTPUT_BG,
                    f"id {tok.get('id')} \u00b7 position {tok.get('position', i)} \u00b7 {_kind(tok)}", look)

    n_input = sum(1 for t in tokens if t.get("is_input", True))
    parts = [swatch(INPUT_BG), f"{n_input} input"]
    if len(tokens) > n_input:
        parts += ["  ", swatch(OUTPUT_BG), f"{len(tokens) - n_input} generated"]
    return _by_sequence(tokens, chip_of) + legend(parts)


# ------------------------------------------------------------------ attribution
def _last_target(tokens: list[dict], targets: list) -> int | None:
    """Index (into targets) of the last target that is a visible token."""
    for k in range(len(targets) - 1, -1, -1):
        p = targets[k]
        if isinstance(p, int) and 0 <= p < len(tokens) and not tokens[p].get("hidden"):
            return k
    return None


def _sources(tokens: list[dict], row: Any, target: int) -> list[tuple[int, float | None]]:
    """(position, value) of every visible token before ``target``."""
    return [(p, at(row, p)) for p in range(min(target, len(tokens))) if not tokens[p].get("hidden")]


def _top(sources: list[tuple[int, float | None]], n: int) -> list[tuple[int, float]]:
    known = [(p, v) for p, v in sources if v is not None]
    return sorted(known, key=lambda pv: -pv[1])[:n]


def render_attribution(data: dict) -> Markup:
    """Input saliency: the text coloured by each token's share in the last target, its strongest
    sources as bars, and the strongest sources of every target in a table."""
    tokens, targets = _tokens(data), _list(data, "targets")
    attributions = _list(data, "attributions")
    head = []
    if data.get("method_label") or data.get("method"):
        head.append(el("span", {"style": css(font_weight="600")}, data.get("method_label") or data.get("method")))
    k = _last_target(tokens, targets)
    if k is None:
        return Markup("").join(head) + tokens_line((chip(t.get("text", "")), True) for t in tokens if not t.get("hidden")) + \
            note("no generated tokens to explain")
    target = targets[k]
    sources = _sources(tokens, attributions[k] if k < len(attributions) else None, target)
    value = dict(sources)
    top = max((v for v in value.values() if v is not None), default=0.0)
    if data.get("foil") is not None:
        head.append(f" \u00b7 why \u201c{tokens[target].get('text', '')}\u201d rather than \u201c{data['foil']}\u201d")

    def chip_of(p: int, tok: dict) -> Markup:
        v = value.get(p)
        if p == target:
            return chip(tok.get("text", ""), None, f"target, position {p}", css(outline=OUTLINE))
        if p > target:
            return chip(tok.get("text", ""), None, f"position {p}", css(opacity="0.45"))
        shade = tint(BLUE, v / top) if v is not None and top > 0 and v > 0 else None
        return chip(tok.get("text", ""), shade, f"attribution {pct(v)} \u00b7 position {p}")

    visible = [(p, t) for p, t in enumerate(tokens) if not t.get("hidden")]
    text = tokens_line((chip_of(p, t), not t.get("continues_word")) for p, t in visible)
    stats = [f"explaining \u201c{tokens[target].get('text', '')}\u201d (position {target}, the last target)"]
    for key, label, show in (("probs", "probability", pct), ("entropy", "entropy", lambda h: f"{h:.2f} nats"),
                             ("completeness", "completeness error", pct)):
        v = at(data.get(key), k)
        if v is not None:
            stats.append(f"{label} {show(v)}")
    rows = [(chip(tokens[p].get("text", "")), bar(v / top if top > 0 else 0, tint(BLUE, 1)), pct(v))
            for p, v in _top(sources, TOP_SOURCES)]
    parts = [el("div", {"style": css(margin="0 0 0.3em")}, head) if head else None, text, note(" \u00b7 ".join(stats)),
             table(("strongest sources", "attribution", "share"), rows, "ecco-s-attr-top", numeric_from=2) if rows else None,
             _every_target(tokens, targets, attributions)]
    return Markup("").join(p for p in parts if p)


def _every_target(tokens: list[dict], targets: list, attributions: list) -> Markup:
    """A collapsed table: the three strongest sources of every visible target."""
    rows = []
    for k, target in enumerate(targets):
        if not isinstance(target, int) or not 0 <= target < len(tokens) or tokens[target].get("hidden"):
            continue
        best = _top(_sources(tokens, attributions[k] if k < len(attributions) else None, target), 3)
        rows.append([chip(tokens[target].get("text", ""))] + [[chip(tokens[p].get("text", "")), " ", pct(v)] for p, v in best])
    if len(rows) < 2:
        return Markup("")
    shown = rows[:MAX_TARGETS]
    width = max(len(r) for r in shown)
    return collapsed(f"strongest sources of each of the {len(rows)} targets",
                     table(("target",) + tuple(f"#{i}" for i in range(1, width)), [r + [""] * (width - len(r)) for r in shown],
                           "ecco-s-attr-all", numeric_from=width),
                     capped(len(shown), len(rows), "targets"))


# ------------------------------------------------------------------ neuron
def _name(data: dict) -> str:
    parts = [f"{key} {data[key]}" for key in ("layer", "neuron") if data.get(key) not in (None, "")]
    return " \u00b7 ".join(parts)


def render_neuron(data: dict) -> Markup:
    """One neuron over the text: each token coloured (orange positive, blue negative) with its value under it."""
    tokens = _tokens(data)
    values = [at(data.get("values"), i) for i in range(len(tokens))]
    max_abs = max((abs(v) for v in values if v is not None), default=0.0)

    def chip_of(i: int, tok: dict) -> Markup:
        v = values[i]
        return el("span", {"class": "ecco-s-cell", "style": css(display="inline-block", text_align="center",
                                                                 vertical_align="top", margin="0 5px 2px 0")}, [
            chip(tok.get("text", ""), diverging(v, max_abs), f"value {signed(v)} \u00b7 position {tok.get('position', i)}"),
            Markup("<br>"), el("span", {"class": "ecco-s-value", "style": css(font_size="10px", color=MUTED)}, fmt(v, 3)),
        ])

    header = " \u00b7 ".join(s for s in (_name(data), str(data.get("stack") or "")) if s)
    breaks = [i for i in range(1, len(tokens)) if tokens[i].get("sequence") != tokens[i - 1].get("sequence")]
    spark = sparkline(values, rgb(ORANGE), breaks, width=min(720, max(176, 8 * len(values))), height=40,
                      signed=True, alt=f"{header}: activation over {len(values)} tokens") if values else None
    strongest = [(i, v) for i, v in enumerate(values) if v is not None]
    summary = []
    if strongest:
        hi, lo = max(strongest, key=lambda iv: iv[1]), min(strongest, key=lambda iv: iv[1])
        summary = [f"max {signed(hi[1])} at ", chip(tokens[hi[0]].get("text", "")),
                   f" \u00b7 min {signed(lo[1])} at ", chip(tokens[lo[0]].get("text", ""))]
    return Markup("").join(p for p in (
        el("div", {"style": css(font_weight="600")}, header) if header else None,
        _by_sequence(tokens, chip_of) if tokens else note("no tokens to show"),
        spark, legend(summary + [f" \u00b7 orange positive, blue negative, intensity = |value| / {fmt(max_abs)}"]),
    ) if p)


# ------------------------------------------------------------------ nmf
def nmf_rgb(k: int) -> tuple[int, int, int]:
    """The colour of factor ``k`` (the explorer's palette; golden-angle hues after ten)."""
    if k < len(NMF_PALETTE):
        return NMF_PALETTE[k]
    import colorsys

    r, g, b = colorsys.hls_to_rgb(((k * 137.508 + 20) % 360) / 360, 0.5, 0.62)
    return round(r * 255), round(g * 255), round(b * 255)


def _factors(data: dict, n: int) -> list[list[float | None]]:
    """Factor values per token; negative values count as zero (as in the explorer)."""
    rows = _list(data, "factors")
    return [[None if (v := at(row, i)) is None else max(0.0, v) for i in range(n)] for row in rows]


def render_nmf(data: dict) -> Markup:
    """The factor explorer: a sparkline per factor and the text coloured by each token's strongest factor."""
    tokens = _tokens(data)
    values = _factors(data, len(tokens))
    labels = _list(data, "factor_labels")
    peak = [max((v for v in row if v is not None), default=0.0) for row in values]

    def label(k: int) -> str:
        return f"factor {labels[k] if k < len(labels) and labels[k] is not None else k}"

    def strongest(i: int) -> int | None:
        best, best_value = None, 0.0
        for k, row in enumerate(values):
            if row[i] is not None and row[i] > best_value:
                best, best_value = k, row[i]
        return best

    breaks = [i for i in range(1, len(tokens)) if tokens[i].get("sequence") != tokens[i - 1].get("sequence")]
    factors = [el("div", {"class": "ecco-s-factor", "style": css(display="inline-block", vertical_align="top",
                                                                    margin="0 14px 6px 0")}, [
        el("div", {"style": css(font_size="12px")}, [swatch(rgb(nmf_rgb(k))), label(k), " ",
                                                     el("span", {"style": css(color=MUTED)},
                                                        f"max {fmt(peak[k], 3)}" if peak[k] > 0 else "all zero")]),
        sparkline(row, rgb(nmf_rgb(k)), breaks, alt=f"{label(k)} over the tokens"),
    ]) for k, row in enumerate(values)]

    def chip_of(i: int, tok: dict) -> Markup:
        k = strongest(i)
        shade = tint(nmf_rgb(k), values[k][i] / peak[k], 0.72) if k is not None else None
        title = " \u00b7 ".join(f"{label(j)}: {fmt(row[i], 3)}" for j, row in enumerate(values))
        look = css(text_decoration="line-through", opacity="0.55") if tok.get("excluded") else ""
        return chip(tok.get("text", ""), shade, f"position {tok.get('position', i)} \u00b7 {title}", look)

    head = " \u00b7 ".join(str(data[key]) for key in ("method", "caption") if data.get(key))
    return Markup("").join(p for p in (
        note(head) if head else None, Markup("").join(factors),
        _by_sequence(tokens, chip_of) if tokens and values else note("no factors to show" if tokens else "no tokens to show"),
        legend("colour = each token\u2019s strongest factor, intensity = value / that factor\u2019s max; "
               "hover a token for every factor\u2019s value") if values else None,
    ) if p)

