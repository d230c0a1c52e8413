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


def test_attribution_experiment_on_ray_equals_one_process(tmp_path, cluster):
    lm = ecco.from_model(tiny.model("gpt2"), tiny.tokenizer(), verbose=False)
    items = ["the cat sat on", ("a dog", " ran far"), "one two", ("it is", " a test"), "five"]
    options = {"generate": 2, "shard_items": 2, "steps": 4, "seeds": 2, "progress": False}
    local = lm.attribute_dataset(items, ["grad_x_input", "occlusion"], tmp_path / "local", **options)
    on_ray = lm.attribute_dataset(items, ["grad_x_input", "occlusion"], tmp_path / "ray", backend="ray", workers=2,
                                  **options)
    assert on_ray.complete and len(on_ray.shards) == 3 and len(on_ray) == 5
    for a, b in zip(on_ray.rows(), local.rows()):
        assert a["token_ids"] == b["token_ids"] and a["targets"] == b["targets"]
        for name in ("grad_x_input", "occlusion"):
            assert a[f"{name}.values"] == b[f"{name}.values"]  # float32 as stored: bit-exact
        assert a["faithfulness"] == b["faithfulness"]
    assert ray.is_initialized()
