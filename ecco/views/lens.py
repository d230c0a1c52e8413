"""The logit-lens views of a record: layer predictions, rankings, rankings_watch and
trajectories, as views, JSON data or matplotlib figures (see :mod:`ecco.lens` for the maths)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from ..access import block_hidden, check_layer, chosen_ids, lens_reader, lens_site, lens_sites
from ..checks import as_int, is_int
from ..lens import lens_stats, lens_topk, watch_ids
from ..record import Record
from ..render import View
from ..render.plots import rankings_figure, trajectory_figure
from ..tuned.evaluate import LensEvaluation
from .tokens import title


def _layers(output: Record) -> list[int]:
    return list(range(output.n_layers[output.kind.main_stack]))


def layer_predictions(
    output: Record, position: int = 1, layer: int | None = None, topk: int = 10, printJson: bool = False,
    sequence: int = 0, lens: object = "logit",
) -> View | list:
    """See :meth:`ecco.output.OutputSeq.layer_predictions`."""
    reader = lens_reader(output, lens)
    head = reader.head
    layer = check_layer(output, layer)
    vocab = head.vocab
    topk = as_int(topk, "topk", 1, vocab, f"topk must be between 1 and the vocabulary size ({vocab}), got {topk!r}.")
    site = lens_site(output, position, sequence)
    position = site.position
    hidden = block_hidden(output, sequence, [site.column])[:, 0]
    probs, ids = lens_topk(head, hidden, topk, reader.translate)
    chosen = chosen_ids(output, sequence, [site])
    stats = lens_stats(head, hidden[:, None], chosen, translate=reader.translate)
    layers = _layers(output) if layer is None else [layer]
    rows = [
        [
            {"token": output.token_text(i), "token_id": int(i), "prob": float(p), "ranking": rank + 1, "layer": n}
            for rank, (p, i) in enumerate(zip(probs[n].tolist(), ids[n].tolist()))
        ]
        for n in layers
    ]
    if printJson:
        return rows
    seq = output.sequences[sequence]
    data = {
        "position": position,
        "context": [{"text": t, "position": i} for i, t in enumerate(seq.tokens[:position])],
        "actual": {"text": output.token_text(int(chosen[0])), "id": int(chosen[0])},
        "layers": [
            {"layer": n, "candidates": [
                {"text": c["token"], "id": c["token_id"], "prob": c["prob"], "rank": c["ranking"]} for c in row
            ]}
            for n, row in zip(layers, rows)
        ],
        "actual_by_layer": [
            {"layer": n, "prob": float(stats.probs[n, 0]), "rank": int(stats.ranks[n, 0])} for n in layers
        ],
        "title": title(output, reader.heading(f"Predictions for position {position} at each layer"), sequence),
    }
    return View("layer_predictions", data)


def _rank_view(
    output: Record, ranks: torch.Tensor, probs: torch.Tensor, columns: list[dict], caption: str, heading: str
) -> View:
    layers = _layers(output)
    return View("rankings", {
        "max_rank": output.lens_head().vocab,
        "layers": layers,
        "columns": columns,
        "ranks": ranks.tolist(),
        "probs": probs.tolist(),
        "caption": caption,
        "title": heading,
    })


def rankings(output: Record, printJson: bool = False, plot: bool = False, sequence: int = 0, lens: object = "logit"):
    """See :meth:`ecco.output.OutputSeq.rankings`."""
    reader = lens_reader(output, lens)
    sites = lens_sites(output, sequence)
    ids = chosen_ids(output, sequence, sites)
    stats = lens_stats(reader.head, block_hidden(output, sequence, [s.column for s in sites]), ids, translate=reader.translate)
    texts = [output.token_text(int(i)) for i in ids]
    if printJson:
        return {"output_tokens": texts, "rankings": stats.ranks.numpy()}
    if plot:
        return rankings_figure(stats.ranks.numpy(), _layers(output), texts, reader.heading("Rank of each token at every layer"))
    columns = [{"text": t, "id": int(i), "position": s.position} for t, i, s in zip(texts, ids, sites)]
    heading = title(output, reader.heading("Rank of each output token per layer"), sequence)
    return _rank_view(output, stats.ranks, stats.probs, columns, "Rank of each output token at every layer", heading)


def rankings_watch(
    output: Record,
    watch: list[int | str] | None = None,
    position: int = -1,
    printJson: bool = False,
    plot: bool = False,
    sequence: int = 0,
    lens: object = "logit",
):
    """See :meth:`ecco.output.OutputSeq.rankings_watch`."""
    reader = lens_reader(output, lens)
    head = reader.head
    seq = output.check_sequence(sequence)
    position = len(seq) - 1 if is_int(position) and position == -1 else position
    site = lens_site(output, position, sequence)
    position = site.position
    vocab = head.vocab

    def split(text: str) -> list[int]:
        return output.link.tokenizer(text, add_special_tokens=False)["input_ids"]

    ids = watch_ids(split, [] if watch is None else list(watch), vocab)
    hidden = block_hidden(output, sequence, [site.column])
    stats = lens_stats(head, hidden, torch.tensor([ids]), translate=reader.translate)
    ranks, probs = stats.ranks[:, 0], stats.probs[:, 0]
    texts = [output.token_text(i) for i in ids]
    if printJson:
        return {"output_tokens": texts, "rankings": ranks.numpy()}
    caption = f"Candidates for position {position} after {''.join(seq.tokens[max(0, position - 8):position])!r}"
    if plot:
        return rankings_figure(ranks.numpy(), _layers(output), texts, caption)
    columns = [{"text": t, "id": i, "position": position} for t, i in zip(texts, ids)]
    heading = title(output, reader.heading("Rank of watched tokens per layer"), sequence)
    return _rank_view(output, ranks, probs, columns, caption, heading)


def lens_trajectories(output: Record, sequence: int = 0, lens: object = "logit") -> dict:
    """See :meth:`ecco.output.OutputSeq.lens_trajectories`."""
    reader = lens_reader(output, lens)
    sites = lens_sites(output, sequence)
    ids = chosen_ids(output, sequence, sites)
    stats = lens_stats(reader.head, block_hidden(output, sequence, [s.column for s in sites]), ids,
                       translate=reader.translate)
    return {
        "lens": reader.name,
        "layers": _layers(output),
        "positions": [s.position for s in sites],
        "tokens": [output.token_text(int(i)) for i in ids],
        "entropy": stats.entropy.numpy(),
        "kl": stats.kl.numpy(),
        "js": stats.js.numpy(),
        "tv": stats.tv.numpy(),
        "final_top1_prob": stats.final_top1.numpy(),
        "prob": stats.probs.numpy(),
        "rank": stats.ranks.numpy(),
    }


# (key in lens_trajectories, label, unit) of each series the trajectory view draws
_SERIES = (
    ("entropy", "entropy", "nats"),
    ("kl", "KL to final", "nats"),
    ("js", "JS divergence to final", "nats"),
    ("tv", "total variation to final", ""),
    ("final_top1_prob", "p(final top-1)", ""),
    ("prob", "p(chosen token)", ""),
)


def trajectories(output: Record, plot: bool = False, sequence: int = 0, lens: object = "logit"):
    """See :meth:`ecco.output.OutputSeq.trajectories`."""
    t = lens_trajectories(output, sequence, lens)
    if plot:
        series = {f"{label} ({unit})" if unit else label: t[key] for key, label, unit in _SERIES}
        return trajectory_figure(t["layers"], series, t["tokens"])
    return View("trajectory", {
        "layers": t["layers"],
        "tokens": [{"text": text, "position": p} for text, p in zip(t["tokens"], t["positions"])],
        "series": [{"key": key, "label": label, "unit": unit, "values": t[key].T.tolist()} for key, label, unit in _SERIES],
        "title": title(output, f"{t['lens'].replace(' ', '-')} trajectories", sequence),
    })


_PARTS = {
    "held_out": "held-out documents of the lens's training source",
    "all": "text the lens was not trained on",
    "training": "the lens's own training text (it was trained with held_out=0)",
}


def lens_evaluation_view(evaluation: LensEvaluation, printJson: bool = False, plot: bool = False):
    """Logit lens vs trained lens per layer (see :func:`ecco.evaluate_lens`): the trajectory view
    with one line per lens, KL to the final distribution and cross-entropy against the next token."""
    if printJson:
        return asdict(evaluation)
    series = {
        "KL to final (nats)": np.stack([evaluation.logit_kl, evaluation.tuned_kl], axis=1),
        "cross-entropy vs next token (nats)": np.stack([evaluation.logit_ce, evaluation.tuned_ce], axis=1),
    }
    names = ["logit lens", "tuned lens"]
    if plot:
        return trajectory_figure(evaluation.layers, series, names)
    where = _PARTS.get(evaluation.part, evaluation.part)
    return View("trajectory", {
        "layers": evaluation.layers,
        "tokens": [{"text": name, "position": None} for name in names],
        "series": [
            {"key": key, "label": label, "unit": "nats", "values": values.T.tolist()}
            for key, (label, values) in zip(("kl", "ce"), series.items())
        ],
        "title": f"{evaluation.model_name or 'model'}: logit lens vs tuned lens on {evaluation.n_tokens:,} tokens of {where}",
    })
