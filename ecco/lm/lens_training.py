"""``ecco.train_lens`` and ``ecco.evaluate_lens``: a trained (tuned) lens for an LM, from a corpus
run that stored every layer's hidden states or streamed from a source, and its per-layer
evaluation against the logit lens on held-out text (see :mod:`ecco.tuned`)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..checks import as_int
from ..corpus.api import model_limit
from ..corpus.reader import Corpus
from ..corpus.sources import as_source
from ..corpus.store import MANIFEST
from ..lens import LensHead
from ..models.kinds import Kind
from ..tuned.data import Split, count_tokens, run_batches, run_hidden_columns, source_batches, stream_engine
from ..tuned.evaluate import LensEvaluation, evaluate
from ..tuned.lens import LensInfo, TunedLens
from ..tuned.train import TrainOptions, fit
from ..views.lens import lens_evaluation_view

if TYPE_CHECKING:
    from . import LM


class _Data:
    """Where hidden states come from: a corpus run's stored ones, or a source run through the model."""

    def __init__(self, lm: LM, data: object, text_column: str, max_tokens: int | None, overlap: int,
                 batch_tokens: int) -> None:
        self.lm = lm
        self.stack = lm.spec.kind.main_stack
        self.n_layers = lm.spec.stacks[self.stack].n_layers
        if isinstance(data, (str, os.PathLike)) and (Path(data) / MANIFEST).is_file():
            data = Corpus(data)  # the folder of a corpus run
        self.corpus = data if isinstance(data, Corpus) else None
        if self.corpus is not None:
            self._check_run(self.corpus)
            self.description = dict(self.corpus.manifest.source)
            return
        self.source = as_source(data, text_column=text_column)
        self.description = dict(self.source.description)
        limit = model_limit(lm.runner, lm.tokenizer)
        self.max_tokens = min(512, limit) if max_tokens is None else as_int(max_tokens, "max_tokens", 1)
        if self.max_tokens > limit:
            raise ValueError(f"max_tokens={max_tokens} is more than {lm.model_name} takes ({limit} positions).")
        self.batch_tokens = as_int(batch_tokens, "batch_tokens", self.max_tokens, None,
                                   f"batch_tokens={batch_tokens} must be at least max_tokens={self.max_tokens}.")
        self.overlap = as_int(overlap, "overlap", 0)
        self.engine = stream_engine(lm.runner, lm.tokenizer, self.stack)

    def _check_run(self, corpus: Corpus) -> None:
        settings = corpus.settings
        if settings["model"] != self.lm.model_name:
            raise ValueError(
                f"The corpus run in {corpus.path} was made with {settings['model']}, not {self.lm.model_name}: a lens "
                "learns one model's hidden states. Use a run of this model, or pass the source to stream it."
            )
        if settings["capture"]["stack"] != self.stack:
            raise ValueError(f"The corpus run stored the {settings['capture']['stack']} stack; the lens reads the {self.stack}.")
        run_hidden_columns(corpus, self.n_layers)

    def batches(self, split: Split, part: str, rows: int, seed: int | None, limit: int | None) -> Iterator:
        """Batches of hidden states of ``part`` (see :mod:`ecco.tuned.data`)."""
        if self.corpus is not None:
            return run_batches(self.corpus, self.n_layers, split, part, rows, seed, limit)
        return source_batches(self.engine, self.lm.tokenizer, self.source, split, part, rows, seed, limit,
                              self.max_tokens, self.overlap, self.batch_tokens)

    def total(self, split: Split, part: str, limit: int | None) -> int | None:
        """Tokens the batches will hold, where known without running the model."""
        if self.corpus is None:
            return limit
        count = count_tokens(self.corpus, split, part)
        return count if limit is None else min(count, limit)


def _head(lm: LM, what: str) -> LensHead:
    """The LM's head, or a ValueError saying why this model has no lens to train or evaluate."""
    kind = lm.spec.kind
    if kind is Kind.ENC_DEC:
        raise ValueError(
            f"{what} reads the stack that ends in the model's predictions; for {lm.model_name} (encoder-decoder) "
            "that is the decoder, which needs target text, while corpus runs and sources give the encoder's "
            "inputs. Train lenses on causal or masked language models."
        )
    return LensHead.from_model(lm.model, lm.spec)


