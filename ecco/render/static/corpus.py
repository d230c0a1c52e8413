"""Static renderings of the corpus views (``neuron_dashboard``): a neuron's or factor's dashboard
(top contexts, histogram, statistics, direct effect) and the neuron search table."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from .html import (
    BLUE,
    MUTED,
    ORANGE,
    bar,
    capped,
    chip,
    css,
    diverging,
    el,
    finite,
    fmt,
    legend,
    note,
    pct,
    signed,
    table,
    tint,
)

MAX_CONTEXTS = 64   # contexts drawn per dashboard
MAX_ROWS = 100      # rows of the search table
PEAK = "2px solid rgba(20,20,20,0.85)"


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _values(ctx: dict) -> list[float | None]:
    values = _list(ctx.get("values"))
    return [finite(values[i]) if i < len(values) else None for i in range(len(_list(ctx.get("tokens"))))]


def _max_abs(contexts: list[dict]) -> float:
    return max((abs(v) for ctx in contexts for v in _values(ctx) if v is not None), default=0.0)


def _context(ctx: dict, max_abs: float) -> Markup:
    """One context: its tokens coloured by value (orange positive, blue negative), the peak outlined."""
    first = ctx.get("first") if isinstance(ctx.get("first"), int) else 0
    chips = [
        chip(text, diverging(v, max_abs), f"value {signed(v)} \u00b7 position {first + i}",
             css(border=PEAK, font_weight="700") if i == ctx.get("peak") else "")
        for i, (text, v) in enumerate(zip(_list(ctx.get("tokens")), _values(ctx)))
    ]
    return el("span", {"class": "ecco-s-context", "style": css(white_space="nowrap", line_height="1.9")}, chips)


def _where(ctx: dict) -> str:
    return f"{ctx.get('document', '')} \u00b7 position {ctx.get('position', '?')}"


def _histogram(hist: Any) -> Markup:
    """The non-empty span of the histogram as a table: bin range, count, bar."""
    hist = hist if isinstance(hist, dict) else {}
    counts = [c if isinstance(c, int) else 0 for c in _list(hist.get("counts"))]
    edges = [finite(e) for e in _list(hist.get("edges"))]
    filled = [i for i, c in enumerate(counts) if c > 0]
    if not filled:
        return note("no histogram")
    top = max(counts)

    def bound(i: int, default: str) -> str:
        return fmt(edges[i]) if 0 <= i < len(edges) else default

    rows = []
    for i in range(filled[0], filled[-1] + 1):
        lo, hi = bound(i - 1, "\u2212\u221e"), bound(i, "+\u221e")
        upper = edges[i] if i < len(edges) else None
        colour = tint(BLUE if upper is not None and upper <= 0 else ORANGE, 0.9)
        rows.append((f"[{lo}, {hi})", str(counts[i]), (bar(counts[i] / top, colour), css(text_align="left"), None)))
    return table(("bin", "tokens", ""), rows, "ecco-s-histogram")


def _effects(data: dict) -> Markup:
    effects = data.get("effects") if isinstance(data.get("effects"), dict) else None
    if effects is None:
        return note(str(data["effects_note"])) if data.get("effects_note") else Markup("")
    up, down = _dicts(effects.get("up")), _dicts(effects.get("down"))
    rows = [(str(i + 1),
             chip(u.get("text", "")) if u else "", signed(finite(u.get("value"))) if u else "",
             chip(d.get("text", "")) if d else "", signed(finite(d.get("value"))) if d else "")
            for i, (u, d) in enumerate(zip(up + [{}] * (len(down) - len(up)), down + [{}] * (len(up) - len(down))))]
    return Markup("").join((note("direct effect on the output (logit change per unit of activation)"),
                            table(("#", "pushes up", "", "pushes down", ""), rows, "ecco-s-effects", numeric_from=2)))


def _dashboard(data: dict) -> Markup:
    contexts = _dicts(data.get("contexts"))
    shown = contexts[:MAX_CONTEXTS]
    max_abs = _max_abs(shown)
    stats = (f"mean {fmt(finite(data.get('mean')))} \u00b7 std {fmt(finite(data.get('std')))} \u00b7 active (> 0) on "
             f"{pct(finite(data.get('fraction_positive')))} of {data.get('count', '?')} tokens")
    rows = [(str(i + 1), signed(finite(ctx.get("value"))), (_context(ctx, max_abs), css(text_align="left"), None),
             (_where(ctx), css(color=MUTED, text_align="left"), None)) for i, ctx in enumerate(shown)]
    body = table(("#", "value", "context", "where"), rows, "ecco-s-contexts") if rows else note("no tokens to show")
    return Markup("").join((
        el("div", {"style": css(font_weight="600")}, str(data.get("name") or "")),
        note(stats), body, capped(len(shown), len(contexts), "contexts"),
        note("activation histogram"), _histogram(data.get("histogram")), _effects(data),
        legend(f"orange positive, blue negative, intensity = |value| / {fmt(max_abs)}; the top token is outlined"),
    ))


def _search(data: dict) -> Markup:
    neurons = _dicts(data.get("neurons"))
    shown = neurons[:MAX_ROWS]

    def row(n: dict) -> tuple:
        contexts = _dicts(n.get("contexts"))
        max_abs = _max_abs(contexts)
        auroc = finite(n.get("auroc"))
        shown_auroc = "\u2013" if auroc is None else f"{auroc:.3f}"
        lines = [el("div", {"title": _where(c)}, _context(c, max_abs)) for c in contexts]
        return (str(n.get("rank", "")), f"L{n.get('layer', '?')} \u00b7 n{n.get('neuron', '?')}",
                Markup("").join((bar(auroc or 0.0, tint(ORANGE, 1), "60px"), Markup(" "), shown_auroc)),
                f"{pct(finite(n.get('precision_at_k')))} of {n.get('k', '?')}",
                (Markup("").join(lines), css(text_align="left"), None))

    body = table(("#", "neuron", "AUROC", "precision@k", "top contexts"), [row(n) for n in shown], "ecco-s-search",
                 numeric_from=2) if shown else note("no neurons to show")
    return Markup("").join((
        note(f"{len(neurons)} neurons that best separate {data.get('predicate') or 'the matching tokens'}, best AUROC first"),
        body, capped(len(shown), len(neurons), "neurons"),
        legend("each row coloured on its own scale: orange positive, blue negative; the top token is outlined"),
    ))


def render_neuron_dashboard(data: dict) -> Markup:
    """A neuron's or factor's dashboard, or (``kind == "search"``) the search table."""
    return _search(data) if data.get("kind") == "search" else _dashboard(data)
