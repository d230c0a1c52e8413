"""Memory of the benchmark's own process, read from /proc/self/status (Linux), for the scripts here."""
from __future__ import annotations

import threading
from pathlib import Path


def status_mib(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status now, MiB: ``VmRSS`` (resident) or ``RssAnon`` (what the
    process allocated, without memory-mapped files, whose pages the kernel can drop)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """The peak of :func:`status_mib` (``field``) while the block runs, sampled every 10 ms in a
    thread; ``growth`` is the peak above the value at entry."""

    def __init__(self, field: str = "VmRSS") -> None:
        self.field = field

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = status_mib(self.field)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, status_mib(self.field))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_mib(self.field))

    @property
    def growth(self) -> float:
        """Peak MiB above the value at entry."""
        return self.peak - self.base
