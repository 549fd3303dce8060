"""A spawned child process that owns emulated hardware and answers requests over a pipe.

The child sends one "ready" message (e.g. its ports), then `serve` answers each
request with (True, result) or (False, exception) until it gets None or the
parent goes away, so no emulator outlives the command that started it.

The child ignores SIGINT: Ctrl-C in a terminal reaches the whole process group,
and emulated motors that vanished mid-read would turn a clean stop into a bus
error. The parent stops the child after it has released the motors. A child
that fails before it is ready sends its error back, and start() raises it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class ChildStartError(RuntimeError):
    """A child process did not get ready: the message carries the child's own error."""


@dataclass(frozen=True)
class _Failed:
    error: str  # "ValueError: ..." as the child saw it
    details: str  # its traceback, for the parent's log


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


def _run(target: Callable[..., None], args: tuple, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        target(*args, conn)
    except Exception as exc:
        try:
            conn.send(_Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except OSError:
            pass  # the parent is gone
        sys.exit(1)


class ChildProcess:
    """`target(*args, conn)` runs in the child: it must send its ready message, then call serve()."""

    def __init__(self, target: Callable[..., None], args: tuple, name: str) -> None:
        self._target, self._args, self.name = target, args, name
        self._conn: Any = None
        self.process: mp.process.BaseProcess | None = None

    def start(self, timeout_s: float = 60.0) -> Any:
        """Start the child and return its ready message; ChildStartError with the child's error if it fails."""
        ctx = mp.get_context("spawn")  # no forked copies of the parent's threads or open ports
        self._conn, child = ctx.Pipe()
        process = ctx.Process(target=_run, args=(self._target, self._args, child), name=self.name, daemon=True)
        try:
            with _sigint_ignored():  # the child is born ignoring Ctrl-C, before its first import
                process.start()
        except BaseException:
            self._conn.close()
            raise
        finally:
            child.close()
        self.process = process
        try:
            if not self._conn.poll(timeout_s):
                ready: Any = _Failed(f"no word from it in {timeout_s:g} s", "")
            else:
                ready = self._conn.recv()
        except EOFError:
            process.join(timeout=5)
            ready = _Failed(f"it exited (code {process.exitcode}) before it was ready", "")
        except BaseException:
            self.stop()
            raise
        if isinstance(ready, _Failed):
            log.debug("%s: %s", self.name, ready.details)
            self.stop()
            raise ChildStartError(f"{self.name} failed to start: {ready.error}")
        return ready

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


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored here meanwhile, so a child spawned now inherits it (signals are set in the main thread only).

    A Ctrl-C in these few milliseconds is lost; the next one is not."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
