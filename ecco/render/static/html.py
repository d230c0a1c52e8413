"""Building blocks of the static renderings: escaped HTML elements, colours, numbers, token chips.

Everything is styled inline, with CSS values that JupyterLab's sanitizer keeps (untrusted
notebooks lose ``<style>``, ``<svg>`` and scripts, but keep ``style`` and ``title`` attributes,
tables, ``<details>`` and ``<img>`` with a ``data:`` source). All text goes through
:func:`markupsafe.escape`; nothing here ever builds JavaScript.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

MUTED = "rgba(128,128,128,0.95)"
BORDER = "rgba(128,128,128,0.45)"
OUTLINE = "2px solid rgba(240,120,20,0.9)"  # the token a view is about
MONO = "monospace"
ORANGE, BLUE = (240, 120, 20), (45, 112, 230)
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ODD = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _children(children: Any) -> Markup:
    if children is None:
        return Markup("")
    if isinstance(children, (str, int, float)):  # Markup is a str: escape() leaves it as it is
        return escape(children)
    return Markup("").join(_children(c) for c in children)


def el(tag: str, attrs: Mapping[str, Any] | None = None, children: Any = None) -> Markup:
    """``<tag attrs>children</tag>``: attribute values and text children escaped (Markup kept).
    Attributes that are None or False are left out; True writes the bare attribute."""
    parts = [tag]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        parts.append(key if value is True else f'{key}="{escape(value)}"')
    head = Markup("<" + " ".join(parts) + ">")
    if tag in ("img", "br", "wbr", "hr"):
        return head
    return head + _children(children) + Markup(f"</{tag}>")


def css(**props: Any) -> str:
    """An inline style: ``css(font_size="12px")`` -> ``"font-size:12px"`` (None values left out)."""
    return ";".join(f"{k.replace('_', '-')}:{v}" for k, v in props.items() if v is not None)


# ------------------------------------------------------------------ numbers
def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def at(table: Any, *index: int) -> float | None:
    """``finite(table[i][j]...)``, None when any level is missing."""
    for i in index:
        if not isinstance(table, (list, tuple)) or not 0 <= i < len(table):
            return None
        table = table[i]
    return finite(table)


def fmt(v: float | None, digits: int = 4) -> str:
    """``v`` to ``digits`` significant digits, written as JavaScript's ``String(Number(v.toPrecision(digits)))``
    (positional from 1e-6 to 1e21, else exponent), with a real minus sign."""
    if v is None:
        return "\u2013"
    x = float(f"{v:.{digits}g}")
    if x == 0:
        return "0"
    if 1e-6 <= abs(x) < 1e21:
        text = str(int(x)) if x.is_integer() else format(Decimal(repr(x)), "f")
    else:
        mantissa, exponent = repr(x).split("e")
        text = f"{mantissa.removesuffix('.0')}e{int(exponent):+d}"
    return text.replace("-", "\u2212")


def signed(v: float | None, digits: int = 4) -> str:
    """``fmt`` with a ``+`` on positive values."""
    return ("+" if v is not None and v > 0 else "") + fmt(v, digits)


def pct(p: float | None, digits: int = 1) -> str:
    """A fraction as a percentage; tiny positive values read ``<0.1%``."""
    if p is None:
        return "\u2013"
    floor = 10.0 ** -digits
    if 0 < p * 100 < floor:
        return f"<{floor:.{digits}f}%"
    return f"{p * 100:.{digits}f}%".replace("-", "\u2212")


# ------------------------------------------------------------------ colours
def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


def rgb(colour: Sequence[int]) -> str:
    """A CSS colour of (r, g, b)."""
    return "rgb({},{},{})".format(*colour)


def viridis_rgb(v: float) -> tuple[int, ...]:
    """The viridis (r, g, b) of ``v`` in [0, 1] (clamped)."""
    pos = _clamp(v) * (len(_VIRIDIS) - 1)
    i = min(int(pos), len(_VIRIDIS) - 2)
    f = pos - i
    return tuple(round(a + (b - a) * f) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1]))


def viridis(v: float) -> str:
    """The viridis colour of ``v`` in [0, 1] (clamped), as the views' ``colorScale``."""
    return rgb(viridis_rgb(v))


def text_on(v: float) -> str:
    """Black or white, whichever reads better on ``viridis(v)``."""
    r, g, b = viridis_rgb(v)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def tint(rgb: Sequence[int], v: float, top: float = 0.85) -> str:
    """``rgb`` with opacity ``top * v`` (``v`` clamped to [0, 1]): reads on light and dark themes."""
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{top * _clamp(v):.3f})"


def diverging(v: float | None, max_abs: float) -> str | None:
    """Orange for positive, blue for negative values, opacity ``|v| / max_abs``; None for no colour."""
    if v is None or not v or max_abs <= 0:
        return None
    return tint(ORANGE if v > 0 else BLUE, abs(v) / max_abs)


# ------------------------------------------------------------------ tokens
def display_text(text: Any) -> str:
    """Token text as one visible line: newline, tab and carriage return as ``\\n``, ``\\t``, ``\\r``,
    other control characters as ``\\xNN``, lone surrogates as U+FFFD (so the page encodes as UTF-8)."""
    def visible(match: re.Match) -> str:
        c = match.group()
        if c in _CONTROL:
            return _CONTROL[c]
        return "\ufffd" if "\ud800" <= c <= "\udfff" else f"\\x{ord(c):02x}"

    return _ODD.sub(visible, str(text))


