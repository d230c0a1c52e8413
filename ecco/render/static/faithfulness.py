"""Static rendering of the faithfulness comparison (``faithfulness``): the table of methods by
metrics (mean [low, high], the random baseline under it, the marks the view data decided), the
failed methods with their error, and the deletion / insertion curves of every method."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from .html import MUTED, cell_style, css, el, finite, fmt, legend, note
from .images import caption, colour, line_chart

MARKS = {"same": "\u2248 random", "worse": "\u2717 worse than random"}
ERROR = "rgb(214,39,40)"
BEST = "rgb(240,120,20)"


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _stat(method: dict, part: str, key: str) -> dict:
    found = method.get(part)
    found = found.get(key) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else {}


def _better(metric: dict) -> str:
    """The arrow and word of a metric's good direction: "\u2191 higher" or "\u2193 lower"."""
    return "\u2193 lower" if metric.get("better") == "lower" else "\u2191 higher"


def interval(stat: dict) -> str:
    """``mean [low, high]`` to 3 significant digits, as the interactive view writes it."""
    return f"{fmt(finite(stat.get('mean')), 3)} [{fmt(finite(stat.get('low')), 3)}, {fmt(finite(stat.get('high')), 3)}]"


def _cell(method: dict, metric: dict, best: bool) -> Markup:
    key = metric.get("key")
    verdicts = method.get("verdicts") if isinstance(method.get("verdicts"), dict) else {}
    verdict = verdicts.get(key)
    mark = "\u2605 best" if best else MARKS.get(verdict)
    style = cell_style(text_align="right", white_space="nowrap", color=MUTED if verdict in MARKS else None)
    return el("td", {"class": "ecco-s-fa-cell", "style": style, "data-verdict": verdict}, [
        el("div", {"style": css(font_family="monospace", font_weight="700" if best else None)},
           interval(_stat(method, "metrics", key))),
        el("div", {"style": css(font_size="11px", color=MUTED)}, "random " + interval(_stat(method, "random", key))),
        el("div", {"class": "ecco-s-fa-mark", "style": css(font_size="11px", color=BEST if best else MUTED,
                                                            font_weight="700" if best else None)}, mark) if mark else None,
    ])


def _row(method: dict, metrics: list[dict], best: dict) -> Markup:
    head = el("th", {"style": cell_style(text_align="left")}, [
        el("div", {}, str(method.get("label", method.get("name", "")))),
        el("div", {"style": css(font_weight="400", font_size="11px", color=MUTED)},
           f"{method.get('n_items', '?')} items \u00b7 {method.get('n_targets', '?')} targets"),
    ])
    if method.get("error") is not None:
        body = el("td", {"class": "ecco-s-fa-error", "colspan": max(1, len(metrics)), "style": cell_style(color=ERROR)},
                  f"failed: {method['error']}")
    else:
        names = method.get("name")
        body = Markup("").join(_cell(method, m, names in (best.get(m.get("key")) or [])) for m in metrics)
    return el("tr", {}, [head, body])


def _table(data: dict, metrics: list[dict], methods: list[dict]) -> Markup:
    best = data.get("best") if isinstance(data.get("best"), dict) else {}
    heads = [el("th", {"style": cell_style(text_align="left"), "title": m.get("description")},
                f"{m.get('label', m.get('key', ''))} {_better(m)[0]}")
             for m in metrics]
    return el("div", {"style": css(overflow_x="auto", max_width="100%")}, el("table", {
        "class": "ecco-s-faithfulness", "style": css(border_collapse="collapse", font_size="12px", margin="0.3em 0"),
    }, [el("thead", {}, el("tr", {}, [el("th", {"style": cell_style(text_align="left")}, "method"), heads])),
        el("tbody", {}, [_row(m, metrics, best) for m in methods])]))


def _means(method: dict, part: str, kind: str) -> list[float | None]:
    curve = _stat(method, part, kind).get("mean")
    return [finite(v) for v in curve] if isinstance(curve, list) else []


def _curves(data: dict, methods: list[dict]) -> Markup:
    """Per curve kind, a chart of every method's mean curve and of the random baselines' (each
    distinct one once), with its legend."""
    fractions = data.get("fractions") if isinstance(data.get("fractions"), list) else []
    xs = [x if x is not None else float(i) for i, x in enumerate(finite(x) for x in fractions)]
    ran = [m for m in methods if m.get("error") is None]
    if not xs or not ran:
        return Markup("")
    parts = []
    for kind in ("deletion", "insertion"):
        lines = [_means(m, "curves", kind) for m in ran]
        labels = [str(m.get("label", "")) for m in ran]
        randoms: list[list[float | None]] = []
        for m in ran:
            values = _means(m, "random_curves", kind)
            if values and values not in randoms:
                labels.append("random" if not randoms else f"random ({m.get('label', '')})")
                randoms.append(values)
        keys = [el("span", {"style": css(display="inline-block", margin="0 10px 0 0")}, [
            el("span", {"style": css(display="inline-block", width="14px", height="3px", background_color=colour(t),
                                     vertical_align="middle", margin="0 4px 0 0")}), label])
            for t, label in enumerate(labels)]
        parts.append(el("figure", {"style": css(display="inline-block", margin="0 12px 8px 0", vertical_align="top")}, [
            caption(f"{kind.capitalize()} curve (mean over items)"),
            line_chart(xs, lines + randoms, "score", f"{kind} curves", x_label="fraction of tokens"), legend(keys),
        ]))
    return Markup("").join(parts)


def render_faithfulness(data: dict) -> Markup:
    """The comparison table with numbers and marks, the error rows, the curves and the captions."""
    metrics, methods = _dicts(data.get("metrics")), _dicts(data.get("methods"))
    notes = data.get("notes") if isinstance(data.get("notes"), dict) else {}
    descriptions = [el("div", {}, [el("span", {"style": css(font_weight="600")}, str(m.get("label", m.get("key", "")))),
                                   f" ({_better(m)} is better): {m.get('description', '')}"])
                    for m in metrics if m.get("description")]
    return Markup("").join((
        note(f"{data.get('n_items', '?')} items \u00b7 score: {data.get('score', '?')} \u00b7 removal: "
             f"{data.get('removal', '?')}"),
        _table(data, metrics, methods) if methods and metrics else note("no methods to show"),
        legend([el("div", {}, str(notes[k])) for k in ("ci", "best", "random") if notes.get(k)]),
        _curves(data, methods),
        legend(descriptions + ([el("div", {}, str(notes["removal"]))] if notes.get("removal") else [])),
    ))
