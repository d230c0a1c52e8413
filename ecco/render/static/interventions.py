"""Static rendering of an intervention diff (``intervention_diff``): the interventions, the prompt
(muted), the summary line, the clean and the intervened continuation aligned segment by segment
(removed clean tokens struck through, added intervened tokens marked), then a table of every
intervened token's numbers with a signed bar of its probability change, and a closed table of the
clean tokens' probabilities."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from .html import BLUE, MUTED, ORANGE, chip, collapsed, css, el, finite, fmt, legend, rgb, signed, signed_bar, table

ADDED = "rgba(45,112,230,0.22)"
REMOVED = "rgba(240,120,20,0.22)"


def _dicts(value: Any) -> list[dict]:
    return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []


def _ops(value: Any) -> list[tuple[str, int, int, int, int]]:
    """The well-formed opcodes of ``value``."""
    ops = value if isinstance(value, list) else []
    return [(str(op[0]), *(int(x) for x in op[1:])) for op in ops
            if isinstance(op, list) and len(op) == 5 and all(isinstance(x, int) for x in op[1:])]


def changed_positions(ops: Any) -> tuple[set[int], set[int]]:
    """The clean and the intervened tokens that are in a non-'equal' op."""
    clean: set[int] = set()
    intervened: set[int] = set()
    for tag, i1, i2, j1, j2 in _ops(ops):
        if tag != "equal":
            clean.update(range(i1, i2))
            intervened.update(range(j1, j2))
    return clean, intervened


def summary(data: dict) -> str:
    """'k of n tokens changed; first change at token i' (or that nothing changed)."""
    n = len(_dicts(data.get("intervened")))
    first = next((j1 for tag, _, _, j1, _ in _ops(data.get("ops")) if tag != "equal"), None)
    if first is None:
        return f"nothing changed: the two continuations are the same {n} tokens"
    return f"{data.get('changed')} of {n} tokens changed; first change at token {first}"


def _segments(data: dict) -> Markup:
    """One column per segment: each token of an 'equal' op alone, each other op as a whole."""
    clean, intervened = _dicts(data.get("clean")), _dicts(data.get("intervened"))
    top, bottom = [el("th", {"style": css(color=MUTED, font_weight="400")}, "clean")], \
        [el("th", {"style": css(color=MUTED, font_weight="400")}, "intervened")]
    for tag, i1, i2, j1, j2 in _ops(data.get("ops")):
        pairs = ([((i, i + 1), (j, j + 1)) for i, j in zip(range(i1, i2), range(j1, j2))] if tag == "equal"
                 else [((i1, i2), (j1, j2))])
        for (a, b), (c, d) in pairs:
            same = tag == "equal"
            top.append(el("td", {"data-tag": tag, "style": css(background_color=None if same else REMOVED)},
                          [chip(t.get("text", ""), style="" if same else css(text_decoration="line-through"),
                                title=f"clean token {a + k}: p {fmt(finite(t.get('prob')))}")
                           for k, t in enumerate(clean[a:b])]))
            bottom.append(el("td", {"data-tag": tag, "style": css(background_color=None if same else ADDED)},
                             [chip(t.get("text", ""), style="" if same else css(font_weight="700"),
                                   title=f"intervened token {c + k}: change {signed(finite(t.get('change')))}")
                              for k, t in enumerate(intervened[c:d])]))
    return el("div", {"style": css(overflow_x="auto", max_width="100%")}, el("table", {
        "class": "ecco-s-diff-align", "style": css(border_collapse="collapse", font_size="12px", margin="0.3em 0"),
    }, el("tbody", {}, [el("tr", {}, top), el("tr", {}, bottom)])))


def _change(v: float | None, extent: float) -> Markup:
    colour = rgb(BLUE if (v or 0) >= 0 else ORANGE)
    return el("span", {"style": css(white_space="nowrap")}, [
        signed_bar(v, extent),
        el("span", {"class": "ecco-s-diff-change", "style": css(color=colour, margin_left="4px")}, signed(v))])


def render_intervention_diff(data: dict) -> Markup:
    """The interventions, the prompt, the summary, the aligned continuations and the numbers."""
    clean, intervened = _dicts(data.get("clean")), _dicts(data.get("intervened"))
    removed, added = changed_positions(data.get("ops"))
    prompt = data.get("prompt") if isinstance(data.get("prompt"), list) else []
    interventions = data.get("interventions") if isinstance(data.get("interventions"), list) else []
    extent = max([abs(finite(t.get("change")) or 0) for t in intervened] + [1e-12])
    rows = [(str(j), chip(t.get("text", ""), style=css(font_weight="700") if j in added else ""), str(t.get("id")),
             fmt(finite(t.get("prob"))), fmt(finite(t.get("clean_prob"))), _change(finite(t.get("change")), extent),
             "changed" if j in added else "")
            for j, t in enumerate(intervened)]
    clean_rows = [(str(i), chip(t.get("text", ""), style=css(text_decoration="line-through") if i in removed else ""),
                   str(t.get("id")), fmt(finite(t.get("prob"))), "removed" if i in removed else "")
                  for i, t in enumerate(clean)]
    return el("div", {"class": "ecco-s-diff"}, [
        el("div", {"style": css(color=MUTED, font_size="12px")}, str(data.get("model") or "")),
        el("ul", {"class": "ecco-s-diff-interventions", "style": css(margin="0.2em 0", padding_left="1.4em")},
           [el("li", {}, str(d)) for d in interventions]),
        el("div", {"class": "ecco-s-diff-prompt", "style": css(color=MUTED)}, ["prompt: "] + [chip(t) for t in prompt]),
        el("div", {"class": "ecco-s-diff-summary", "style": css(font_weight="600", margin="0.3em 0")}, summary(data)),
        _segments(data),
        table(["token", "text", "id", "p intervened", "p clean (same prefix)", "change", ""], rows, "ecco-s-diff-intervened",
              numeric_from=2),
        collapsed("clean continuation: each token's probability",
                  table(["token", "text", "id", "p clean", ""], clean_rows, "ecco-s-diff-clean", numeric_from=2)),
        legend("Top row: the continuation without the interventions (clean), bottom row: with them. Change = the "
               "intervened model's probability of its token minus the clean model's after the same prefix; blue up, "
               "orange down. Struck through: clean tokens that went; bold: intervened tokens that came."),
    ])
