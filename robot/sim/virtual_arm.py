"""Virtual motors for an arm spec, set up as the arm's maker ships them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from robot.arm import RAD_PER_TICK, ArmSpec, rad_to_ticks, ticks_to_rad
from robot.dynamixel.control_table import CENTER_TICK, get_model
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor


def gripper_ticks(spec: ArmSpec, opening: float) -> int:
    """The tick nearest `opening` (0 closed .. 1 open) that still reads inside the gripper range.

    The range's ends are the kind's figures in rad, not whole ticks: the nearest tick to an end can read a
    hair beyond it (ALOHA's follower open end, 1.4910 rad, is tick 3019.98), and a motor rests on a tick.
    """
    closed, open_ = spec.gripper_closed, spec.gripper_open
    lo, hi = sorted((closed, open_))
    first, last = math.ceil(lo / RAD_PER_TICK + CENTER_TICK), math.floor(hi / RAD_PER_TICK + CENTER_TICK)
    return min(max(round((closed + opening * (open_ - closed)) / RAD_PER_TICK + CENTER_TICK), first), last)


def gripper_angle(spec: ArmSpec, opening: float) -> float:
    """`gripper_ticks` in rad: where a hand puts the gripper so that the arm reads inside its range."""
    return float(ticks_to_rad(gripper_ticks(spec, opening)))


def start_positions(spec: ArmSpec) -> dict[str, int]:
    """Every joint where the kind rests (0 rad unless it says), the gripper open (as far as it opens inside its
    range)."""
    ticks = {joint: int(rad_to_ticks(angle)) for joint, angle in spec.rest_angles().items()}
    return {**ticks, spec.gripper: gripper_ticks(spec, 1.0)}


def virtual_arm_motors(
    spec: ArmSpec, *, baud: int = 1_000_000, positions: Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[VirtualMotor]:
    """One VirtualMotor per motor of `spec`; shadows already follow their primary (Secondary ID)."""
    positions = start_positions(spec) if positions is None else positions
    motors = []
    for j in spec.joints:
        model = get_model(j.model)
        ticks = positions.get(j.name, CENTER_TICK)
        motors.append(VirtualMotor(model, j.motor_id, baud=baud, position=ticks, clock=clock))
        if j.shadow_id is not None:
            settings = {"Secondary ID": j.motor_id, "Drive Mode": int(j.shadow_reversed)}
            motors.append(VirtualMotor(model, j.shadow_id, baud=baud, position=ticks, settings=settings, clock=clock))
    return motors


def virtual_arm_bus(name: str, spec: ArmSpec, **options) -> VirtualBus:
    return VirtualBus(virtual_arm_motors(spec, **options), name=name)
