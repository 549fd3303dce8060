"""A hand on a virtual arm: puts its joints at given angles, as a person moving the arm would.

How a motor's shaft relates to its joint is the motor's mounting: shaft ticks =
zero + sign * angle / (rad per tick). The virtual arms are built with the ideal
mounting (the one their factory calibration describes); tests give other
mountings to check that calibration finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from robot.arm import RAD_PER_TICK, ArmSpec
from robot.dynamixel.control_table import CENTER_TICK
from robot.sim.virtual_bus import VirtualBus


@dataclass(frozen=True)
class Mount:
    sign: int = 1  # -1: the shaft turns against the joint's positive direction
    zero: float = CENTER_TICK  # shaft ticks at joint angle 0


def ideal_mounting(spec: ArmSpec) -> dict[int, Mount]:
    """Primaries forward with 0 rad at tick 2048; reversed shadows mirrored, as virtual_arm_motors sets them."""
    mounting = {}
    for j in spec.joints:
        mounting[j.motor_id] = Mount()
        if j.shadow_id is not None:
            mounting[j.shadow_id] = Mount(-1 if j.shadow_reversed else 1)
    return mounting


def pose_arm(bus: VirtualBus, spec: ArmSpec, angles: Mapping[str, float],
             mounting: Mapping[int, Mount] | None = None) -> None:
    """Move each named joint (and its shadow) to its angle in rad."""
    mounting = mounting or ideal_mounting(spec)
    for j in spec.joints:
        if j.name not in angles:
            continue
        for motor_id in (j.motor_id, j.shadow_id):
            if motor_id is not None:
                m = mounting[motor_id]
                bus.set_shaft(motor_id, m.zero + m.sign * angles[j.name] / RAD_PER_TICK)
