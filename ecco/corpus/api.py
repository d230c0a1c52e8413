"""``run_corpus``: check the arguments, open (or continue) the run folder, run the shards on
this machine or on Ray, merge the summaries, and return the :class:`~ecco.corpus.reader.Corpus`."""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..checks import as_ints
from ..lens import LensHead
from ..models.kinds import Kind
from ..progress import progress_bar
from ..runner import Runner
from .engine import DTYPES, CaptureSpec, Engine
from .reader import Corpus
from .run import Settings, check_plan, finish, plan_shards, process_shard, register, versions
from .sources import Source, as_source
from .store import open_run
from .summaries import DEFAULT_EDGES, NeuronSummary

BACKENDS = ("local", "ray")


def run_corpus(
    runner: Runner,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    source: object,
    out_dir: str | os.PathLike,
    *,
    layers: Sequence[int] | None = None,
    activations: bool = True,
    hidden_states: bool = False,
    dtype: str = "float16",
    stack: str | None = None,
    text_column: str = "text",
    max_tokens: int | None = None,
    overlap: int = 64,
    batch_tokens: int = 4096,
    shard_tokens: int = 32768,
    summaries: bool = True,
    top_k: int = 32,
    hist_edges: Sequence[float] | None = None,
    lens: bool | None = None,
    backend: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model_config: Mapping | None = None,
) -> Corpus:
    """Capture ``layers`` over every document of ``source`` into Arrow shards in ``out_dir``.

    See :meth:`ecco.LM.run_corpus` for the arguments; this function takes the LM's runner,
    tokenizer, model name (and Ecco ``model_config``, for Ray workers) so that it stays below
    the LM in ecco's layers.
    """
    src = as_source(source, text_column=text_column)
    settings = _settings(runner, tokenizer, model_name, layers, activations, hidden_states, dtype, stack, max_tokens,
                         overlap, batch_tokens, shard_tokens, summaries, top_k, hist_edges, lens)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    out = Path(out_dir)
    manifest = open_run(out, settings.to_json(), src.description, versions(), overwrite=overwrite)
    if not manifest.complete:
        if backend == "ray":
            from .ray_backend import run_on_ray

            run_on_ray(runner, tokenizer, settings, model_config, src, out, manifest, workers=workers,
                       address=ray_address, progress=progress)
        else:
            _run_local(Engine(runner, tokenizer, settings.capture), tokenizer, settings, src, out, manifest, progress)
        finish(out, manifest)
    return Corpus(out)


def _run_local(engine: Engine, tokenizer: PreTrainedTokenizerBase, settings: Settings, source: Source, out: Path,
               manifest, progress: bool) -> None:
    """Every shard not yet complete, in order, on this process."""
    bar = progress_bar(total=source.n_documents, unit="doc", desc="ecco corpus", disable=not progress)
    started, tokens = time.perf_counter(), 0
    try:
        for plan in plan_shards(source, tokenizer, settings):
            if not check_plan(plan, manifest):
                record, _ = process_shard(engine, settings, plan, out)
                register(out, manifest, record, engine, settings)
                tokens += record.n_tokens
                bar.set_postfix(tokens=tokens, tok_s=f"{tokens / (time.perf_counter() - started):.0f}")
            bar.update(plan.n_docs)
    finally:
        bar.close()


def _settings(runner: Runner, tokenizer: PreTrainedTokenizerBase, model_name: str, layers, activations: bool,
              hidden_states: bool, dtype: str, stack: str | None, max_tokens: int | None, overlap: int,
              batch_tokens: int, shard_tokens: int, summaries: bool, top_k: int, hist_edges, lens: bool | None) -> Settings:
    """The run's settings, every argument checked with a message that says what to change."""
    spec = runner.spec
    stack = stack or ("encoder" if spec.kind is Kind.ENC_DEC else spec.kind.main_stack)
    if stack not in spec.stacks:
        raise ValueError(f"stack={stack!r}: {model_name} has the stacks {sorted(spec.stacks)}.")
    if spec.kind is Kind.ENC_DEC and stack != "encoder":
        raise ValueError(
            "Corpus runs read an encoder-decoder model's encoder (the documents are its inputs); the decoder "
            "needs target text. Use stack='encoder', or lm.attribute / lm(...) for decoder captures."
        )
    if not (activations or hidden_states):
        raise ValueError("Nothing to capture: set activations=True and/or hidden_states=True.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    n_layers = spec.stacks[stack].n_layers
    chosen = list(range(n_layers)) if layers is None else as_ints(layers, "layers", 0, n_layers - 1)
    if not chosen:
        raise ValueError(f"layers is empty: give block indices 0..{n_layers - 1}, or None for all.")
    lens = _lens_setting(runner, stack, lens, hidden_states)
    limit = model_limit(runner, tokenizer)
    max_tokens = min(512, limit) if max_tokens is None else max_tokens
    if max_tokens > limit:
        raise ValueError(f"max_tokens={max_tokens} is more than {model_name} takes ({limit} positions).")
    if batch_tokens < max_tokens:
        raise ValueError(f"batch_tokens={batch_tokens} must be at least max_tokens={max_tokens} (one window per batch).")
    if shard_tokens < 1 or top_k < 1:
        raise ValueError("shard_tokens and top_k must be positive.")
    edges = tuple(float(e) for e in (DEFAULT_EDGES if hist_edges is None else hist_edges))
    NeuronSummary.empty(1, k=top_k, edges=edges)  # says what is wrong with k or the edges before anything runs
    capture = CaptureSpec(stack, tuple(sorted(set(chosen))), bool(activations), bool(hidden_states), dtype, lens)
    return Settings(
        model=model_name,
        model_class=type(runner.model).__name__,
        capture=capture,
        max_tokens=int(max_tokens),
        overlap=int(overlap),
        batch_tokens=int(batch_tokens),
        shard_tokens=int(shard_tokens),
        top_k=int(top_k),
        hist_edges=edges,
        summaries=bool(summaries),
    )


def _lens_setting(runner: Runner, stack: str, lens: bool | None, hidden_states: bool) -> bool:
    """Whether the logit-lens summaries run: by default when hidden states are captured and the
    model has a head that reads the stack."""
    if lens is False:
        return False
    reason = None
    if stack != runner.spec.kind.main_stack:
        reason = f"the {stack} stack does not end in the model's predictions"
    else:
        try:
            LensHead.from_model(runner.model, runner.spec)
        except ValueError as error:
            reason = str(error)
    if reason and lens:
        raise ValueError(f"lens=True is not possible: {reason}.")
    return reason is None and (hidden_states if lens is None else True)


def model_limit(runner: Runner, tokenizer: PreTrainedTokenizerBase) -> int:
    """The most positions the model takes."""
    context = runner.context_size()
    if context is not None:
        return context
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 512
