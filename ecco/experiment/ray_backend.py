"""The same experiment on a Ray cluster: one actor per worker rebuilds the model (as corpus runs
do, :class:`~ecco.corpus.ray_backend.ModelPayload`) and runs whole shards of items with
:func:`~ecco.experiment.store.process_shard`; the driver lists each shard in the manifest as it
completes. Workers write into ``out_dir``, which every worker must see."""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ..corpus.ray_backend import ModelPayload, actor_pool
from ..models.registry import resolve
from ..progress import progress_bar
from ..runner import Runner
from .job import ItemJob, Prepared, Settings
from .store import Manifest, ShardRecord, process_shard, register


class ItemWorker:
    """A Ray actor's state: the model and the job that runs items on it."""

    def __init__(self, payload: ModelPayload, tokenizer: PreTrainedTokenizerBase, settings: Settings,
                 model_config: Mapping | None, out_dir: str, threads: int) -> None:
        torch.set_num_threads(threads)
        model = payload.build()
        self.job = ItemJob(Runner(model, resolve(model, model_config)), tokenizer, settings)
        self.out_dir = Path(out_dir)

    def process(self, index: int, items: list[Prepared]) -> ShardRecord:
        """Run and write one shard of items; its manifest record."""
        return process_shard(self.job, index, items, self.out_dir)


def run_on_ray(runner: Runner, tokenizer: PreTrainedTokenizerBase, settings: Settings, model_config: Mapping | None,
               todo: list[tuple[int, list[Prepared]]], out: Path, manifest: Manifest, n_items: int,
               workers: int | None, address: str | None, progress: bool) -> None:
    """Every shard in ``todo`` on ``workers`` Ray actors (default: one per CPU of the cluster)."""
    with actor_pool(ItemWorker, runner, tokenizer, settings, model_config, out, workers, address) as pool:
        bar = progress_bar(total=n_items, initial=manifest.totals()["items"], unit="item", desc="ecco attribute (ray)",
                           disable=not progress)
        began, tokens = time.perf_counter(), 0
        try:
            for record in pool.map_unordered(lambda actor, shard: actor.process.remote(*shard), todo):
                register(out, manifest, record, settings)
                tokens += record.n_targets
                bar.set_postfix(tokens=tokens, tok_s=f"{tokens / (time.perf_counter() - began):.2f}")
                bar.update(record.n_items)
        finally:
            bar.close()
