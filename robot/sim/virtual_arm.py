"""Virtual motors for an arm spec, set up as the arm's maker ships them."""

from __future__ import annotations

from collections.abc import Mapping

from robot.arm import ArmSpec
from robot.dynamixel.control_table import CENTER_TICK, get_model
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor


def virtual_arm_motors(
    spec: ArmSpec, *, baud: int = 1_000_000, positions: Mapping[str, int] | None = None
) -> list[VirtualMotor]:
    """One VirtualMotor per motor of `spec`; shadows already follow their primary (Secondary ID)."""
    positions = positions or {}
    motors = []
    for j in spec.joints:
        model = get_model(j.model)
        ticks = positions.get(j.name, CENTER_TICK)
        motors.append(VirtualMotor(model, j.motor_id, baud=baud, position=ticks))
        if j.shadow_id is not None:
            settings = {"Secondary ID": j.motor_id, "Drive Mode": int(j.shadow_reversed)}
            motors.append(VirtualMotor(model, j.shadow_id, baud=baud, position=ticks, settings=settings))
    return motors


def virtual_arm_bus(name: str, spec: ArmSpec, **options) -> VirtualBus:
    return VirtualBus(virtual_arm_motors(spec, **options), name=name)
