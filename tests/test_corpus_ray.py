"""The Ray backend on a local cluster (127.0.0.1, 2 CPUs, bounded memory): the same shards and
summaries as the single-process run — token ids and top-k exactly, activations bit-exactly."""
from __future__ import annotations

import os

import pytest

import ecco
from tests import tiny
from tests.test_corpus_resume import OPTIONS, assert_same_run, texts

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", object_store_memory=300 * 2**20,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_equals_one_process(tmp_path, cluster):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    local = lm.run_corpus(texts(), tmp_path / "local", hidden_states=True, **OPTIONS)
    on_ray = lm.run_corpus(texts(), tmp_path / "ray", hidden_states=True, backend="ray", workers=2, **OPTIONS)
    assert on_ray.manifest.complete and len(on_ray.manifest.shards) == len(local.manifest.shards) > 2
    assert_same_run(on_ray, local)
    assert ray.is_initialized()  # ecco did not shut down a cluster it did not start
