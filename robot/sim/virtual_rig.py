"""Start a virtual bus for every arm of a rig whose port is virtual, in this process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from robot.rig import Rig
from robot.sim.virtual_arm import virtual_arm_bus
from robot.sim.virtual_bus import VirtualBus


@contextmanager
def virtual_buses(rig: Rig) -> Iterator[tuple[Rig, dict[str, VirtualBus]]]:
    """Yield the rig with virtual ports replaced by live pseudo-terminals, and the buses by arm name."""
    with ExitStack() as stack:
        buses = {
            a.name: stack.enter_context(virtual_arm_bus(a.name, a.spec, baud=a.baud))
            for a in rig.arms
            if a.virtual
        }
        yield rig.with_ports({name: bus.port for name, bus in buses.items()}), buses
