"""A one-slot background stage: the next batch's forward pass runs while the previous batch is
summarised and written (file writes wait on the disk, not the CPU; pyarrow and torch release
the GIL). At most one batch waits, so memory stays bounded; an error in the stage is raised
in the caller, and leaving the block early stops the stage before the shard file is closed."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_DONE = object()


class Stage(Generic[T]):
    """``with Stage(consume) as stage: stage.put(item)`` runs ``consume(item)`` on a thread, in order."""

    def __init__(self, consume: Callable[[T], None]) -> None:
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ecco-corpus-writer", daemon=True)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None and not self._stop.is_set():
                try:
                    self._consume(item)
                except BaseException as error:  # handed to the caller on its next put or at the end
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (waits while the previous one is still being consumed)."""
        self._raise()
        self._queue.put(item)

    def __enter__(self) -> Stage[T]:
        self._thread.start()
        return self

    def __exit__(self, kind: type | None, *rest: object) -> None:
        if kind is not None:
            self._stop.set()
        self._queue.put(_DONE)
        self._thread.join()
        if kind is None:
            self._raise()
