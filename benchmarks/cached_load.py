"""Load time of the bundled SmolLM2: the first load (GGUF conversion, then saved to ecco's
cache) and a load from the cache, in a fresh cache folder.

Target: a load from the cache takes under 5 s (it was an assertion in the integration tests;
timings belong here, where a loaded machine cannot fail a test).
Run: ``.venv/bin/python benchmarks/cached_load.py``.
"""
from __future__ import annotations

import os
import tempfile
import time

import torch

from ecco.models import bundled

TARGET_SECONDS = 5.0


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["ECCO_CACHE_DIR"] = cache
        start = time.perf_counter()
        bundled.load_bundled("smollm2-135m")
        first = time.perf_counter() - start
        start = time.perf_counter()
        bundled.load_bundled("smollm2-135m")
        cached = time.perf_counter() - start
    verdict = "ok" if cached < TARGET_SECONDS else "SLOWER THAN TARGET"
    print(f"first load (conversion) {first:.2f} s; cached load {cached:.2f} s (target < {TARGET_SECONDS:.0f} s): {verdict}")


if __name__ == "__main__":
    main()
