"""A spawned child process that owns emulated hardware and answers requests over a pipe.

The child sends one "ready" message (e.g. its ports), then `serve` answers each
request with (True, result) or (False, exception) until it gets None or the
parent goes away, so no emulator outlives the command that started it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any


def serve(conn: Any, answer: Callable[[Any], Any]) -> None:
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: leave with it
        if request is None:
            return
        try:
            conn.send((True, answer(request)))
        except Exception as exc:  # report it to the caller, keep serving
            conn.send((False, exc))


class ChildProcess:
    """`target(*args, conn)` runs in the child: it must send its ready message, then call serve()."""

    def __init__(self, target: Callable[..., None], args: tuple, name: str) -> None:
        self._target, self._args, self.name = target, args, name
        self._conn: Any = None
        self.process: mp.process.BaseProcess | None = None

    def start(self, timeout_s: float = 60.0) -> Any:
        """Start the child and return its ready message."""
        ctx = mp.get_context("spawn")  # no forked copies of the parent's threads or open ports
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=self._target, args=(*self._args, child), name=self.name, daemon=True)
        self.process.start()
        child.close()
        if not self._conn.poll(timeout_s):
            self.stop()
            raise RuntimeError(f"{self.name}: the child process did not start")
        return self._conn.recv()

    def request(self, request: Any) -> Any:
        self._conn.send(request)
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self._conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()
        self.process = None
