"""``attribute_dataset``: check the arguments, tokenize and check every item, open (or continue)
the experiment folder, run the shards here or on Ray, and return the
:class:`~ecco.experiment.reader.Experiment`."""
from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..attribution import check_methods
from ..attribution.faithfulness import LEVELS, check_levels
from ..attribution.perturb import check_removal, neutral_id
from ..attribution.registry import Options
from ..checks import as_int
from ..corpus.run import versions
from ..corpus.store import open_run
from ..progress import progress_bar
from ..runner import Runner
from .items import AUTO, as_items
from .job import ItemJob, Prepared, Settings, prepare
from .reader import Experiment
from .store import Manifest, ShardRecord, process_shard, register, shard_plan, write_manifest

BACKENDS = ("local", "ray")
SCORES = ("prob", "logprob", "logit")


def attribute_dataset(
    runner: Runner,
    tokenizer: PreTrainedTokenizerBase,
    model_name: str,
    source: object,
    out_dir: str | os.PathLike,
    methods: Sequence[str] | str = ("grad_x_input", "ig"),
    *,
    prompt_column: str = "prompt",
    target_column: str | None = AUTO,
    generate: int = 10,
    score: str = "prob",
    faithfulness: bool = True,
    removal: str = "zero",
    levels: Sequence[float] = LEVELS,
    steps: int = 10,
    seeds: int = 3,
    soft_samples: int = 1,
    shard_items: int = 32,
    backend: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model_config: Mapping | None = None,
    options: Mapping | None = None,
) -> Experiment:
    """Attribute every item of ``source`` with ``methods`` into Arrow shards in ``out_dir``; see
    :meth:`ecco.LM.attribute_dataset` for the arguments. Takes the LM's runner, tokenizer and model
    name so that it stays below the LM in ecco's layers."""
    settings = _settings(runner, tokenizer, model_name, methods, generate, score, faithfulness, removal, levels, steps,
                         seeds, soft_samples, shard_items, options)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    items = as_items(source, prompt_column, target_column)
    if not runner.spec.kind.generates:
        raise ValueError(f"{model_name} is an encoder without a generative head: attribution experiments explain "
                         "generated or given continuations, so they need a causal or encoder-decoder model.")
    vocab = runner.model.get_input_embeddings().weight.shape[0]
    context = runner.context_size() if not runner.spec.kind.encoder_decoder else None
    prepared = prepare(tokenizer, list(items), vocab, context)
    if context is not None:
        for p in prepared:
            if p.target_ids is None and len(p.prompt_ids) + generate > context:
                raise ValueError(f"Item {p.item.item_id}: a {len(p.prompt_ids)}-token prompt leaves no room to generate "
                                 f"{generate} tokens in the model's context of {context}.")
    out = Path(out_dir)
    manifest = open_run(out, settings.to_json(), items.description, versions(), overwrite=overwrite, cls=Manifest)
    if not manifest.complete:
        todo = [(i, part) for i, part in shard_plan(prepared, settings.shard_items) if not _done(i, part, manifest)]
        if backend == "ray":
            from .ray_backend import run_on_ray

            run_on_ray(runner, tokenizer, settings, model_config, todo, out, manifest, len(prepared), workers=workers,
                       address=ray_address, progress=progress)
        else:
            _run_local(ItemJob(runner, tokenizer, settings), todo, out, manifest, settings, len(prepared), progress)
        manifest.complete = True
        write_manifest(out, manifest)
    return Experiment(out)


def _run_local(job: ItemJob, todo: list[tuple[int, list[Prepared]]], out: Path, manifest: Manifest,
               settings: Settings, n_items: int, progress: bool) -> None:
    """Every shard not yet complete, in order, on this process. The bar counts items run and explained
    tokens; ``saved`` is the items in complete shards (what a stopped run keeps)."""
    done = manifest.totals()["items"]
    bar = progress_bar(total=n_items, initial=done, unit="item", desc="ecco attribute", disable=not progress)
    began, tokens = time.perf_counter(), 0

    def tick(row: dict) -> None:
        nonlocal tokens
        tokens += len(row["targets"])
        bar.set_postfix(tokens=tokens, tok_s=f"{tokens / (time.perf_counter() - began):.2f}",
                        saved=manifest.totals()["items"])
        bar.update(1)

    try:
        for index, part in todo:
            register(out, manifest, process_shard(job, index, part, out, tick), settings)
    finally:
        bar.close()


def _done(index: int, part: list[Prepared], manifest: Manifest) -> bool:
    """Whether shard ``index`` is complete (and still holds these items)."""
    record: ShardRecord | None = next((s for s in manifest.shards if s.index == index), None)
    if record is None:
        return False
    if (record.first_item, record.n_items) != (part[0].item.item_id, len(part)):
        raise ValueError(f"Shard {index} of this experiment holds items {record.first_item}+{record.n_items}, the plan "
                         f"now {part[0].item.item_id}+{len(part)}: write to a new folder, or overwrite=True.")
    return True


def _settings(runner: Runner, tokenizer: PreTrainedTokenizerBase, model_name: str, methods, generate, score: str,
              faithfulness: bool, removal: str, levels, steps, seeds, soft_samples, shard_items,
              options: Mapping | None) -> Settings:
    """The experiment's settings, every argument checked before the model runs."""
    names = check_methods(methods)
    if not names:
        raise ValueError("methods is empty: name at least one attribution method, e.g. ['grad_x_input', 'ig'].")
    if len(set(names)) != len(names):
        raise ValueError(f"methods lists a method twice: {names}.")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    check_removal(removal)
    if removal == "replace":
        neutral_id(tokenizer)
    checked = Options.from_mapping(options, [stack.n_layers for stack in runner.spec.stacks.values()]).to_json()
    return Settings(
        model=model_name, model_class=type(runner.model).__name__, kind=str(runner.spec.kind.value),
        n_layers={name: stack.n_layers for name, stack in runner.spec.stacks.items()}, methods=tuple(names), score=score,
        generate=as_int(generate, "generate", 1), faithfulness=bool(faithfulness), removal=removal,
        levels=tuple(check_levels(levels)), steps=as_int(steps, "steps", 1),
        seeds=as_int(seeds, "seeds", 1, None, f"seeds={seeds!r}: a faithfulness score means something only beside the "
                     "random-order baseline, so give at least 1 random order per item (default 3)."),
        soft_samples=as_int(soft_samples, "soft_samples", 1), shard_items=as_int(shard_items, "shard_items", 1),
        options={name: checked[name] for name in options or {}},
    )
