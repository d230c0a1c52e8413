"""Static rendering of causal tracing (``causal_trace``): the header (target, clean and corrupted
probability, the corruption, the window), then per component a heatmap table of positions (rows,
corrupted tokens starred and bold) by layers (columns) with each cell's number and colour (from 0 to
the table's max). The indirect effect is shown; the normalised effect and the restored probability
follow in closed ``<details>`` blocks."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from .html import MUTED, at, chip, collapsed, css, display_text, el, finite, fmt, legend, tint

LABELS = {"residual": "residual stream", "mlp": "MLP", "attention": "attention"}
VALUES = {"indirect": "indirect effect", "normalised": "normalised effect", "prob": "probability restored"}
# Per component, as the views and the figure (Meng et al. 2022: purple, green, red).
COLOURS = {"residual": (106, 61, 154), "mlp": (35, 139, 69), "attention": (203, 24, 29)}
OTHER = (45, 112, 230)
DARK = 0.55  # cells shaded more than this get white numbers


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def token_label(text: Any, corrupted: bool) -> str:
    """A token's text as a row label, starred when it was corrupted."""
    return display_text(text) + ("*" if corrupted else "")


def top(grid: Any) -> float:
    """The largest positive number of a (layers, positions) grid; 0 when there is none."""
    return max([v for row in _list(grid) for v in (finite(x) for x in _list(row)) if v is not None and v > 0] + [0.0])


def _cell(v: float | None, peak: float, colour: tuple[int, ...]) -> Markup:
    share = (v or 0) / peak if peak > 0 else 0.0
    style = css(background_color=tint(colour, share) if share > 0 else None, color="#fff" if share > DARK else None,
                padding="0 3px", text_align="right")
    return el("td", {"style": style}, fmt(v, 2))


def _heatmap(component: dict, key: str, tokens: list, corrupted: set) -> Markup:
    grid = _list(component.get(key))
    colour = COLOURS.get(str(component.get("name")), OTHER)
    peak = top(grid)
    head = el("tr", {}, [el("th", {}, "")] + [el("th", {"style": css(font_weight="400", color=MUTED)}, str(layer))
                                                for layer in range(len(grid))])
    rows = []
    for p, token in enumerate(tokens):
        label = chip(token, style=css(font_weight="700") if p in corrupted else "")
        rows.append(el("tr", {}, [el("th", {"style": css(text_align="right", white_space="nowrap")},
                                     [label, "*" if p in corrupted else ""])]
                       + [_cell(at(grid, layer, p), peak, colour) for layer in range(len(grid))]))
    title = f"{component.get('label', component.get('name', ''))}: {VALUES[key]} (colour from 0 to {fmt(peak)})"
    return el("div", {"style": css(margin="0.4em 0")}, [
        el("div", {"class": "ecco-s-ct-title", "style": css(font_weight="600", font_size="12px")}, title),
        el("div", {"style": css(overflow_x="auto", max_width="100%")}, el("table", {
            "class": f"ecco-s-ct-{key}", "data-component": str(component.get("name")),
            "style": css(border_collapse="collapse", font_size="10px", font_family="monospace"),
        }, [el("thead", {}, head), el("tbody", {}, rows)])),
    ])


def corruption(data: dict) -> list:
    """How the prompt was corrupted: the counterfactual's tokens, or the noise and its seeds."""
    counterfactual = data.get("counterfactual")
    if isinstance(counterfactual, list):
        changed = set(_list(data.get("corrupted")))
        return ["counterfactual prompt "] + [chip(t, style=css(font_weight="700") if p in changed else "")
                                             for p, t in enumerate(counterfactual)]
    return [f"Gaussian noise \u03c3 {fmt(finite(data.get('noise')))} on the starred tokens, mean of "
            f"{data.get('seeds')} seeds"]


def render_trace(data: dict) -> Markup:
    """The header, the indirect effect heatmaps, and the other two values' heatmaps (closed)."""
    tokens = _list(data.get("tokens"))
    corrupted = {p for p in _list(data.get("corrupted")) if isinstance(p, int)}
    components = [c for c in _list(data.get("components")) if isinstance(c, dict)]
    target = data.get("target") if isinstance(data.get("target"), dict) else {}
    header = el("div", {"class": "ecco-s-ct-header", "style": css(margin="0.3em 0")}, [
        "target ", chip(target.get("text", "")), f" (id {target.get('id')}) \u00b7 ",
        f"p clean {fmt(finite(data.get('clean_prob')))} \u00b7 p corrupted {fmt(finite(data.get('corrupt_prob')))} \u00b7 ",
        corruption(data), f" \u00b7 window {data.get('window')} \u00b7 {data.get('stack')} stack",
    ])
    sections = [_heatmap(c, "indirect", tokens, corrupted) for c in components]
    for key in ("normalised", "prob"):
        sections.append(collapsed(f"{VALUES[key]} heatmaps", [_heatmap(c, key, tokens, corrupted) for c in components]))
    return el("div", {"class": "ecco-s-ct"}, [
        el("div", {"style": css(color=MUTED, font_size="12px")}, str(data.get("model") or "")),
        header, sections,
        legend("Each cell: the target's probability with the clean state of that component restored at that layer "
               "(MLP and attention: the window of layers around it) and token, in the corrupted run. Indirect effect = "
               "restored \u2212 corrupted; normalised = indirect / (clean \u2212 corrupted). Values \u2264 0 are not coloured."),
    ])
