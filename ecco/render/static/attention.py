"""Static renderings of the attention views: attention_head, attention_model and attention_neuron.

Attention sets can be large (layers x heads x queries x keys), so what is drawn is capped and the
rendering says so: the head view draws at most ``MAX_TOKENS`` tokens a side and its
``MAX_LINES`` strongest lines; the model view's thumbnails share a pixel budget.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from .html import (
    BLUE,
    MUTED,
    OUTLINE,
    at,
    bar,
    capped,
    chip,
    css,
    display_text,
    el,
    finite,
    fmt,
    legend,
    note,
    pct,
    rgb,
    table,
    tint,
    tokens_line,
)
from .images import png_image, svg_image

MAX_TOKENS = 64           # tokens per side in the head view and rows in the tables
MAX_LINES = 1500          # lines drawn by the head view
MIN_WEIGHT = 0.02
PIXEL_BUDGET = 250_000    # pixels of all the model view's thumbnails together
TILE, MIN_TILE, GAP = 32, 12, 4
HEAD_PALETTE = ((78, 121, 167), (242, 142, 43), (225, 87, 89), (89, 161, 79), (176, 122, 161),
                (118, 183, 178), (237, 201, 72), (255, 157, 167), (156, 117, 95), (140, 140, 140))


def head_rgb(h: int) -> tuple[int, int, int]:
    """The colour of head ``h`` (the attention views' ``headColor``)."""
    if h < len(HEAD_PALETTE):
        return HEAD_PALETTE[h]
    hue = (h * 137.508) % 360

    def f(n: int) -> int:
        k = (n + hue / 30) % 12
        return round(255 * (0.55 - 0.3 * max(-1, min(k - 3, 9 - k, 1))))

    return f(0), f(8), f(4)


def unpack(s: dict) -> np.ndarray | None:
    """A packed attention set's weights as a (layers, heads, queries, keys) uint8 array (byte / 255 =
    weight), or None when they do not match the shape."""
    shape = s.get("shape")
    if not isinstance(shape, list) or len(shape) != 4 or not all(isinstance(n, int) and n >= 0 for n in shape):
        return None
    try:
        raw = base64.b64decode(s.get("weights") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        return None
    if len(raw) != math.prod(shape):
        return None
    return np.frombuffer(raw, np.uint8).reshape(shape)


def _chosen_set(data: dict) -> tuple[dict, np.ndarray] | Markup:
    """The set shown first and its weights, or the note that says why there is nothing to draw."""
    sets = [s for s in data.get("sets") or [] if isinstance(s, dict)]
    if not sets:
        return note("no attention to show")
    index = data.get("set") if isinstance(data.get("set"), int) else 0
    chosen = sets[max(0, min(len(sets) - 1, index))]
    weights = unpack(chosen)
    if weights is None:
        return note("the attention weights do not match their shape")
    return chosen, weights


def _set_note(s: dict) -> str:
    return str(s.get("label") or s.get("name") or "attention")


def _token_list(s: dict, key: str, n: int) -> list[dict]:
    tokens = [t if isinstance(t, dict) else {} for t in s.get(key) or []]
    return (tokens + [{"text": str(i)} for i in range(len(tokens), n)])[:n]


def _short(text: Any, limit: int = 24) -> str:
    shown = display_text(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "\u2026"


# ------------------------------------------------------------------ head view
def _lines_svg(w: np.ndarray, heads: list[int], queries: list[dict], keys: list[dict]) -> tuple[Markup, int, int]:
    """The head view's picture: query tokens left, key tokens right, one line per (head, query, key)
    of weight >= the threshold (raised so at most ``MAX_LINES`` are drawn). w: (heads, Q, K) bytes."""
    row, mid = 20, 190
    left_w = 12 + 7 * max([len(_short(t.get("text", ""))) for t in queries] + [4])
    right_w = 12 + 7 * max([len(_short(t.get("text", ""))) for t in keys] + [4])
    height = row * max(len(queries), len(keys), 1)
    picked = w[heads]
    flat = picked.ravel()
    strong = np.flatnonzero(flat >= max(round(MIN_WEIGHT * 255), 1))
    count = len(strong)
    if count > MAX_LINES:  # the strongest lines, drawn in (head, query, key) order
        strong = np.sort(strong[np.argsort(-flat[strong], kind="stable")[:MAX_LINES]])
    fade = max(0.35, 1 / math.sqrt(len(heads))) if len(heads) > 1 else 1.0
    body = []
    for t, tok in enumerate(queries):
        body.append(f'<text x="{left_w - 6}" y="{t * row + 14}" text-anchor="end" font-size="12" fill="{MUTED}" '
                    f'xml:space="preserve">{escape(_short(tok.get("text", "")))}</text>')
    for t, tok in enumerate(keys):
        body.append(f'<text x="{left_w + mid + 6}" y="{t * row + 14}" font-size="12" fill="{MUTED}" '
                    f'xml:space="preserve">{escape(_short(tok.get("text", "")))}</text>')
    i_head, qs, ks = np.unravel_index(strong, picked.shape)
    for i, h in enumerate(heads):  # one group per head, one short path per line
        lines = [f'<path d="M{left_w} {(q + 0.5) * row:g}L{left_w + mid} {(k + 0.5) * row:g}" '
                 f'stroke-opacity="{flat[j] / 255 * fade:.2f}" stroke-width="{0.8 + 2.2 * flat[j] / 255:.1f}"/>'
                 for j, q, k in zip(strong[i_head == i], qs[i_head == i], ks[i_head == i])]
        if lines:
            body.append(f'<g stroke="{rgb(head_rgb(h))}">' + "".join(lines) + "</g>")
    alt = "attention lines from queries (left) to keys (right)"
    picture = svg_image(Markup("".join(body)), left_w + mid + right_w, height, alt, "ecco-s-att-lines")
    return picture, len(strong), count


def _strongest_keys(w: np.ndarray, queries: list[dict], keys: list[dict]) -> Markup:
    """Per query, the three keys it attends to most (weights averaged over the heads shown)."""
    mean = w.astype(np.float64).mean(axis=0) / 255
    rows = []
    for q, tok in enumerate(queries):
        order = np.argsort(-mean[q], kind="stable")[:3]
        rows.append([chip(tok.get("text", ""))] + [[chip(keys[k].get("text", "")), f" {mean[q, k]:.3f}"] for k in order])
    width = max((len(r) for r in rows), default=1)
    return table(("query",) + tuple(f"key #{i}" for i in range(1, width)), [r + [""] * (width - len(r)) for r in rows],
                 "ecco-s-att-top", numeric_from=width)


def render_attention_head(data: dict) -> Markup:
    """One layer's attention: lines between query and key tokens, one colour per head, and the
    strongest keys of each query (mean over the heads shown)."""
    found = _chosen_set(data)
    if isinstance(found, Markup):
        return found
    s, weights = found
    n_layers, n_heads, n_q, n_k = weights.shape
    layers = s.get("layers") if isinstance(s.get("layers"), list) else list(range(n_layers))
    layer = data.get("layer")
    li = layers.index(layer) if layer in layers else max(0, min(n_layers - 1, layer if isinstance(layer, int) else 0))
    wanted = data.get("heads")
    heads = [h for h in range(n_heads) if not isinstance(wanted, list) or h in wanted]
    if not heads or not n_layers or not n_q or not n_k:
        return note("nothing to show")
    queries, keys = _token_list(s, "queries", n_q)[:MAX_TOKENS], _token_list(s, "keys", n_k)[:MAX_TOKENS]
    w = weights[li, :, : len(queries), : len(keys)]
    picture, drawn, count = _lines_svg(w, heads, queries, keys)
    swatches = [el("span", {"style": css(display="inline-block", margin="0 8px 0 0")}, [
        el("span", {"style": css(display="inline-block", width="10px", height="10px", margin="0 3px 0 0",
                                 background_color=rgb(head_rgb(h)))}), f"head {h}"]) for h in heads]
    layer_name = layers[li] if li < len(layers) else li
    return Markup("").join(p for p in (
        note(f"{_set_note(s)} \u00b7 layer {layer_name} \u00b7 {len(heads)} of {n_heads} heads \u00b7 "
             "from (query, left) to (key, right)"),
        el("div", {"style": css(overflow_x="auto", max_width="100%")}, picture),
        capped(len(queries), n_q, "queries"), capped(len(keys), n_k, "keys"),
        note(f"drawn: the {drawn} strongest of {count} lines") if drawn < count else None,
        legend(swatches), note("strongest keys of each query (weight averaged over the heads shown):"),
        _strongest_keys(w[heads], queries, keys),
    ) if p)


# ------------------------------------------------------------------ model view
def _tile(m: np.ndarray, size: int) -> np.ndarray:
    """A (Q, K) byte matrix as at most size x size pixels: repeated when small, max-pooled when large."""
    q, k = m.shape
    if max(q, k) <= size:
        f = max(1, size // max(q, k))
        return np.repeat(np.repeat(m, f, axis=0), f, axis=1)
    rows, cols = min(q, size), min(k, size)
    m = np.maximum.reduceat(m, (np.arange(rows) * q) // rows, axis=0)
    return np.maximum.reduceat(m, (np.arange(cols) * k) // cols, axis=1)


def _strip(weights: np.ndarray, layer: int, size: int) -> np.ndarray:
    """RGBA pixels of one layer: its heads side by side, head colour with opacity = weight."""
    tiles = [_tile(weights[layer, h], size) for h in range(weights.shape[1])]
    th, tw = tiles[0].shape
    out = np.zeros((th, len(tiles) * (tw + GAP) - GAP, 4), np.uint8)
    for h, t in enumerate(tiles):
        x = h * (tw + GAP)
        out[:, x: x + tw, :3] = head_rgb(h)
        out[:, x: x + tw, 3] = t
    return out


def render_attention_model(data: dict) -> Markup:
    """Every layer x head as a small heat map (rows = queries, columns = keys, opacity = weight)."""
    found = _chosen_set(data)
    if isinstance(found, Markup):
        return found
    s, weights = found
    n_layers, n_heads, n_q, n_k = weights.shape
    if not all(weights.shape):
        return note("nothing to show")
    size = TILE
    while size > MIN_TILE and n_layers * n_heads * size * size > PIXEL_BUDGET:
        size -= 4
    shown = max(1, min(n_layers, PIXEL_BUDGET // (n_heads * size * size)))
    layers = s.get("layers") if isinstance(s.get("layers"), list) else []
    rows = []
    for li in range(shown):
        name = layers[li] if li < len(layers) else li
        picture = png_image(_strip(weights, li, size), f"layer {name}: heads 0 to {n_heads - 1}", "ecco-s-att-layer")
        rows.append((f"layer {name}", (picture, css(text_align="left"), None)))
    return Markup("").join((
        note(f"{_set_note(s)} \u00b7 {n_q} queries x {n_k} keys \u00b7 heads 0 to {n_heads - 1} from left to right; "
             "in each map rows are queries, columns keys, opacity = weight"),
        table(("", "heads"), rows, "ecco-s-att-model"), capped(shown, n_layers, "layers"),
    ))


# ------------------------------------------------------------------ neuron view
def _scores(data: dict, selected: int, n_keys: int) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """(q·k, bias, score) of the selected query against every key; a masked key scores None."""
    query = data.get("query")[selected] if isinstance(data.get("query"), list) and selected < len(data["query"]) else []
    q = np.array([finite(v) or 0.0 for v in query], dtype=np.float64)
    scale = finite(data.get("scale"))
    scale = 1.0 if scale is None else scale
    bias_rows = data.get("bias") if isinstance(data.get("bias"), list) else None
    dots, biases, scores = [], [], []
    for j in range(n_keys):
        key = data.get("key")[j] if isinstance(data.get("key"), list) and j < len(data["key"]) else []
        kv = np.array([finite(v) or 0.0 for v in key], dtype=np.float64)
        d = min(len(q), len(kv))
        dot = float(q[:d] @ kv[:d])
        bias = 0.0 if bias_rows is None else at(bias_rows, selected, j)
        dots.append(dot)
        biases.append(bias)
        scores.append(None if bias is None else dot * scale + bias)
    return dots, biases, scores


def _softmax(scores: list[float | None]) -> list[float]:
    known = [s for s in scores if s is not None]
    if not known:
        return [0.0] * len(scores)
    top = max(known)
    exp = [0.0 if s is None else math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


def render_attention_neuron(data: dict) -> Markup:
    """How one head's weights arise for the selected query: q·k, score and softmax per key, next
    to the model's own weights."""
    queries = [t if isinstance(t, dict) else {} for t in data.get("queries") or []]
    keys = [t if isinstance(t, dict) else {} for t in data.get("keys") or []]
    if not queries or not keys:
        return note("nothing to show")
    selected = data.get("selected") if isinstance(data.get("selected"), int) else len(queries) - 1
    selected = max(0, min(len(queries) - 1, selected))
    dots, biases, scores = _scores(data, selected, len(keys))
    show_bias = isinstance(data.get("bias"), list) and any(b for b in biases)
    weights = _softmax(scores)
    scale = finite(data.get("scale"))
    name = " \u00b7 ".join(f"{k} {data[k]}" for k in ("layer", "head") if data.get(k) is not None)
    formula = f"score = q\u00b7k \u00d7 {fmt(1.0 if scale is None else scale)}" + (" + bias" if show_bias else "") + \
        ", weight = softmax(score)"
    picks = [chip(t.get("text", ""), None, f"position {t.get('position')}",
                  css(outline=OUTLINE) if i == selected else "") for i, t in enumerate(queries)]
    rows = []
    for j, tok in enumerate(keys[:MAX_TOKENS]):
        model = at(data.get("weights"), selected, j)
        row = [chip(tok.get("text", ""), None, f"position {tok.get('position')}"), fmt(dots[j])]
        if show_bias:
            row.append(fmt(biases[j]) if biases[j] is not None else "\u2212\u221e")
        row += [fmt(scores[j]) if scores[j] is not None else "\u2212\u221e",
                ([bar(weights[j], tint(BLUE, 1), "80px"), f" {pct(weights[j], 1)}"], css(white_space="nowrap"), None),
                pct(model, 1)]
        rows.append(row)
    head = ("key", "q\u00b7k") + (("bias",) if show_bias else ()) + ("score", "softmax", "model")
    return Markup("").join(p for p in (
        note(" \u00b7 ".join(s for s in (name, str(data.get("set") or ""), formula) if s)),
        tokens_line([("query: ", False)] + [(p, True) for p in picks]),
        note(f"selected query: position {queries[selected].get('position')} (outlined); the interactive view lets you pick "
             "another and shows the q and k vectors"),
        table(head, rows, "ecco-s-nv"), capped(len(rows), len(keys), "keys"),
    ) if p)
