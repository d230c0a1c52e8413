"""The logit-lens views of a record: layer predictions, rankings, rankings_watch and
trajectories, as views, JSON data or matplotlib figures (see :mod:`ecco.lens` for the maths)."""
from __future__ import annotations

import torch

from ..access import block_hidden, check_layer, chosen_ids, lens_site, lens_sites
from ..checks import as_int, is_int
from ..lens import lens_stats, lens_topk, watch_ids
from ..record import Record
from ..render import View
from ..render.plots import rankings_figure, trajectory_figure
from .tokens import title


def _layers(output: Record) -> list[int]:
    return list(range(output.n_layers[output.kind.main_stack]))


def layer_predictions(
    output: Record, position: int = 1, layer: int | None = None, topk: int = 10, printJson: bool = False,
    sequence: int = 0,
) -> View | list:
    """See :meth:`ecco.output.OutputSeq.layer_predictions`."""
    head = output.lens_head()
    layer = check_layer(output, layer)
    vocab = head.vocab
    topk = as_int(topk, "topk", 1, vocab, f"topk must be between 1 and the vocabulary size ({vocab}), got {topk!r}.")
    site = lens_site(output, position, sequence)
    position = site.position
    hidden = block_hidden(output, sequence, [site.column])[:, 0]
    probs, ids = lens_topk(head, hidden, topk)
    chosen = chosen_ids(output, sequence, [site])
    stats = lens_stats(head, hidden[:, None], chosen)
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
        "title": title(output, f"Predictions for position {position} at each layer", sequence),
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


def rankings(output: Record, printJson: bool = False, plot: bool = False, sequence: int = 0):
    """See :meth:`ecco.output.OutputSeq.rankings`."""
    head = output.lens_head()
    sites = lens_sites(output, sequence)
    ids = chosen_ids(output, sequence, sites)
    stats = lens_stats(head, block_hidden(output, sequence, [s.column for s in sites]), ids)
    texts = [output.token_text(int(i)) for i in ids]
    if printJson:
        return {"output_tokens": texts, "rankings": stats.ranks.numpy()}
    if plot:
        return rankings_figure(stats.ranks.numpy(), _layers(output), texts, "Rank of each token at every layer")
    columns = [{"text": t, "id": int(i), "position": s.position} for t, i, s in zip(texts, ids, sites)]
    heading = title(output, "Rank of each output token per layer", sequence)
    return _rank_view(output, stats.ranks, stats.probs, columns, "Rank of each output token at every layer", heading)


def rankings_watch(
    output: Record,
    watch: list[int | str] | None = None,
    position: int = -1,
    printJson: bool = False,
    plot: bool = False,
    sequence: int = 0,
):
    """See :meth:`ecco.output.OutputSeq.rankings_watch`."""
    head = output.lens_head()
    seq = output.check_sequence(sequence)
    position = len(seq) - 1 if is_int(position) and position == -1 else position
    site = lens_site(output, position, sequence)
    position = site.position
    vocab = head.vocab

    def split(text: str) -> list[int]:
        return output.link.tokenizer(text, add_special_tokens=False)["input_ids"]

    ids = watch_ids(split, [] if watch is None else list(watch), vocab)
    hidden = block_hidden(output, sequence, [site.column])
    stats = lens_stats(head, hidden, torch.tensor([ids]))
    ranks, probs = stats.ranks[:, 0], stats.probs[:, 0]
    texts = [output.token_text(i) for i in ids]
    if printJson:
        return {"output_tokens": texts, "rankings": ranks.numpy()}
    caption = f"Candidates for position {position} after {''.join(seq.tokens[max(0, position - 8):position])!r}"
    if plot:
        return rankings_figure(ranks.numpy(), _layers(output), texts, caption)
    columns = [{"text": t, "id": i, "position": position} for t, i in zip(texts, ids)]
    return _rank_view(output, ranks, probs, columns, caption, title(output, "Rank of watched tokens per layer", sequence))


def lens_trajectories(output: Record, sequence: int = 0) -> dict:
    """See :meth:`ecco.output.OutputSeq.lens_trajectories`."""
    head = output.lens_head()
    sites = lens_sites(output, sequence)
    ids = chosen_ids(output, sequence, sites)
    stats = lens_stats(head, block_hidden(output, sequence, [s.column for s in sites]), ids)
    return {
        "layers": _layers(output),
        "positions": [s.position for s in sites],
        "tokens": [output.token_text(int(i)) for i in ids],
        "entropy": stats.entropy.numpy(),
        "kl": stats.kl.numpy(),
        "prob": stats.probs.numpy(),
        "rank": stats.ranks.numpy(),
    }


def trajectories(output: Record, plot: bool = False, sequence: int = 0):
    """See :meth:`ecco.output.OutputSeq.trajectories`."""
    t = lens_trajectories(output, sequence)
    series = {"entropy (nats)": t["entropy"], "KL to final (nats)": t["kl"], "p(chosen token)": t["prob"]}
    if plot:
        return trajectory_figure(t["layers"], series, t["tokens"])
    keys = {"entropy (nats)": ("entropy", "nats"), "KL to final (nats)": ("kl", "nats"), "p(chosen token)": ("prob", "")}
    return View("trajectory", {
        "layers": t["layers"],
        "tokens": [{"text": text, "position": p} for text, p in zip(t["tokens"], t["positions"])],
        "series": [
            {"key": keys[label][0], "label": label, "unit": keys[label][1], "values": values.T.tolist()}
            for label, values in series.items()
        ],
        "title": title(output, "Logit-lens trajectories", sequence),
    })
