"""Static rendering of direct logit attribution (``logit_attribution``): the total, one signed bar
per part (embeddings, then each layer's attention, cross-attention and MLP) with its number, and
each layer's heads and top neurons in a closed ``<details>`` block."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from .html import BLUE, MUTED, ORANGE, collapsed, css, el, finite, fmt, legend, rgb, signed_bar, table


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _numbers(value: Any) -> list[float | None]:
    return [finite(v) for v in value] if isinstance(value, list) else []


def logit_bars(data: dict) -> list[tuple[str, float | None, int | None]]:
    """(label, share, layer) of every bar, in the views' order: the embeddings, then per layer its
    attention, its cross-attention (encoder-decoder decoders) and its MLP."""
    rows: list[tuple[str, float | None, int | None]] = [("embeddings", finite(data.get("embeddings")), None)]
    for layer in _dicts(data.get("layers")):
        index = layer.get("layer")
        rows.append((f"L{index} attn", finite(layer.get("attention")), index))
        if finite(layer.get("cross_attention")) is not None:
            rows.append((f"L{index} cross", finite(layer.get("cross_attention")), index))
        rows.append((f"L{index} mlp", finite(layer.get("mlp")), index))
    return rows


def _value(v: float | None) -> tuple[str, str, None]:
    return fmt(v), css(color=rgb(BLUE if (v or 0) >= 0 else ORANGE), font_family="monospace"), None


def _layer(layer: dict) -> Markup:
    heads = [(f"head {h}", _value(v)) for h, v in enumerate(_numbers(layer.get("heads")))]
    parts = [table(["attention head", "share"], heads, "ecco-s-la-heads"),
             el("div", {"style": css(color=MUTED, font_size="12px")},
                f"output projection bias {fmt(finite(layer.get('attention_bias')))}")]
    if isinstance(layer.get("cross_heads"), list):
        cross = [(f"head {h}", _value(v)) for h, v in enumerate(_numbers(layer.get("cross_heads")))]
        parts.append(table(["cross-attention head", "share"], cross, "ecco-s-la-cross-heads"))
    for key, title in (("neurons_up", "top neurons up"), ("neurons_down", "top neurons down")):
        rows = [(f"neuron {n.get('neuron')}", fmt(finite(n.get("activation"))), _value(finite(n.get("value"))))
                for n in _dicts(layer.get(key))]
        parts.append(table([title, "activation", "share"], rows, "ecco-s-la-neurons"))
    parts.append(el("div", {"style": css(color=MUTED, font_size="12px")}, f"MLP bias {fmt(finite(layer.get('mlp_bias')))}"))
    return collapsed(f"Layer {layer.get('layer')}: heads and top neurons", parts)


def render_logit_attribution(data: dict) -> Markup:
    """The total, the bars with their numbers, and each layer's heads and neurons."""
    target = data.get("target") if isinstance(data.get("target"), dict) else {}
    foil = data.get("foil") if isinstance(data.get("foil"), dict) else None
    what = f"logit({str(target.get('text'))!r})" + (f" \u2212 logit({str(foil.get('text'))!r})" if foil else "")
    rows = logit_bars(data)
    extent = max([abs(v) for _, v, _ in rows if v is not None] + [1e-12])
    body = [(label, signed_bar(v, extent), _value(v)) for label, v, _ in rows]
    prompt = data.get("prompt") if isinstance(data.get("prompt"), list) else []
    return el("div", {"class": "ecco-s-la"}, [
        el("div", {"style": css(color=MUTED, font_size="12px")}, "prompt: " + "".join(str(t) for t in prompt)),
        el("div", {"class": "ecco-s-la-total", "style": css(font_weight="700", margin="0.3em 0")},
           f"{what} = {fmt(finite(data.get('logit')))} = parts + bias {fmt(finite(data.get('bias')))} "
           f"(the model's: {fmt(finite(data.get('model_logit')))})"),
        table(["part", "", "share"], body, "ecco-s-la-bars", numeric_from=2),
        [_layer(layer) for layer in _dicts(data.get("layers"))],
        legend("Each part read through the final norm with its scale frozen at this run; blue raises the logit, "
               "orange lowers it."),
    ])
