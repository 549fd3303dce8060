"""Start a virtual bus for every arm of a rig whose port is virtual."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from robot.rig import VIRTUAL_PORT, RigArm
from robot.sim.virtual_arm import virtual_arm_bus
from robot.sim.virtual_bus import VirtualBus


@contextmanager
def virtual_buses(arms: Sequence[RigArm]) -> Iterator[tuple[list[RigArm], dict[str, VirtualBus]]]:
    """Yield the arms with virtual ports replaced by live pseudo-terminals, and the buses by arm name."""
    with ExitStack() as stack:
        buses = {
            a.name: stack.enter_context(virtual_arm_bus(a.name, a.spec, baud=a.baud))
            for a in arms
            if a.port == VIRTUAL_PORT
        }
        yield [dataclasses.replace(a, port=buses[a.name].port) if a.name in buses else a for a in arms], buses
