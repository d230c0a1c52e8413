"""A corpus run of the bundled SmolLM2 over a slice of the Python standard library: stored rows
against hooks placed by hand on the model, and the top tokens' contexts (the lens summary is
checked against the hand formula on a tiny model: over 30 layers x 49k tokens it is slow here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ecco.corpus import python_stdlib

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_stdlib_slice_on_smollm2(smollm2, tmp_path):
    source = python_stdlib(max_files=4)
    run = smollm2.run_corpus(source, tmp_path / "run", layers=[0, 29], max_tokens=128, overlap=16,
                             batch_tokens=512, progress=False)
    texts = [doc.text for doc in source.documents()]
    assert run.manifest.totals()["documents"] == 4
    assert "".join(run.tokens(0)) == texts[0] and "".join(run.tokens(1)) == texts[1]
    ids = smollm2.tokenizer(texts[1], add_special_tokens=False)["input_ids"]
    assert run.token_ids(1) == ids and len(ids) <= 128
    seen = []
    model = smollm2.model
    handles = [model.model.layers[i].mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.append(a[0][0]))
               for i in (0, 29)]
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    for layer, expected in zip((0, 29), seen):
        stored = run.activations(layer, 1).astype(np.float32)
        np.testing.assert_allclose(stored, expected.numpy(), atol=2e-2 * float(expected.abs().max()), rtol=1e-2)
    value, context = run.top_tokens(29, 100, k=1)[0]
    row = run.row(context.doc_id, context.position)
    assert value == float(run.array("ffn.decoder.29", np.array([row]))[0, 100])
    assert context.token == run.tokens(context.doc_id)[context.position]
