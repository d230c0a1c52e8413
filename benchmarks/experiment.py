"""An attribution experiment at dataset scale on SmolLM2 (bundled): tokens/s and memory over the run.

``--items`` (default 200) prompts, each a line of Python's standard library source (with at least
four words), continued greedily by ``--generate`` (default 3) tokens; every generated token
attributed with ``--methods`` (default grad_x_input and occlusion) and scored for faithfulness
(5 levels, ``--steps`` (default 5) curve steps, ``--seeds`` (default 1) random orders: light
settings, so that 200 items take minutes, not hours, on two cores). Items are written
``--shard-items`` (default 20) per shard; after each shard the benchmark prints the explained
tokens per second of that shard and the process's resident memory (current and peak), so one can
see that both stay flat: nothing of earlier shards is kept in memory.

Run: ``.venv/bin/python benchmarks/experiment.py [--items 200]``
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def prompts(n: int) -> list[str]:
    """``n`` distinct code lines of the standard library, in a fixed order."""
    found: list[str] = []
    seen: set[str] = set()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            text = line.strip()
            if len(text.split()) >= 4 and len(text) <= 60 and text not in seen and not text.startswith("#"):
                seen.add(text)
                found.append(text)
                if len(found) == n:
                    return found
    return found


def rss_mib() -> float:
    """The process's resident memory now, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--methods", default="grad_x_input,occlusion")
    parser.add_argument("--generate", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--shard-items", type=int, default=20)
    args = parser.parse_args()

    import ecco
    from ecco.experiment import api

    lm = ecco.from_pretrained("smollm2-135m", verbose=False)
    items = prompts(args.items)
    out = Path(tempfile.mkdtemp(prefix="ecco-experiment-"))
    rows = []
    last = [time.perf_counter()]
    original = api.register

    def timed(out_dir, manifest, record, settings):  # after each shard: its speed and the memory now
        original(out_dir, manifest, record, settings)
        now = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((record.index, record.n_items, record.n_targets, record.n_targets / (now - last[0]), rss_mib(), peak))
        last[0] = now
        print(f"shard {record.index:3d}: {record.n_items} items, {record.n_targets:4d} tokens, "
              f"{rows[-1][3]:6.2f} tokens/s, RSS {rows[-1][4]:7.1f} MiB, peak {peak:7.1f} MiB", flush=True)

    api.register = timed
    try:
        started = time.perf_counter()
        run = lm.attribute_dataset(items, args.methods.split(","), out, generate=args.generate, steps=args.steps,
                                   seeds=args.seeds, shard_items=args.shard_items, progress=False)
        total = time.perf_counter() - started
    finally:
        api.register = original
    speed = run.speed()
    print(f"\n{speed['items']} items, {speed['explained_tokens']} explained tokens in {total:.0f} s: "
          f"{speed['explained_tokens'] / total:.2f} tokens/s; per method: "
          + ", ".join(f"{m} {s:.0f} s" for m, s in speed["method_seconds"].items()))
    if len(rows) >= 3:
        first, rest = rows[1], rows[-1]  # shard 0 includes warm-up
        print(f"tokens/s, second shard vs last: {first[3]:.2f} vs {rest[3]:.2f} (ratio {rest[3] / first[3]:.2f}); "
              f"RSS second vs last: {first[4]:.0f} vs {rest[4]:.0f} MiB (ratio {rest[4] / first[4]:.2f}); "
              f"peak {first[5]:.0f} vs {rest[5]:.0f} MiB")
    print("disk:", f"{sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 2**20:.1f} MiB")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
