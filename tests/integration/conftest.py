"""The real bundled models, loaded once per test session (through ecco's conversion cache)."""
from __future__ import annotations

import pytest

import ecco


@pytest.fixture(scope="session")
def smollm2() -> ecco.LM:
    return ecco.from_pretrained("smollm2-135m", activations=True, attention=True, verbose=False)


@pytest.fixture(scope="session")
def minilm() -> ecco.LM:
    return ecco.from_pretrained("minilm-l6", activations=True, attention=True, verbose=False)
