"""ecco: see what a transformer language model is "thinking".

Load a model with :func:`from_pretrained` (a hub id, a local folder, or one of the bundled
offline models ``"smollm2-135m"`` and ``"minilm-l6"``) or wrap one you already have with
:func:`from_model`; then ``lm.generate(...)`` or ``lm(text)`` returns an
:class:`~ecco.output.OutputSeq` whose methods render interactive views.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .causal.interventions import Ablate
from .causal.steering import Steer
from .lm import LM, CaptureFlags
from .models.bundled import ALIASES, load_bundled, resolve_alias
from .models.registry import ArchitectureError
from .output import OutputSeq, load
from .tuned.lens import TunedLens, load_lens

if TYPE_CHECKING:
    from . import corpus, corpus_run, experiment_run

__version__ = "0.2.0.dev0"
__all__ = [
    "LM", "CaptureFlags", "OutputSeq", "ArchitectureError", "Ablate", "Steer", "Corpus", "corpus",
    "from_pretrained", "from_model", "load",
    "load_corpus", "load_experiment", "train_lens", "evaluate_lens", "load_lens", "TunedLens", "__version__",
]

_CONFIG_KWARGS = ("revision", "trust_remote_code", "cache_dir", "token", "local_files_only", "gguf_file")
_AUTO_BY_TYPE = {"causal": AutoModelForCausalLM, "mlm": AutoModelForMaskedLM, "enc-dec": AutoModelForSeq2SeqLM}


def _auto_class(name_or_path: str, model_config: Mapping | None, kwargs: dict[str, Any]) -> type:
    """The transformers auto class for a checkpoint: Ecco's ``type`` if given, else from its config."""
    if model_config and model_config.get("type") in _AUTO_BY_TYPE:
        return _AUTO_BY_TYPE[model_config["type"]]
    config = AutoConfig.from_pretrained(name_or_path, **{k: kwargs[k] for k in _CONFIG_KWARGS if k in kwargs})
    if getattr(config, "is_encoder_decoder", False):
        return AutoModelForSeq2SeqLM
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures):
        return AutoModelForMaskedLM
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures):
        return AutoModelForCausalLM
    for auto in (AutoModelForCausalLM, AutoModelForMaskedLM):
        if type(config) in auto._model_mapping:
            return auto
    return AutoModel


def from_pretrained(
    name_or_path: str,
    activations: bool = False,
    attention: bool = False,
    hidden_states: bool = True,
    activations_layer_nums: Sequence[int] | None = None,
    verbose: bool = True,
    gpu: bool = True,
    model_config: Mapping | None = None,
    store_dtype: str | torch.dtype = "float32",
    **kwargs: Any,
) -> LM:
    """Load a model and its tokenizer and wrap them in an :class:`LM`.

    ``name_or_path`` is a bundled alias (``"smollm2-135m"``, ``"minilm-l6"``; offline), a
    local folder or a hub id. Ecco's flags (``activations``, ``attention``,
    ``hidden_states``, ``activations_layer_nums``, ``verbose``, ``model_config``,
    ``store_dtype``; see :class:`~ecco.lm.flags.CaptureFlags`) choose what is captured, and
    are checked before anything is loaded; ``gpu`` moves the model to CUDA when one is
    available (ignored with ``device_map``). Other keyword arguments (``dtype``/``torch_dtype``,
    ``device_map``, ``revision``, ``trust_remote_code``, ``gguf_file``, ...) go to
    transformers' ``from_pretrained``.
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValueError("from_pretrained needs a model name: an alias, a local folder or a hub id.")
    flags = CaptureFlags.from_arguments(locals())
    if "torch_dtype" in kwargs:
        kwargs.setdefault("dtype", kwargs.pop("torch_dtype"))
    if flags.attention:
        kwargs.setdefault("attn_implementation", "eager")
    bundled = resolve_alias(name_or_path)
    if bundled is not None:
        model, tokenizer = load_bundled(bundled.alias, **kwargs)
        name = bundled.alias
    else:
        try:
            auto = _auto_class(name_or_path, flags.model_config, kwargs)
            tokenizer = AutoTokenizer.from_pretrained(
                name_or_path, **{k: kwargs[k] for k in _CONFIG_KWARGS if k in kwargs}
            )
            model = auto.from_pretrained(name_or_path, **kwargs)
        except OSError as error:
            raise ValueError(
                f"Could not load {name_or_path!r}: it is not a bundled alias ({', '.join(ALIASES)}), "
                f"and transformers could not load it as a local folder or hub id ({error}). Check the "
                "name, or the network if it is a hub id."
            ) from error
        name = name_or_path
    if gpu and "device_map" not in kwargs and torch.cuda.is_available():
        model = model.to("cuda")
    return LM(model.eval(), tokenizer, model_name=name, **flags.keywords())


def from_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    activations: bool = False, attention: bool = False, hidden_states: bool = True,
    activations_layer_nums: Sequence[int] | None = None, verbose: bool = True,
    model_config: Mapping | None = None, store_dtype: str | torch.dtype = "float32",
    model_name: str | None = None,
) -> LM:
    """Wrap a model already in memory. The model is not moved or modified; every ecco call
    switches it to eval mode (and eager attention if ``attention=True``) only for its duration.
    The flags are those of :func:`from_pretrained` (see :class:`~ecco.lm.flags.CaptureFlags`).
    """
    return LM(model, tokenizer, model_name=model_name, **CaptureFlags.from_arguments(locals()).keywords())


def load_corpus(out_dir: str | os.PathLike, lm: LM | None = None) -> corpus_run.CorpusRun:
    """A corpus run written by ``lm.run_corpus`` or ``ecco corpus``, read back from ``out_dir``
    (memory-mapped): see :class:`ecco.corpus_run.CorpusRun`. ``lm``, the model that made the
    run, gives the neuron dashboards their direct effect on the output."""
    from .corpus_run import CorpusRun

    return CorpusRun(out_dir, lm=lm)


def load_experiment(out_dir: str | os.PathLike, lm: LM | None = None) -> experiment_run.ExperimentRun:
    """An attribution experiment written by ``lm.attribute_dataset`` or ``ecco attribute``, read
    back from ``out_dir`` (complete or stopped part-way): see :class:`ecco.experiment_run.ExperimentRun`."""
    from .experiment_run import ExperimentRun

    return ExperimentRun(out_dir, lm=lm)


def train_lens(
    lm: LM, data: object, *, held_out: float = 0.1, epochs: int = 1, lr: float = 2e-3, tokens: int | None = None,
    rows: int = 64, weight_decay: float = 0.0, seed: int = 0, text_column: str = "text",
    max_tokens: int | None = None, overlap: int = 64, batch_tokens: int = 1024, progress: bool = True,
    save: str | os.PathLike | None = None,
) -> TunedLens:
    """Train a tuned lens for ``lm``: one affine translator per layer (all but the last), starting
    at the identity (so an untrained lens is the logit lens), trained with Adam (``lr``,
    ``weight_decay``) to minimise KL(final || layer) over tokens, ``rows`` tokens per step.

    ``data``: a corpus run (``lm.run_corpus(..., hidden_states=True)`` with every layer, or
    ``ecco.load_corpus``), read from disk a batch at a time; or anything ``lm.run_corpus`` takes
    as a source (a list of texts, a folder, a dataset, :func:`ecco.corpus.python_stdlib`), run
    through the model one batch at a time (``max_tokens``, ``overlap``, ``batch_tokens`` as in
    ``run_corpus``, but 1024 tokens per forward pass by default: every layer's hidden states of
    one pass are held while it is trained on; ``text_column`` for datasets). Either way the hidden states of the whole
    corpus are never in memory at once.

    A fraction ``held_out`` of the documents (chosen by a hash of the document id and ``seed``)
    is left out of training, and :func:`evaluate_lens` uses it when given the same source.
    ``epochs`` passes over at most ``tokens`` training tokens each (None: all), shuffled with
    ``seed``. ``progress`` shows a bar; ``save`` writes the lens to that path after every epoch
