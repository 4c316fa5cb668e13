"""Per-thread standard output for in-process CLIs that run side by side.

`contextlib.redirect_stdout` swaps the process-wide `sys.stdout`, so two threads running the
embedded orchestrator CLI at once would print into each other's buffers, and a lock around
every call queues whole agent tasks behind each other. While any `thread_output` block is
open, `sys.stdout` and `sys.stderr` are proxies that write to the calling thread's own
streams, or to the streams they replaced for threads that set none.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["thread_output"]

_local = threading.local()
_lock = threading.Lock()
_open = 0
_replaced: dict[str, TextIO] = {}


class _Routed(io.TextIOBase):
    def __init__(self, slot: str, fallback: TextIO) -> None:
        self._slot = slot
        self._fallback = fallback

    def _target(self) -> TextIO:
        target: TextIO | None = getattr(_local, self._slot, None)
        return target if target is not None else self._fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def thread_output(out: TextIO, err: TextIO) -> Iterator[None]:
    """Send this thread's `sys.stdout` / `sys.stderr` writes to `out` / `err` in the block."""
    global _open
    with _lock:
        if _open == 0:
            _replaced.update(stdout=sys.stdout, stderr=sys.stderr)
            sys.stdout = _Routed("out", sys.stdout)
            sys.stderr = _Routed("err", sys.stderr)
        _open += 1
    previous = (getattr(_local, "out", None), getattr(_local, "err", None))
    _local.out, _local.err = out, err
    try:
        yield
    finally:
        _local.out, _local.err = previous
        with _lock:
            _open -= 1
            if _open == 0:
                # Put back what was there, unless someone replaced the proxies meanwhile.
                if isinstance(sys.stdout, _Routed):
                    sys.stdout = _replaced["stdout"]
                if isinstance(sys.stderr, _Routed):
                    sys.stderr = _replaced["stderr"]
                _replaced.clear()
