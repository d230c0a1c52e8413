"""``lm.generate(..., interventions=[...])`` and ``lm.steering_vector``: interventions checked
against the model, their references resolved (texts run through the model, a corpus run's
per-neuron means, arrays), the clean and the intervened generation, and what changed between
them (:class:`~ecco.causal.diff.InterventionDiff`).

A reference text's activations are read where the intervention acts: a causal model reads the
text; an encoder-decoder model's encoder reads it, and its decoder reads it teacher-forced after
the decoder start token (with the text as the encoder's input too). Every position counts.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from ..causal import sites
from ..causal.diff import InterventionDiff
from ..causal.interventions import Ablate, Prepared, Site, applied, check_reference, resolve_site
from ..causal.steering import REDUCE, Steer, contrast
from ..checks import as_int
from ..output import OutputSeq
from . import core
from .core import Core
from .inputs import Prompts

Intervention = Ablate | Steer


def _items(interventions: object) -> list[Intervention]:
    """One intervention or a sequence of them, each an :class:`Ablate` or a :class:`Steer`."""
    if isinstance(interventions, (Ablate, Steer)):
        return [interventions]
    if isinstance(interventions, (str, bytes)) or not isinstance(interventions, Sequence):
        raise ValueError(f"interventions must be a list of ecco.Ablate / ecco.Steer, got {interventions!r}.")
    bad = [item for item in interventions if not isinstance(item, (Ablate, Steer))]
    if bad:
        raise ValueError(f"interventions must be ecco.Ablate or ecco.Steer, got {bad[0]!r}.")
    return list(interventions)


def prepare(lm: Core, interventions: object, beam_size: int = 1) -> list[Prepared]:
    """Every intervention checked against the model (before any reference runs it), then its
    reference resolved and checked."""
    items = _items(interventions)
    found = [item.resolve(lm.spec) for item in items]
    if beam_size > 1 and any(item.needs_reference == "resample" for item in items):
        raise ValueError("Resample-ablation draws reference values per position of a sequence, and beam search "
                         "reorders its beams and captures them in a final pass: use beam_size=1 (greedy or sampling) "
                         "with how='resample', or how='zero' / 'mean' with beams.")
    return [check_reference(Prepared(item, site, _reference(lm, item, site))) for item, site in zip(items, found)]


def _reference(lm: Core, item: Intervention, site: Site) -> torch.Tensor | None:
    """The mean vector (``'mean'``) or the (rows, features) pool (``'resample'``) of ``item``'s reference."""
    how = item.needs_reference
    if how is None:
        return None
    reference = item.reference
    if isinstance(reference, torch.Tensor):
        reference = reference.detach().cpu()
        reference = (reference.double() if reference.is_floating_point() else reference).numpy()
    if isinstance(reference, np.ndarray) and np.issubdtype(reference.dtype, np.floating):  # integer arrays are token ids
        return torch.as_tensor(reference, dtype=torch.float64)
    if isinstance(reference, (list, tuple)) and reference and all(isinstance(v, float) for v in reference):
        raise ValueError("A precomputed reference is a NumPy array or a torch tensor; a list of numbers is read as "
                         "token ids. Pass np.array(values).")
    corpus = _corpus_mean(lm, reference, site, how)
    if corpus is not None:
        return corpus
    try:
        prompts = lm.inputs.encode(reference)
    except ValueError as error:
        raise ValueError(f"The reference of {item.describe()!r}: {error} (or a corpus run, or an array).") from None
    pool = torch.cat(site_activations(lm, site, prompts))
    return pool.mean(0) if how == "mean" else pool


def _corpus_mean(lm: Core, reference: object, site: Site, how: str) -> torch.Tensor | None:
    """A corpus run's stored per-neuron means of the site's layer (None: not a corpus run)."""
    if isinstance(reference, (str, list, tuple)):
        return None
    try:
        from ..corpus.reader import Corpus  # pyarrow loads only for a corpus run
    except ImportError:
        return None
    if not isinstance(reference, Corpus):
        return None
    if how != "mean":
        raise ValueError("A corpus run's summaries keep per-neuron means, not positions to resample: pass "
                         f"reference=run.activations({site.layer}) (a (tokens, neurons) array) or texts.")
    if site.component != "neurons":
        raise ValueError("A corpus run stores FFN neuron activations, not attention heads: give texts as the reference "
                         "of a head ablation.")
    if reference.settings.get("model") != lm.model_name:
        raise ValueError(f"This corpus run is of {reference.settings.get('model')!r}, not of {lm.model_name!r}.")
    column = f"ffn.{site.stack}.{site.layer}"
    summaries = reference.summary.neurons
    if column not in summaries:
        raise ValueError(f"This corpus run has no summary of {column}; it summarised {sorted(summaries)}. Run the "
                         "corpus with that layer (and summaries=True), or give texts.")
    return torch.as_tensor(np.asarray(summaries[column].mean, dtype=np.float64))


