"""SimClock: the loop's time is the world's; sleeping until t runs the simulation up to t.

Every loop then runs in lockstep with the simulation, and the result does not
depend on how fast this machine simulates and renders: a slow step makes the
run take longer, never different. `realtime=True` also waits for the wall
clock, to watch a run at its real pace.
"""

from __future__ import annotations

import time
from typing import Protocol


class Advancer(Protocol):
    def advance(self, t: float) -> float: ...


class SimClock:
    def __init__(self, world: Advancer, start: float = 0.0, *, realtime: bool = False) -> None:
        self._world = world
        self._t = start
        self._realtime = realtime
        self._wall_origin = time.perf_counter() - start

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        if t <= self._t:
            return
        self._t = self._world.advance(t)
        if self._realtime:
            delay = self._wall_origin + self._t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