def lens_info(lm: LM, head: LensHead) -> LensInfo:
    """The facts about ``lm`` a lens is checked against (nothing trained yet)."""
    stack = lm.spec.kind.main_stack
    config = lm.model.config
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    return LensInfo(lm.model_name, type(lm.model).__name__, lm.spec.stacks[stack].n_layers, int(hidden),
                    int(head.vocab), head.fingerprint(), stack)


def new_lens(lm: LM) -> TunedLens:
    """An untrained (identity) lens for ``lm``: it reads exactly as the logit lens does."""
    return TunedLens(lens_info(lm, _head(lm, "A trained lens")))


def train_lens(
    lm: LM, data: object, *, held_out: float = 0.1, epochs: int = 1, lr: float = 2e-3, tokens: int | None = None,
    rows: int = 64, weight_decay: float = 0.0, seed: int = 0, text_column: str = "text", max_tokens: int | None = None,
    overlap: int = 64, batch_tokens: int = 1024, progress: bool = True, save: str | os.PathLike | None = None,
) -> TunedLens:
    """Train a tuned lens for ``lm``: see :func:`ecco.train_lens`."""
    head = _head(lm, "A trained lens")
    if not isinstance(held_out, (int, float)) or not 0 <= held_out < 1:
        raise ValueError(f"held_out is the fraction of documents kept for evaluation, in [0, 1); got {held_out!r}.")
    options = TrainOptions(lr=lr, epochs=epochs, rows=rows, weight_decay=weight_decay, tokens=tokens, seed=seed)
    source = _Data(lm, data, text_column, max_tokens, overlap, batch_tokens)
    split = Split(float(held_out), seed)
    lens = TunedLens(lens_info(lm, head))

    def record(history: list[list[float]]) -> None:
        lens.info.trained = True
        lens.info.training = {"source": source.description, "held_out": split.held_out, "split_seed": split.seed,
                              "options": options.to_json(), "epochs_done": len(history), "train_kl": history}
        if save is not None:
            lens.save(save)

    fit(head, lens, lambda epoch: source.batches(split, "train", rows, seed + epoch, tokens), options,
        total=source.total(split, "train", tokens), progress=progress, after_epoch=record)
    return lens


def evaluate_lens(
    lm: LM, lens: TunedLens | str | os.PathLike, data: object, *, tokens: int | None = None, rows: int = 512,
    text_column: str = "text", max_tokens: int | None = None, overlap: int = 64, batch_tokens: int = 1024,
    progress: bool = True, printJson: bool = False, plot: bool = False,
):
    """Logit lens vs ``lens`` on held-out text: see :func:`ecco.evaluate_lens`."""
    head = _head(lm, "Evaluating a lens")
    if isinstance(lens, (str, os.PathLike)):
        lens = TunedLens.load(lens)
    if not isinstance(lens, TunedLens):
        raise ValueError(f"lens must be a trained lens (ecco.train_lens) or the path of a saved one, got {type(lens).__name__}.")
    source = _Data(lm, data, text_column, max_tokens, overlap, batch_tokens)
    own = lens_info(lm, head)
    lens.check_model(own.model_name, own.n_layers, own.hidden_size, own.vocab_size, own.head_fingerprint)
    training = lens.info.training
    same = bool(training) and training.get("source") == source.description
    split = Split(training.get("held_out", 0.0), training.get("split_seed", 0)) if same else Split(0.0)
    part = "held_out" if same and split.held_out > 0 else "all"
    result = evaluate(head, lens, source.batches(split, part, rows, None, tokens), total=source.total(split, part, tokens),
                      progress=progress, part=part)
    if same and part == "all":
        result.part = "training"
    return lens_evaluation_view(result, printJson, plot)


__all__ = ["LensEvaluation", "evaluate_lens", "train_lens"]
