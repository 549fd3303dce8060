"""Serve a VirtualBus from a child process, so its pacing does not share a GIL with the driver.

Benchmarks use it for honest timings; tests use the in-process VirtualBus,
whose motors they can reach directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from robot.sim.child_process import ChildProcess, serve
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor


def _serve(make_motors: Callable[[], Sequence[VirtualMotor]], name: str, conn: Any) -> None:
    with VirtualBus(make_motors(), name=name) as bus:
        conn.send(bus.port)
        serve(conn, lambda request: getattr(bus, request[0])(*request[1]))


class VirtualBusProcess:
    """`make_motors` must be picklable: a module-level function or a functools.partial of one."""

    def __init__(self, make_motors: Callable[[], Sequence[VirtualMotor]], *, name: str = "virtual") -> None:
        self.name = name
        self.port = ""
        self._child = ChildProcess(_serve, (make_motors, name), f"virtual-bus-{name}")

    @property
    def _process(self) -> Any:
        return self._child.process

    def start(self) -> VirtualBusProcess:
        self.port = self._child.start(timeout_s=30)
        return self

    def call(self, method: str, *args: Any) -> Any:
        """Run VirtualBus.<method>(*args) in the child, e.g. call("drop_next", 2)."""
        return self._child.request((method, args))

    def stop(self) -> None:
        self._child.stop()

    def __enter__(self) -> VirtualBusProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
