"""LM: a transformers model wrapped for capture and interpretation.

The class is a façade over one module per job, all of which call the model only through its
:class:`~ecco.runner.Runner`: :mod:`.generation` (``lm.generate``), :mod:`.forward` (``lm(...)``),
:mod:`.forced` (``lm.attribute``), :mod:`.causal` (``lm.logit_attribution``), with :mod:`.inputs`
(encoding, padding, context checks),
:mod:`.flags` (what is captured) and :mod:`.core` (what the jobs share, and the assembly of the
:class:`~ecco.output.OutputSeq`). No maths and no HTML here.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..output import OutputSeq
from ..render import View
from . import causal, forced, forward, generation, interventions, tracing
from .core import Core
from .flags import CaptureFlags
from .inputs import Prompts

if TYPE_CHECKING:
    import ecco.corpus_run
    import ecco.experiment_run

__all__ = ["LM", "CaptureFlags"]


class _Flag:
    """An LM attribute that reads one field of ``lm.flags``; setting it checks the flags again."""

    def __init__(self, field: str, doc: str) -> None:
        self.field = field
        self.__doc__ = doc

    def __get__(self, lm: LM | None, owner: type | None = None) -> object:
        return self if lm is None else getattr(lm.flags, self.field)

    def __set__(self, lm: LM, value: object) -> None:
        lm.flags = replace(lm.flags, **{self.field: value})


class LM(Core):
    """A transformers model wrapped for capture and interpretation.

    Create it with :func:`ecco.from_pretrained` or :func:`ecco.from_model`. The keyword
    arguments choose what every call captures; they are the fields of
    :class:`~ecco.lm.flags.CaptureFlags`, kept in ``lm.flags`` (and readable as
    ``lm.collect_activations``, ``lm.attention``, ``lm.hidden_states``, ``lm.verbose``,
    ``lm.store_dtype``). ``lm.activation_layers`` holds the captured layers per stack.
    """

    collect_activations = _Flag("activations", "Whether FFN neuron activations are captured.")
    attention = _Flag("attention", "Whether attention weights are captured.")
    hidden_states = _Flag("hidden_states", "Whether hidden states are captured.")
    verbose = _Flag("verbose", "Whether generation is shown live (notebooks) and attribution shows progress.")
    store_dtype = _Flag("store_dtype", "The torch dtype captured arrays are stored in.")

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        model_name: str | None = None,
        activations: bool = False, attention: bool = False, hidden_states: bool = True,
        activations_layer_nums: Sequence[int] | None = None, verbose: bool = True,
        model_config: Mapping | None = None, store_dtype: str | torch.dtype = torch.float32,
    ):
        super().__init__(model, tokenizer, model_name, CaptureFlags.from_arguments(locals()))

    def __repr__(self) -> str:
        layers = {name: stack.n_layers for name, stack in self.spec.stacks.items()}
        return f"LM({self.model_name!r}, arch={self.spec.arch}, kind={self.spec.kind}, layers={layers})"

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return self.runner.device

    def generate(
        self,
        input_str: Prompts,
        generate: int | None = None,
        max_length: int | None = None,
        do_sample: bool | None = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        beam_size: int = 1,
        attribution: Sequence[str] | str | None = None,
        attribution_options: Mapping | None = None,
        interventions: Sequence[object] | None = None,
        **generate_kwargs,
    ) -> OutputSeq:
        """Generate a continuation of one prompt or a batch, capturing the model's internals.

        A prompt is a text or its token ids (a list, or a 1-d tensor / NumPy array, used as given:
        include the special tokens the tokenizer would add); a batch is a list of prompts or a 2-d
        id tensor / array.

        Uses transformers' ``generate`` with the KV cache; activations, hidden states and
        attention are captured during generation (beam search: one teacher-forced pass over
        the returned sequences). ``generate`` counts new tokens; Ecco's ``max_length`` counts
        the prompt too. Extra keyword arguments go to transformers' ``generate``.

        ``attribution`` names methods (``ecco.attribution.METHODS``) that explain every generated
        token by the earlier tokens; ``attribution_options`` sets their
        :class:`~ecco.attribution.Options` (``n_steps``, ``internal_batch_size``, ...).

        ``interventions`` (:class:`ecco.Ablate`, :class:`ecco.Steer`) are applied while the model
        generates; the same prompt is also generated without them (from the same random state), and
        the output is the intervened run with the clean one as ``output.clean``;
        ``output.intervention_diff()`` shows what changed (see docs/causal.md). With interventions,
        ``attribution`` is refused (it would explain the model without them), and so is beam search
        with resample ablation.
        """
        sampling = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p)
        return generation.generate(
            self, input_str, generate, max_length, beam_size, attribution, attribution_options, sampling, generate_kwargs,
            interventions=interventions,
        )

    def __call__(self, inputs: Prompts | Mapping, text_pair: str | Sequence[str] | None = None) -> OutputSeq:
        """Run one forward pass (no generation) and capture, e.g. for encoders such as BERT.

        ``inputs`` is a text, a list of texts, token ids (as :meth:`generate` takes them), or the
        tokenizer's output (Ecco's ``lm(lm.tokenizer([text], return_tensors='pt'))``).
        ``text_pair`` makes sentence pairs of texts for encoders.
        """
        return forward.call(self, inputs, text_pair)

    def attribute(
        self,
        prompt: Prompts,
        target: Prompts,
        foil: Prompts | None = None,
        attribution: Sequence[str] | str = ("grad_x_input",),
        score: str = "prob",
        **options,
    ) -> OutputSeq:
        """Explain a given continuation (teacher forcing, no sampling).

        Every token of ``target`` is explained by the prompt and the target tokens before it,
        with the ``score`` ('prob' as in Ecco, 'logprob' or 'logit'). With ``foil`` the
        attribution is contrastive (Yin & Neubig 2022): it explains log p(target) - log p(foil)
        at the first token where target and foil differ (their common prefix is teacher-forced).
        Lists of prompts / targets / foils make a batch. Each may be token ids instead of text
        (as :meth:`generate` takes them; targets and foils without special tokens). ``options`` set
        :class:`~ecco.attribution.Options` (``n_steps``, ``internal_batch_size``, ...).
        """
        return forced.attribute(self, prompt, target, foil, attribution, score, options)

    def logit_attribution(self, prompt: str | Sequence[int], target: str | Sequence[int] = " London",
                          foil: str | Sequence[int] | None = None, top_neurons: int = 10,
                          printJson: bool = False) -> View | dict:
        """Direct logit attribution: the logit of ``target``'s first token after ``prompt`` (minus
        ``foil``'s first token's) split into the embeddings and each layer's attention (per head)
        and MLP (per neuron, the ``top_neurons`` up and down shown), read through the final norm
        with its scale frozen at this run (see docs/causal.md). The target is teacher-forced after
        the prompt; a longer target explains its first token. Post-norm models (BERT, BART) are
        refused. Returns the view (``printJson``: its data dict)."""
        return causal.logit_attribution(self, prompt, target, foil, top_neurons, printJson)

    def trace(self, prompt: str | Sequence[int], target: str | Sequence[int] = " London",
              corrupt: str | Sequence[int] | None = None, *, counterfactual: str | Sequence[int] | None = None,
              components: Sequence[str] = ("residual", "mlp", "attention"), window: int = 1, seeds: int = 5,
              noise: float = 3.0, stack: str | None = None, batch_size: int = 64,
              printJson: bool = False) -> View | dict:
        """Causal tracing (Meng et al. 2022) / activation patching: which internal states the
        probability of ``target``'s first token after ``prompt`` depends on.

        The prompt is corrupted, either by Gaussian noise of ``noise`` times the embeddings'
        standard deviation on the tokens of ``corrupt`` (a piece of the prompt's text, or a list of
        positions; default: every token), averaged over ``seeds`` draws, or by running
        ``counterfactual``, a prompt of the same token length. Then, for every (layer, position)
        and each of ``components`` (``'residual'``, ``'mlp'``, ``'attention'``), the clean run's
        state is restored there (MLP and attention: in a ``window`` of layers around it, as in ROME)
        and the target's probability read: the indirect effect is restored − corrupted, the
        normalised effect divides it by clean − corrupted. ``stack`` picks the traced stack of an
        encoder-decoder model (default: the encoder, which reads the prompt). ``batch_size``
        restorations run per forward pass. Returns the view (three heatmaps; ``printJson``: its data).
        """
        return tracing.trace(self, prompt, target, corrupt, counterfactual, tuple(components), window, seeds, noise,
                             stack, batch_size, printJson)

    def steering_vector(self, positive: Prompts, negative: Prompts, layer: int, reduce: str = "mean",
                        stack: str | None = None) -> np.ndarray:
        """A steering vector for :class:`ecco.Steer` from a contrast of prompts (Turner et al. 2023):
        the residual stream after block ``layer`` over ``positive`` minus over ``negative`` (each a
        prompt or a list of prompts, averaged), each prompt reduced by its mean over tokens
        (``reduce='mean'``) or its last token (``'last'``). ``stack``: the encoder or decoder of an
        encoder-decoder model (default: decoder). Returns a float64 vector of the hidden size."""
        return interventions.steering_vector(self, positive, negative, layer, reduce, stack)

    def run_corpus(self, source: object, out_dir: str | os.PathLike, layers: Sequence[int] | None = None,
                   **options) -> ecco.corpus_run.CorpusRun:
        """Capture a whole corpus in one streaming pass (no generation) into Arrow shards on disk.

        ``source``: a list of texts, a ``datasets.Dataset`` (or a folder saved with
        ``save_to_disk``) with a ``text_column`` (default ``'text'``), a folder or glob of text
        files, or :func:`ecco.corpus.python_stdlib`. ``layers`` (default: all) are the blocks
        whose FFN neuron ``activations`` (default True) and/or ``hidden_states`` (default False)
        are stored, in ``dtype`` (``'float16'``, the default, or ``'float32'``), with token ids,
        token text, document id and position. ``stack`` picks the encoder of an
        encoder-decoder model (the default there); ``text_column`` a dataset's text.

        Documents longer than ``max_tokens`` (default: 512, or less if the model takes less)
        are split into windows that overlap by ``overlap`` tokens (default 64); each token is
        stored once, from the first window that has ``overlap`` tokens of context before it.
        Batches are filled up to ``batch_tokens`` (windows sorted by length so padding is
        small); shards hold about ``shard_tokens`` tokens of whole documents.

        In the same pass, mergeable summaries: per neuron the ``top_k`` (default 32) tokens
        with (doc, position), mean, standard deviation, fraction positive and a histogram on
        ``hist_edges`` (default: 0 and +-2**-10 .. +-2**7); with hidden states and an LM head (``lens``), each layer's mean
        logit-lens entropy and KL to the final distribution. ``summaries=False`` skips them.

        Running the same call again continues after the last complete shard (a different run
        in ``out_dir`` is refused; ``overwrite=True`` starts again). ``backend='ray'`` runs the
        shards on a Ray cluster (``workers`` actors; ``ray_address`` or ``RAY_ADDRESS``, else a
        local cluster). ``progress`` shows a bar. Returns the run as :class:`~ecco.corpus_run.CorpusRun`
        (linked to this model, for the dashboards' direct effects).
        """
        from ..corpus.api import run_corpus  # pyarrow and datasets load only when a corpus is run
        from ..corpus_run import CorpusRun

        run = run_corpus(self.runner, self.tokenizer, self.model_name, source, out_dir, layers=layers,
                         model_config=self.flags.model_config, **options)
        return CorpusRun(run.path, lm=self)

    def attribute_dataset(self, source: object, methods: Sequence[str] | str = ("grad_x_input", "ig"),
                          out_dir: str | os.PathLike = "ecco-attribution", *, attribution_options: Mapping | None = None,
                          **settings) -> ecco.experiment_run.ExperimentRun:
        """Attribute every item of a dataset with several ``methods`` and score how faithful each is,
        streamed to Arrow shards in ``out_dir``.

        ``source``: a list of prompts (a greedy continuation of ``generate`` tokens, default 10, is
        generated and explained), of ``(prompt, target)`` pairs (the target is teacher-forced and
        explained), of dicts, or a ``datasets.Dataset`` with ``prompt_column`` (default
        ``'prompt'``) and ``target_column`` (default: ``'target'`` if there is one; None generates).
        Every explained token gets every method's attributions (``attribution_options``: the
        :class:`~ecco.attribution.Options`, e.g. ``n_steps``, ``layer``, ``n_samples``), and, unless
        ``faithfulness=False``, its comprehensiveness / sufficiency (AOPC over ``levels``), Soft-NC /
        Soft-NS and deletion / insertion curves (``steps`` + 1 points), beside a random-order
        baseline of ``seeds`` (default 3) orders; ``removal`` is ``'zero'`` (default) or
        ``'replace'`` (see docs/attribution.md). ``score``: ``'prob'`` (default), ``'logprob'`` or
        ``'logit'``.

        Items are written ``shard_items`` (default 32) per shard as they are done; running the same
        call again continues after the last complete shard (``overwrite=True`` starts again).
        ``backend='ray'`` runs the shards on Ray actors (``workers``, ``ray_address``). A method
        that cannot run on this model is recorded with its reason and the others go on. Returns
        the :class:`~ecco.experiment_run.ExperimentRun`: ``.item(i)`` in the attribution views,
        ``.compare()`` (the view), ``.figure()``, ``.table()``.
        """
        from ..experiment import attribute_dataset
        from ..experiment_run import ExperimentRun

        settings.setdefault("progress", self.flags.verbose)
        run = attribute_dataset(self.runner, self.tokenizer, self.model_name, source, out_dir, methods,
                                model_config=self.flags.model_config, options=attribution_options, **settings)
        return ExperimentRun(run.path, lm=self)