(an interrupted run keeps the epochs it finished). Returns the
    :class:`~ecco.tuned.lens.TunedLens` (``lens.save(path)``, ``ecco.load_lens(path)``), which
    every lens view takes as ``lens=``.
    """
    from .lm.lens_training import train_lens as train

    return train(lm, data, held_out=held_out, epochs=epochs, lr=lr, tokens=tokens, rows=rows, weight_decay=weight_decay,
                 seed=seed, text_column=text_column, max_tokens=max_tokens, overlap=overlap, batch_tokens=batch_tokens,
                 progress=progress, save=save)


def evaluate_lens(
    lm: LM, lens: TunedLens | str | os.PathLike, data: object, *, tokens: int | None = None, rows: int = 512,
    text_column: str = "text", max_tokens: int | None = None, overlap: int = 64, batch_tokens: int = 1024,
    progress: bool = True, printJson: bool = False, plot: bool = False,
):
    """How well the logit lens and ``lens`` (a trained lens or its path) read each layer of ``lm``
    on text it was not trained on: per layer, the mean KL(final || layer) and the mean
    cross-entropy against the next token, in nats.

    ``data`` is a source or corpus run as in :func:`train_lens`. When it is the lens's own
    training source (the same description), only its held-out documents are used. ``tokens``
    caps the tokens read. Returns the view (one line per lens; the last layer is the model's own
    output, the same for both); ``printJson=True``: a dict with the arrays ``logit_kl``,
    ``tuned_kl``, ``logit_ce``, ``tuned_ce`` (one value per layer), ``layers``, ``n_tokens``
    and ``n_next`` (tokens whose next token is known, for the cross-entropy); ``plot=True``: a
    matplotlib figure.
    """
    from .lm.lens_training import evaluate_lens as evaluate

    return evaluate(lm, lens, data, tokens=tokens, rows=rows, text_column=text_column, max_tokens=max_tokens,
                    overlap=overlap, batch_tokens=batch_tokens, progress=progress, printJson=printJson, plot=plot)


def __getattr__(name: str) -> object:
    """``ecco.corpus`` and ``ecco.Corpus`` import pyarrow only when first used."""
    if name == "corpus":
        return importlib.import_module(".corpus", __name__)
    if name == "Corpus":
        return importlib.import_module(".corpus_run", __name__).CorpusRun
    raise AttributeError(f"module 'ecco' has no attribute {name!r}")