def chip(text: Any, background: str | None = None, title: str | None = None, style: str = "",
         cls: str = "ecco-s-token") -> Markup:
    """One token: monospace, spaces kept, control characters shown as escapes."""
    shown = display_text(text)
    parts = re.split(r"(\\[ntr]|\\x[0-9a-f]{2})", shown) if shown != str(text) else [shown]
    body = [el("span", {"style": f"color:{MUTED}"}, p) if i % 2 else p for i, p in enumerate(parts) if p]
    look = css(font_family=MONO, white_space="pre", padding="0 2px", border_radius="3px",
               border=f"1px solid {BORDER}", background_color=background)
    return el("span", {"class": cls, "style": look + (";" + style if style else ""), "title": title}, body)


def tokens_line(chips: Iterable[tuple[Markup, bool]], style: str = "") -> Markup:
    """Token chips as wrapping text: (chip, starts_word) pairs; lines break only between words."""
    out = []
    for i, (piece, starts_word) in enumerate(chips):
        if i and starts_word:
            out.append(Markup("<wbr>"))
        out.append(piece)
    return el("div", {"class": "ecco-s-tokens", "style": css(line_height="1.9") + (";" + style if style else "")}, out)


# ------------------------------------------------------------------ layout pieces
def note(text: Any) -> Markup:
    """A muted one-line remark."""
    return el("div", {"class": "ecco-s-note", "style": css(color=MUTED, font_size="12px", margin="0.3em 0")}, text)


def capped(shown: int, total: int, what: str) -> Markup:
    """The note that says how much of a big view the static rendering leaves out ('' when nothing)."""
    if shown >= total:
        return Markup("")
    return note(f"showing the first {shown} of {total} {what} here; the interactive view shows them all")


def swatch(colour: str) -> Markup:
    """A small colour square."""
    return el("span", {"style": css(display="inline-block", width="0.8em", height="0.8em", background_color=colour,
                                    border=f"1px solid {BORDER}", margin="0 0.3em 0 0", vertical_align="middle")})


def bar(fraction: float, colour: str, width: str = "120px", align: str = "left") -> Markup:
    """A horizontal bar of ``fraction`` (0..1) of ``width``, filled from the ``align`` side."""
    fill = el("span", {"style": css(display="inline-block", height="9px", width=f"{100 * _clamp(fraction):.2f}%",
                                    background_color=colour, vertical_align="middle")})
    return el("span", {"style": css(display="inline-block", width=width, height="9px", vertical_align="middle", text_align=align,
                                    background_color="rgba(128,128,128,0.12)")}, fill)


def signed_bar(v: float | None, extent: float, half_width: str = "90px") -> Markup:
    """Two halves around a zero line: a positive ``v`` fills the right half from the line in blue,
    a negative one the left half towards the left in orange, ``|v| / extent`` of a half."""
    negative = (v or 0) < 0
    half = bar(abs(v or 0) / extent, rgb(ORANGE if negative else BLUE), half_width, "right" if negative else "left")
    blank = el("span", {"style": css(display="inline-block", width=half_width)})
    return el("span", {"style": css(white_space="nowrap")}, [half if negative else blank, blank if negative else half])


def collapsed(summary: str, *body: Any) -> Markup:
    """A ``<details>`` block, closed, with a muted summary line (opens without scripts)."""
    return el("details", {"style": css(margin="0.4em 0")}, [
        el("summary", {"style": css(cursor="pointer", color=MUTED, font_size="12px")}, summary), body])


def legend(*parts: Any) -> Markup:
    """The muted legend line under a view."""
    return el("div", {"class": "ecco-s-legend", "style": css(color=MUTED, font_size="12px", margin_top="0.4em")}, parts)


def cell_style(**extra: Any) -> str:
    """The style of a table cell."""
    return css(padding="1px 5px", border=f"1px solid {BORDER}", **extra)


def table(head: Sequence[Any] | None, rows: Iterable[Sequence[Any]], cls: str, numeric_from: int = 1) -> Markup:
    """A bordered table; a cell is its content or ``(content, style, title)``; columns from
    ``numeric_from`` on are right-aligned. The first cell of every row is a header cell."""
    def cell(tag: str, c: int, value: Any) -> Markup:
        content, style, title = value if isinstance(value, tuple) else (value, None, None)
        align = css(text_align="right") if c >= numeric_from and tag == "td" else ""
        return el(tag, {"style": ";".join(s for s in (cell_style(), align, style or "") if s), "title": title}, content)

    head_row = el("tr", {}, [cell("th", c, h) for c, h in enumerate(head)]) if head else None
    body = [el("tr", {}, [cell("th" if c == 0 else "td", c, v) for c, v in enumerate(row)]) for row in rows]
    return el("div", {"style": css(overflow_x="auto", max_width="100%")}, el("table", {
        "class": cls, "style": css(border_collapse="collapse", font_size="12px", margin="0.3em 0"),
    }, [el("thead", {}, head_row) if head_row else None, el("tbody", {}, body)]))
