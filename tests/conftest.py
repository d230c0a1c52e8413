"""Shared fixtures: offline mode, tiny random models, and helpers for reference computations."""
from __future__ import annotations

import contextlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import pytest
import torch

from tests import tiny

# Tiny models: one thread is faster than torch's default (thread start-up dominates), and the
# suite does not fight the browser and the notebook kernels for the machine's two cores.
torch.set_num_threads(1)

# FFN output projections per tiny architecture, written out here independently of ecco's
# registry so that tests compare ecco against the model, not against itself.
FFN_PATHS = {
    "gpt2": {"decoder": "transformer.h.{}.mlp.c_proj"},
    "gpt-neo": {"decoder": "transformer.h.{}.mlp.c_proj"},
    "llama": {"decoder": "model.layers.{}.mlp.down_proj"},
    "bert": {"encoder": "bert.encoder.layer.{}.output.dense"},
    "t5": {"encoder": "encoder.block.{}.layer.1.DenseReluDense.wo", "decoder": "decoder.block.{}.layer.2.DenseReluDense.wo"},
    "bart": {"encoder": "model.encoder.layers.{}.fc2", "decoder": "model.decoder.layers.{}.fc2"},
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny random GPT-2 and its tokenizer saved to a folder (for the command-line tests)."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tiny.model("gpt2").save_pretrained(path)
    tiny.tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer():
    return tiny.tokenizer()


def ffn_inputs(model: torch.nn.Module, arch: str, n_layers: dict[str, int], **inputs) -> tuple[object, dict]:
    """Run ``model(**inputs)`` with hand-placed hooks; returns (outputs, {stack: (layers, pos, neurons)})."""
    modules = dict(model.named_modules())
    seen: dict[str, list] = {stack: [] for stack in FFN_PATHS[arch]}
    handles = []
    for stack, pattern in FFN_PATHS[arch].items():
        for layer in range(n_layers[stack]):
            def hook(mod, args, stack=stack):
                seen[stack].append(args[0][0].detach().clone())

            handles.append(modules[pattern.format(layer)].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    return out, {stack: torch.stack(chunks) for stack, chunks in seen.items()}


def hook_count(model: torch.nn.Module) -> int:
    """All forward / pre-forward / backward hooks currently registered on ``model``."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(getattr(m, "_forward_hooks_with_kwargs", {})) for m in model.modules()
    )


def softmax_from_neuron_data(data: dict) -> np.ndarray:
    """The attention weights recomputed from a neuron view's queries, keys, scale and bias."""
    q, k = np.array(data["query"]), np.array(data["key"])
    bias = 0 if data["bias"] is None else np.array([[-np.inf if v is None else v for v in r] for r in data["bias"]])
    scores = q @ k.T * data["scale"] + bias
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


@contextlib.contextmanager
def hand_hook(model: torch.nn.Module, path: str, edit, pre: bool = True):
    """A hook placed by module path in a test: ``edit`` of the module's first input (``pre``), or
    of its (first) output; removed on exit."""
    module = dict(model.named_modules())[path]
    if pre:
        handle = module.register_forward_pre_hook(lambda m, args: (edit(args[0]), *args[1:]))
    else:
        handle = module.register_forward_hook(
            lambda m, a, out: (edit(out[0]), *out[1:]) if isinstance(out, tuple) else edit(out))
    try:
        yield
    finally:
        handle.remove()
