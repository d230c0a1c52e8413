"""The same corpus run on a Ray cluster: one actor per worker holds the model and processes
whole shards with :func:`~ecco.corpus.run.process_shard`; the driver plans the shards, lists
each one in the manifest as it completes, and merges the summaries at the end.

The model (its class, config and weights) and tokenizer travel to the workers through Ray's object store, so workers need ecco
(with the same torch and transformers) installed but no access to the model hub. Workers write
their shards straight into ``out_dir``, which must be on storage that the driver and every
worker see (one machine, or a shared file system on a cluster).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..models.registry import resolve
from ..progress import progress_bar
from ..runner import Runner
from .engine import Engine
from .run import Settings, ShardPlan, check_plan, plan_shards, process_shard, register
from .sources import Source
from .store import Manifest, ShardRecord


@dataclass
class ModelPayload:
    """What a worker rebuilds the model from: its class, config and weights (a live transformers
    model holds hooks and context variables that do not pickle)."""

    cls: type
    config: object
    weights: dict[str, torch.Tensor]
    dtype: torch.dtype

    @classmethod
    def of(cls, model: PreTrainedModel) -> ModelPayload:
        """The payload of ``model``."""
        return cls(type(model), model.config, {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   next(model.parameters()).dtype)

    def build(self) -> PreTrainedModel:
        """The model, in eval mode, with the driver's weights."""
        model = self.cls._from_config(self.config, torch_dtype=self.dtype)
        model.load_state_dict(self.weights, strict=True)
        return model.eval()


class ShardWorker:
    """A Ray actor's state: the model, its engine and where shards go."""

    def __init__(self, payload: ModelPayload, tokenizer: PreTrainedTokenizerBase, settings: Settings,
                 model_config: Mapping | None, out_dir: str, threads: int) -> None:
        torch.set_num_threads(threads)
        model = payload.build()
        runner = Runner(model, resolve(model, model_config))
        self.engine = Engine(runner, tokenizer, settings.capture)
        self.settings = settings
        self.out_dir = Path(out_dir)

    def process(self, plan: ShardPlan) -> ShardRecord:
        """Capture, summarise and write one shard; its manifest record."""
        record, _ = process_shard(self.engine, self.settings, plan, self.out_dir)
        return record


def import_ray():
    """Ray, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError("backend='ray' needs Ray: pip install 'ecco[ray]' (on the driver and every worker).") from error
    return ray


def start_ray(address: str | None, workers: int | None) -> bool:
    """Connect to the cluster at ``address`` / ``RAY_ADDRESS``, or start a local one bound to
    127.0.0.1 with ``workers`` CPUs (usage statistics off); True when ecco started it."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=2 * 2**30, log_to_driver=False)
    return True


@contextlib.contextmanager
def actor_pool(worker: type, runner: Runner, tokenizer: PreTrainedTokenizerBase, settings: object,
               model_config: Mapping | None, out: Path, workers: int | None, address: str | None) -> Iterator[object]:
    """A Ray ``ActorPool`` of ``workers`` actors (default: one per CPU of the cluster), each
    ``worker(payload, tokenizer, settings, model_config, out_dir, threads)`` holding the model
    rebuilt from the driver's weights; the actors are killed (and a cluster ecco started is shut
    down) when the block ends, also after an error."""
    ray = import_ray()
    started = start_ray(address, workers)
    actors = []
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        threads = max(1, int(ray.cluster_resources().get("CPU", n)) // n)
        remote = ray.remote(num_cpus=1)(worker)
        model_ref, tokenizer_ref = ray.put(ModelPayload.of(runner.model)), ray.put(tokenizer)
        actors = [remote.remote(model_ref, tokenizer_ref, settings, model_config, str(out), threads) for _ in range(n)]
        yield ray.util.ActorPool(actors)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def run_on_ray(runner: Runner, tokenizer: PreTrainedTokenizerBase, settings: Settings, model_config: Mapping | None,
               source: Source, out: Path, manifest: Manifest, workers: int | None, address: str | None,
               progress: bool) -> None:
    """Every shard not yet complete, on ``workers`` Ray actors (default: one per CPU of the cluster)."""
    with actor_pool(ShardWorker, runner, tokenizer, settings, model_config, out, workers, address) as pool:
        engine = Engine(runner, tokenizer, settings.capture)
        todo = (plan for plan in plan_shards(source, tokenizer, settings) if not check_plan(plan, manifest))
        bar = progress_bar(total=None, unit="shard", desc="ecco corpus (ray)", disable=not progress)
        began, tokens = time.perf_counter(), 0
        try:
            for record in pool.map_unordered(lambda actor, plan: actor.process.remote(plan), todo):
                register(out, manifest, record, engine, settings)
                tokens += record.n_tokens
                bar.set_postfix(tokens=tokens, tok_s=f"{tokens / (time.perf_counter() - began):.0f}")
                bar.update(1)
        finally:
            bar.close()
