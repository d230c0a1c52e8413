"""The model state for one ecco call, restored afterwards whatever happens."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel


@contextlib.contextmanager
def model_session(model: PreTrainedModel, *, eager_attention: bool, grad: bool = False) -> Iterator[None]:
    """Eval mode (and eager attention when asked) for one call; the user's settings come back."""
    was_training = model.training
    attn_before = getattr(model.config, "_attn_implementation", None)
    switch_attn = eager_attention and attn_before not in (None, "eager")
    try:
        model.eval()
        if switch_attn:
            model.set_attn_implementation("eager")
            if model.config._attn_implementation != "eager":  # transformers only warns for such models
                raise ValueError(
                    f"{type(model).__name__} cannot switch its attention to eager (it stays "
                    f"{model.config._attn_implementation!r}), and only eager attention gives the attention weights "
                    "(attention=True) and the attention softmax that LRP and the attention neuron view follow. Create "
                    "the LM with attention=False (and another method), or load the model with attn_implementation='eager'."
                )
        with torch.set_grad_enabled(grad):
            yield
    finally:
        if switch_attn:
            model.set_attn_implementation(attn_before)
        model.train(was_training)
