"""Pictures for the static renderings, as ``<img>`` elements with a ``data:`` source.

An untrusted notebook in JupyterLab drops inline ``<svg>`` (and keeps only its text) but keeps
``<img src="data:...">``, so charts are SVG documents (line charts, sparklines, attention lines)
or PNGs (heat maps with thousands of cells) carried inside an image.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from markupsafe import Markup, escape

from .html import MUTED, css, el

SANS = "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif"
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#8c8c8c")
AXIS = "rgb(128, 128, 128)"


def colour(i: int) -> str:
    """The i-th line colour of the charts (the trajectory view's palette, then golden-angle hues)."""
    return PALETTE[i] if i < len(PALETTE) else f"hsl({round(i * 137.508) % 360}, 55%, 55%)"


def _img(mime: str, payload: bytes, width: float, height: float, alt: str, cls: str) -> Markup:
    src = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
    return el("img", {"class": cls, "src": src, "width": round(width), "height": round(height), "alt": alt, "title": alt,
                      "style": css(display="block", max_width="none")})


def svg_image(body: Markup | str, width: float, height: float, alt: str, cls: str = "ecco-s-chart") -> Markup:
    """An SVG document of ``width`` x ``height`` user units around ``body`` (SVG markup), as an image."""
    doc = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
           f'viewBox="0 0 {width:g} {height:g}" font-family="{SANS}">{body}</svg>')
    return _img("image/svg+xml", doc.encode("utf-8"), width, height, alt, cls)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG file of an (height, width, 4) uint8 RGBA array."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    height, width = rgba.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgba.reshape(height, width * 4)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def png_image(rgba: np.ndarray, alt: str, cls: str = "ecco-s-heatmap") -> Markup:
    """An (height, width, 4) uint8 RGBA array as a PNG image, one pixel per CSS pixel."""
    return _img("image/png", png_bytes(rgba), rgba.shape[1], rgba.shape[0], alt, cls)


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """SVG path data through ``points``; None breaks the line."""
    d, pen = [], False
    for p in points:
        if p is None:
            pen = False
            continue
        d.append(f"{'L' if pen else 'M'}{p[0]:.1f},{p[1]:.1f}")
        pen = True
    return "".join(d)


def sparkline(values: Sequence[float | None], stroke: str, breaks: Sequence[int] = (), width: int = 176,
              height: int = 30, signed: bool = False, alt: str = "") -> Markup:
    """A small line of ``values`` over the tokens, filled down to the baseline (zero). ``breaks``:
    indexes where a new sequence starts (a vertical rule before them). ``signed``: zero mid-height."""
    pad, n = 2.0, len(values)
    known = [abs(v) for v in values if v is not None]
    top = max(known, default=0.0) or 1.0
    base = height / 2 if signed else height - pad
    span = (height / 2 - pad) if signed else (height - 2 * pad)

    def x(i: int) -> float:
        return pad + i * (width - 2 * pad) / (n - 1) if n > 1 else width / 2

    points = [None if v is None else (x(i), base - (v / top) * span) for i, v in enumerate(values)]
    body = [f'<line x1="{pad}" x2="{width - pad}" y1="{base + 0.5:.1f}" y2="{base + 0.5:.1f}" stroke="{AXIS}" '
            'stroke-opacity="0.6"/>']
    for i in breaks:
        bx = (x(i) + x(i - 1)) / 2
        body.append(f'<line x1="{bx:.1f}" x2="{bx:.1f}" y1="0" y2="{height}" stroke="{AXIS}" stroke-dasharray="2 2"/>')
    line = _path(points)
    if line and n > 1 and None not in points:
        body.append(f'<path d="M{x(0):.1f},{base:.1f}L{line[1:]}L{x(n - 1):.1f},{base:.1f}Z" fill="{stroke}" '
                    'fill-opacity="0.25"/>')
    if line:
        body.append(f'<path d="{line}" fill="none" stroke="{stroke}" stroke-width="1.4"/>')
    return svg_image(Markup("".join(body)), width, height, alt, "ecco-s-spark")


def _step(lo: float, hi: float, count: int, integer: bool = False) -> float:
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    f = raw / magnitude
    step = (1 if f <= 1 else 2 if f <= 2 else 5 if f <= 5 else 10) * magnitude
    return max(1, round(step)) if integer else step


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    return [0.0 if abs(k * step) < step * 1e-9 else k * step for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def line_chart(xs: Sequence[float], lines: Sequence[Sequence[float | None]], y_label: str, alt: str,
               x_label: str = "layer", width: int = 320, height: int = 210) -> Markup:
    """A line chart: one line per entry of ``lines`` (values at ``xs``), coloured by :func:`colour`,
    with ticks on both axes; the y axis starts at zero or below."""
    left, right, top, bottom = 50, 12, 12, 36
    pw, ph = width - left - right, height - top - bottom
    xlo, xhi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if xhi == xlo:
        xlo, xhi = xlo - 0.5, xhi + 0.5
    known = [v for row in lines for v in row if v is not None]
    lo, hi = min(0.0, min(known, default=0.0)), max(known, default=1.0)
    hi = hi if hi > lo else lo + 1
    ystep = _step(lo, hi, 5)
    lo, hi = math.floor(lo / ystep + 1e-9) * ystep, math.ceil(hi / ystep - 1e-9) * ystep
    digits = max(0, min(6, -math.floor(math.log10(ystep) + 1e-9)))

    def px(v: float) -> float:
        return left + (v - xlo) / (xhi - xlo) * pw

    def py(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    text = f'font-size="10" fill="{AXIS}"'
    body = []
    for v in _ticks(lo, hi, ystep):
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="{AXIS}" stroke-opacity="0.2"/>'
                    f'<text x="{left - 6}" y="{py(v) + 3:.1f}" text-anchor="end" {text}>{v:.{digits}f}</text>')
    for v in _ticks(xlo, xhi, _step(xlo, xhi, 6, integer=True)):
        body.append(f'<text x="{px(v):.1f}" y="{top + ph + 15}" text-anchor="middle" {text}>{v:g}</text>')
    body.append(f'<path d="M{left},{top}V{top + ph}H{left + pw}" fill="none" stroke="{AXIS}"/>'
                f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" {text}>{escape(x_label)}</text>'
                f'<text transform="translate(11 {top + ph / 2}) rotate(-90)" text-anchor="middle" {text}>'
                f'{escape(y_label)}</text>')
    for t, row in enumerate(lines):
        points = [None if v is None else (px(x), py(v)) for x, v in zip(xs, row)]
        body.append(f'<path d="{_path(points) or "M0,0"}" fill="none" stroke="{colour(t)}" stroke-width="1.6"/>')
        body.extend(f'<circle cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="2" fill="{colour(t)}"/>' for p in points if p)
    return svg_image(Markup("".join(body)), width, height, alt)


def caption(text: str) -> Markup:
    """A small caption above a chart."""
    return el("div", {"style": css(font_size="12px", color=MUTED, margin="0.4em 0 0.1em")}, text)