def site_activations(lm: Core, site: Site, prompts: list[list[int]]) -> list[torch.Tensor]:
    """The site's values over each prompt's tokens, (positions, features) float64 on the CPU (see
    the module docstring for what an encoder-decoder model reads)."""
    seen: list[torch.Tensor] = []
    device = lm.runner.device
    with lm.runner.session(), sites.Hooks() as hooks:
        hooks.add(sites.keep_site(site.module, site.component, seen, batch=1))
        for ids in prompts:
            tokens = torch.tensor([ids], device=device)
            if not lm.kind.encoder_decoder:
                lm.runner.forward(input_ids=tokens, use_cache=False)
            elif site.stack == "encoder":
                lm.runner.encode(input_ids=tokens)
            else:
                start = torch.tensor([[core.decoder_start_id(lm)] + ids], device=device)
                lm.runner.forward(input_ids=tokens, decoder_input_ids=start, use_cache=False)
    return [x[0].double().cpu() for x in seen]


def steering_vector(lm: Core, positive: Prompts, negative: Prompts, layer: int, reduce: str = "mean",
                    stack: str | None = None) -> np.ndarray:
    """``lm.steering_vector``: the residual after block ``layer`` over ``positive`` minus over
    ``negative`` (each a prompt or a list; see :func:`ecco.causal.steering.contrast`)."""
    if reduce not in REDUCE:
        raise ValueError(f"Unknown reduce={reduce!r}: use one of " + "; ".join(f"'{k}' ({v})" for k, v in REDUCE.items()))
    site = resolve_site(lm.spec, stack, as_int(layer, "layer", 0), "residual")
    sides = [site_activations(lm, site, lm.inputs.encode(prompts)) for prompts in (positive, negative)]
    return contrast(*sides, reduce=reduce)


def _rng(lm: Core) -> Callable[[], None]:
    """Puts torch's random state (CPU, and the model's GPU) back as it is now."""
    cpu = torch.random.get_rng_state()
    device = lm.runner.device
    gpu = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore() -> None:
        torch.random.set_rng_state(cpu)
        if gpu is not None:
            torch.cuda.set_rng_state(gpu, device)

    return restore


def generate(lm: Core, prepared: list[Prepared], prompts: list[list[int]], run: Callable[[], OutputSeq]) -> OutputSeq:
    """``run()`` (one captured generation) clean, then again from the same random state with the
    interventions hooked in; the intervened output, with ``clean`` and ``intervention_diffs``."""
    restore = _rng(lm)
    clean = run()
    restore()
    with applied(prepared, lm.inputs.pad(prompts, left=not lm.kind.encoder_decoder).pads):
        intervened = run()
    named = [replace(p.intervention, stack=p.site.stack) if lm.kind.encoder_decoder else p.intervention for p in prepared]
    intervened.clean = clean
    intervened.intervention_diffs = diffs(lm, [item.describe() for item in named], clean, intervened)
    return intervened


def diffs(lm: Core, descriptions: list[str], clean: OutputSeq, intervened: OutputSeq) -> list[InterventionDiff]:
    """One :class:`InterventionDiff` per sequence; the clean model's probabilities of the
    intervened tokens come from one teacher-forced pass over the intervened sequences."""
    forced = _clean_probabilities(lm, intervened)
    found = []
    for i, (c, v) in enumerate(zip(clean.sequences, intervened.sequences)):
        start, stop = clean.layout(i).first_generated, intervened.layout(i).first_generated
        found.append(InterventionDiff(
            descriptions=list(descriptions),
            prompt_ids=c.token_ids[: c.n_input_tokens],
            clean_ids=c.token_ids[start:],
            clean_probs=clean.token_probs[i, : len(c) - start].double().numpy(),
            intervened_ids=v.token_ids[stop:],
            intervened_probs=intervened.token_probs[i, : len(v) - stop].double().numpy(),
            intervened_clean_probs=forced[i],
        ))
    return found


def _clean_probabilities(lm: Core, output: OutputSeq) -> list[np.ndarray]:
    """The model's own (no interventions) probability of each generated token of ``output``
    after the same prefix, float64."""
    seqs = output.sequences
    with lm.runner.session():
        if lm.kind.encoder_decoder:
            encoder = lm.inputs.pad([s.token_ids[: s.n_input_tokens] for s in seqs], left=False)
            decoder = lm.inputs.pad([s.token_ids[s.n_input_tokens :] for s in seqs], left=False)
            logits = lm.runner.forward(input_ids=encoder.ids, attention_mask=encoder.mask, decoder_input_ids=decoder.ids,
                                       use_cache=False).logits
            first = [0] * len(seqs)  # decoder column k predicts generated token k
        else:
            batch = lm.inputs.pad([s.token_ids for s in seqs], left=True)
            positions = (batch.mask.cumsum(-1) - 1).clamp(min=0)
            logits = lm.runner.forward(input_ids=batch.ids, attention_mask=batch.mask, position_ids=positions,
                                       use_cache=False).logits
            first = [pad + s.n_input_tokens - 1 for pad, s in zip(batch.pads, seqs)]
    found = []
    for row, (s, column) in enumerate(zip(seqs, first)):
        ids = s.token_ids[output.layout(row).first_generated :]
        log_probs = torch.log_softmax(logits[row, column : column + len(ids)].double(), dim=-1)
        found.append(log_probs.gather(-1, torch.tensor(ids, device=log_probs.device)[:, None])[:, 0].exp().cpu().numpy())
    return found
