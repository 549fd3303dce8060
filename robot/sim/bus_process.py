"""Serve a VirtualBus from a child process, so its pacing does not share a GIL with the driver.

Benchmarks use it for honest timings; tests use the in-process VirtualBus,
whose motors they can reach directly.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from typing import Any

from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor


def _serve(make_motors: Callable[[], Sequence[VirtualMotor]], name: str, conn: Any) -> None:
    with VirtualBus(make_motors(), name=name) as bus:
        conn.send(bus.port)
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone: leave with it
            if request is None:
                return
            method, args = request
            try:
                conn.send((True, getattr(bus, method)(*args)))
            except Exception as exc:  # report it to the caller, keep serving
                conn.send((False, exc))


class VirtualBusProcess:
    """`make_motors` must be picklable: a module-level function or a functools.partial of one."""

    def __init__(self, make_motors: Callable[[], Sequence[VirtualMotor]], *, name: str = "virtual") -> None:
        self._make_motors = make_motors
        self.name = name
        self.port = ""
        self._conn: Any = None
        self._process: mp.process.BaseProcess | None = None

    def start(self) -> VirtualBusProcess:
        ctx = mp.get_context("spawn")  # no forked copies of the parent's threads or open ports
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(self._make_motors, self.name, child),
                                    name=f"virtual-bus-{self.name}", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(30):
            self.stop()
            raise RuntimeError(f"virtual bus {self.name}: the child process did not start")
        self.port = self._conn.recv()
        return self

    def call(self, method: str, *args: Any) -> Any:
        """Run VirtualBus.<method>(*args) in the child, e.g. call("drop_next", 2)."""
        self._conn.send((method, args))
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._process = None

    def __enter__(self) -> VirtualBusProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
