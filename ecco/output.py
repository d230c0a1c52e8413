"""OutputSeq: the record of one ecco call, with Ecco's view methods as one-line delegations.

The data and its checks live in :class:`ecco.record.Record`; every method here hands the
record to a function of :mod:`ecco.views` (or :mod:`ecco.io`), which asks the core modules
for the numbers. :func:`load` reads a saved output back.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import io
from .attribution.faithfulness import FaithfulnessResult
from .record import ModelLink, Record, SequenceMeta
from .record_faithfulness import record_faithfulness
from .render import View
from .views import attention as attention_views
from .views import attribution as attribution_views
from .views import interventions as intervention_views
from .views import lens as lens_views
from .views import neurons as neuron_views
from .views import tokens as token_views

if TYPE_CHECKING:
    from .tuned.lens import TunedLens

__all__ = ["ModelLink", "OutputSeq", "SequenceMeta", "load"]


@dataclass(repr=False)
class OutputSeq(Record):
    """Tokens and captures of one call (a prompt or a batch), with Ecco's views.

    The fields and array layouts are :class:`ecco.record.Record`'s.
    """

    # ------------------------------------------------------------ tokens view
    def tokens_view(self, sequence: int = 0) -> View:
        """The token sequence: prompt vs generated tokens; hover shows id and position."""
        return token_views.tokens_view(self, sequence)

    def _repr_html_(self) -> str:
        return token_views.html(self)

    def save_html(self, path: str | Path, sequence: int = 0) -> Path:
        """Write the token view of one sequence as a standalone HTML file."""
        return self.tokens_view(sequence).save_html(path)

    def save(self, path: str | Path) -> Path:
        """Save every array and the metadata to one safetensors file (see :mod:`ecco.io`)."""
        return io.save(self, path)

    # ---------------------------------------------------------- interventions
    def intervention_diff(self, sequence: int = 0, printJson: bool = False) -> View | dict:
        """What the interventions of ``lm.generate(..., interventions=[...])`` changed in sequence
        ``sequence``: the clean and the intervened continuation aligned, the changed tokens marked,
        and each intervened token's probability change (intervened model − clean model after the
        same prefix). ``printJson=True`` returns the view's data."""
        return intervention_views.intervention_diff(self, sequence, printJson)

    # ------------------------------------------------------------ attribution
    def primary_attributions(
        self,
        attr_method: str = "grad_x_input",
        style: str = "minimal",
        ignore_tokens: list[int | str] | None = None,
        printJson: bool = False,
        sequence: int = 0,
    ) -> View | dict:
        """Input saliency: hover or click an output token to see how much each earlier token
        contributed to it. ``style='detailed'`` adds values and bars; ``ignore_tokens``
        (positions or token texts) hides tokens from the display only; ``printJson=True``
        returns the data instead of the view."""
        return attribution_views.primary_attributions(self, attr_method, style, ignore_tokens, printJson, sequence)

    def saliency(self, attr_method: str = "grad_x_input", style: str = "minimal", **kwargs) -> View | dict:
        """Alias of :meth:`primary_attributions` (Ecco's name)."""
        return self.primary_attributions(attr_method=attr_method, style=style, **kwargs)

    def faithfulness(
        self, attr_method: str = "grad_x_input", sequence: int = 0, removal: str = "zero",
        levels: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5), steps: int | None = None, seeds: int = 5,
        seed: int = 0, printJson: bool = False,
    ) -> FaithfulnessResult | dict:
        """How faithful ``attr_method``'s attributions are to what the model does, per explained token
        (reruns the model): comprehensiveness / sufficiency at each removal level and their AOPC,
        Soft-NC / Soft-NS, deletion / insertion curves and their areas, each beside a
        random-attribution baseline (``seeds`` random orders). ``removal``: a removed token's
        embedding becomes zero (``'zero'``) or the pad / eos / unk token's (``'replace'``);
        positions never move; special tokens are never removed. See docs/attribution.md."""
        found = record_faithfulness(self, attr_method, sequence, removal, levels, steps, seeds, seed)
        return found.to_dict() if printJson else found

    def word_attributions(self, attr_method: str = "grad_x_input", sequence: int = 0, raw: bool = False) -> dict:
        """Attributions summed over the sub-word pieces of each source word.

        Returns ``{'words': [...], 'targets': [...], 'values': [array per target]}`` where each
        array has one score per word before the target."""
        return attribution_views.word_attributions(self, attr_method, sequence, raw)

    # ------------------------------------------------------------- logit lens
    def layer_predictions(
        self,
        position: int = 1,
        layer: int | None = None,
        topk: int = 10,
        printJson: bool = False,
        sequence: int = 0,
        lens: str | os.PathLike | TunedLens = "logit",
    ) -> View | list:
        """The top-k tokens each layer would predict at ``position`` (the logit lens, or a trained
        lens: ``lens=`` a :class:`~ecco.tuned.lens.TunedLens` or the path of a saved one).

        Ecco's position: tokens count from 0 and the first token has no prediction. One
        layer with ``layer=``; ``printJson=True`` returns, per layer, a list of
        ``{'token', 'prob', 'ranking', 'layer'}``."""
        return lens_views.layer_predictions(self, position, layer, topk, printJson, sequence, lens)

    def rankings(self, printJson: bool = False, plot: bool = False, sequence: int = 0,
                 lens: str | os.PathLike | TunedLens = "logit"):
        """Rank of each output token at every layer (1 = top): a heatmap, layers x tokens.

        ``plot=True`` returns a matplotlib figure; ``printJson=True`` Ecco's
        ``{'output_tokens', 'rankings'}`` with rankings of shape (layers, tokens). ``lens``: as
        in :meth:`layer_predictions`."""
        return lens_views.rankings(self, printJson, plot, sequence, lens)

    def rankings_watch(
        self,
        watch: list[int | str] | None = None,
        position: int = -1,
        printJson: bool = False,
        plot: bool = False,
        sequence: int = 0,
        lens: str | os.PathLike | TunedLens = "logit",
    ):
        """Ranks of several candidate tokens (ids or strings) at every layer for one position.

        A string of several tokens is ranked by its first piece, with a warning. ``position=-1``
        is the last token. ``lens``: as in :meth:`layer_predictions`."""
        return lens_views.rankings_watch(self, watch, position, printJson, plot, sequence, lens)

    def lens_trajectories(self, sequence: int = 0, lens: str | os.PathLike | TunedLens = "logit") -> dict:
        """Per layer (rows) and output token (columns), as numpy arrays: entropy of the lens
        distribution (``entropy``), its KL divergence (``kl``), Jensen-Shannon divergence (``js``,
        nats) and total variation (``tv``) to the final distribution, its probability of the final
        top-1 token (``final_top1_prob``), and the probability and rank of the chosen token
        (``prob``, ``rank``). ``lens``: as in :meth:`layer_predictions`."""
        return lens_views.lens_trajectories(self, sequence, lens)

    def trajectories(self, plot: bool = False, sequence: int = 0, lens: str | os.PathLike | TunedLens = "logit"):
        """View (or matplotlib figure) of :meth:`lens_trajectories`."""
        return lens_views.trajectories(self, plot, sequence, lens)

    # ------------------------------------------------------ neuron activations
    def run_nmf(
        self,
        n_components: int | str | None = None,
        from_layer: int | None = None,
        to_layer: int | None = None,
        nonneg: str | None = None,
        factors: object | None = None,
        **kwargs,
    ) -> neuron_views.FactorExplorer:
        """Ecco's NMF of the neuron activations (layers [from_layer, to_layer)); ``explore()``
        and ``plot()`` on the result. ``n_components``: 10 by default, or ``'auto'`` (the elbow of
        the reconstruction error); ``nonneg='split'`` keeps negative activations as separate
        features (default ``'clip'``); ``exclude='first'`` (or ``'special'``, token positions, or a
        list of these) leaves tokens out of the fit, e.g. the first token's massive activation
        (see docs/neurons.md).

        ``factors=``: NMF factors fitted over a corpus run (``run.fit_factors('nmf', ...)``, a
        ``CorpusFactors``) are applied instead of fitting new ones: this output's activations of
        exactly their layers and stack go through ``factors.transform`` (nothing is refitted), so
        every prompt is shown in the same factors. ``components`` are then the transform's output,
        ``loadings`` the factors' own. The output must capture those layers of the same model;
        ``n_components``, ``nonneg``, ``from_layer`` and ``to_layer`` may be left out (or must agree
        with the factors)."""
        return neuron_views.run_decomposition(self, "nmf", n_components, from_layer, to_layer, nonneg, factors=factors,
                                              **kwargs)

    def run_decomposition(
        self, method: str | None = None, n_components: int | str | None = None, factors: object | None = None, **kwargs
    ) -> neuron_views.FactorExplorer:
        """NMF, PCA, ICA or truncated SVD of the activations, through one interface (``method``
        default ``'nmf'``, ``n_components`` default 10; the keywords of :meth:`run_nmf`).
        ``factors=``: corpus-fitted factors of any method (NMF, PCA or a sparse autoencoder,
        ``run.fit_factors(...)``) applied to this output's activations of their layers, without
        fitting (see :meth:`run_nmf`); ``method`` and ``n_components`` may then be left out."""
        return neuron_views.run_decomposition(self, method, n_components, factors=factors, **kwargs)

    def top_neurons(
        self, position: int, k: int = 10, sequence: int = 0, stack: str | None = None, printJson: bool = False
    ) -> View | list[dict]:
        """The ``k`` most active neurons (all captured layers) at one token: (layer, neuron, value)."""
        return neuron_views.top_neurons(self, position, k, sequence, stack, printJson)

    def neuron_view(
        self, layer: int, neuron: int, sequence: int = 0, stack: str | None = None, printJson: bool = False
    ) -> View | np.ndarray:
        """One neuron's activation over every token, as highlighted text (Karpathy-style)."""
        return neuron_views.neuron_view(self, layer, neuron, sequence, stack, printJson)

    def layer_similarity(
        self, method: str = "cka", stack: str | None = None, sequences: list[int] | None = None,
        printJson: bool = False, **kwargs
    ) -> View | np.ndarray:
        """Similarity of every pair of captured layers' activations (``cka``, ``svcca``, ``pwcca``
        or ``cca``), over the tokens of ``sequences`` (all by default): a (layers, layers) matrix."""
        return neuron_views.layer_similarity(self, method, stack, sequences, printJson, **kwargs)

    # -------------------------------------------------------------- attention
    def attention_head_view(
        self,
        layer: int | None = None,
        heads: list[int] | None = None,
        sequence: int = 0,
        attention_set: str | None = None,
        printJson: bool = False,
    ) -> View | dict:
        """Tokens in two columns, lines weighted by attention; a layer selector, one tile per
        head (click toggles, double-click isolates); hover a token for attention from / to it.
        ``attention_set``: 'decoder', 'encoder' or 'cross' (all available sets are selectable)."""
        return attention_views.attention_head_view(self, layer, heads, sequence, attention_set, printJson)

    def attention_model_view(
        self, sequence: int = 0, attention_set: str | None = None, printJson: bool = False
    ) -> View | dict:
        """Thumbnails of every layer x head; click one to enlarge it."""
        return attention_views.attention_model_view(self, sequence, attention_set, printJson)

    def attention_neuron_view(
        self,
        layer: int,
        head: int,
        sequence: int = 0,
        attention_set: str | None = None,
        selected: int | None = None,
        printJson: bool = False,
    ) -> View | dict:
        """How one head's weights arise: for a selected token, its query, each key, their
        element-wise product and the softmaxed scores (queries/keys as the model uses them)."""
        return attention_views.attention_neuron_view(self, layer, head, sequence, attention_set, selected, printJson)


def load(path: str | Path, lm=None) -> OutputSeq:
    """Read an OutputSeq written by :meth:`OutputSeq.save`. Pass the ``lm`` it came from to
    re-attach what the lens and neuron views need (tokenizer, LM head, the model's runner)."""
    return io.read(path, OutputSeq, None if lm is None else lm.link)
