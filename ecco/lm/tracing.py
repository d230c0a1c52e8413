"""``lm.trace``: causal tracing / activation patching (being built)."""
from __future__ import annotations


def trace(lm, *args, **kwargs):
    """Not built yet."""
    raise NotImplementedError("lm.trace is being built")
