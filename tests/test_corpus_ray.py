"""The Ray backend on a local cluster (127.0.0.1, 2 CPUs, bounded memory): the same shards and
summaries as the single-process run — token ids and top-k exactly, activations bit-exactly."""
from __future__ import annotations

import os

import numpy as np
import pytest

import ecco
from tests import tiny
from tests.test_corpus_resume import OPTIONS, texts

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
    assert on_ray.table.column("token_id").to_pylist() == local.table.column("token_id").to_pylist()
    for column in local.columns:
        np.testing.assert_array_equal(on_ray.array(column), local.array(column))
    for name, summary in local.summary.neurons.items():
        other = on_ray.summary.neurons[name]
        np.testing.assert_array_equal(other.top_values, summary.top_values)
        np.testing.assert_array_equal(other.top_doc_ids, summary.top_doc_ids)
        np.testing.assert_array_equal(other.top_positions, summary.top_positions)
        np.testing.assert_array_equal(other.histogram, summary.histogram)
        np.testing.assert_allclose(other.mean, summary.mean, rtol=1e-12)
    np.testing.assert_allclose(on_ray.summary.lens.mean_kl, local.summary.lens.mean_kl, rtol=1e-12)
    assert ray.is_initialized()  # ecco did not shut down a cluster it did not start
