"""A rig's arms connected, calibrated and made ready for the control loop; and released safely.

Connecting checks each arm's motors against its calibration file, writes the
file's homing offsets and directions where the motors differ, sets Return Delay
Time 0 and each shadow's Secondary ID, and readies the followers: position mode,
the gripper in current-based position mode under its current limit, goals set to
where each motor is before torque goes on (a stale goal would make it jump).
EEPROM is written only where a value differs. Leaders stay limp.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from calibration.file import ArmCalibration
from calibration.joint_map import JointMap
from calibration.store import load_calibration
from robot.arm import Arm
from robot.dynamixel.control_table import OPERATING_MODES, MotorModel
from robot.dynamixel.errors import DynamixelError
from robot.loop import JointLimits
from robot.rig import Rig, RigArm

log = logging.getLogger(__name__)
POSITION = OPERATING_MODES["position"]
CURRENT_BASED_POSITION = OPERATING_MODES["current_based_position"]


@dataclass
class ConnectedRig:
    rig: Rig
    arms: dict[str, Arm]
    calibrations: dict[str, ArmCalibration]

    def limits(self) -> dict[str, JointLimits]:
        return {name: JointLimits(*self.calibrations[name].limit_arrays(arm.joint_names))
                for name, arm in self.arms.items()}

    def joint_maps(self) -> list[tuple[str, str, JointMap]]:
        return [(p.leader, p.follower, JointMap(self.arms[p.follower].spec, self.calibrations[p.leader],
                                                self.calibrations[p.follower], p))
                for p in self.rig.pairs]

    def follower_arms(self) -> dict[str, Arm]:
        return {a.name: self.arms[a.name] for a in self.rig.followers}

    def release(self, *, torque_off: bool = True, hold_s: float = 0.5) -> list[str]:
        """Followers hold where they are, then (if asked) torque off; leaders limp. Returns what failed.

        Each arm, and within it each motor, is handled on its own: a dead bus or a failed motor never
        keeps the others from stopping. Every problem names the motors that may still be torqued.
        """
        problems = []
        live = [a for a in self.rig.arms if self.arms[a.name].bus.is_open]
        for arm_cfg in (a for a in live if a.role == "follower"):
            try:
                self.arms[arm_cfg.name].hold()
            except (DynamixelError, OSError) as exc:
                problems.append(f"{arm_cfg.name}: could not hold position: {exc}")
        if torque_off and hold_s > 0:
            time.sleep(hold_s)
        for arm_cfg in live:
            if arm_cfg.role == "follower" and not torque_off:
                continue
            try:
                self.arms[arm_cfg.name].set_torque(False)
            except (DynamixelError, OSError) as exc:
                problems.append(f"{arm_cfg.name}: could not turn torque off: {exc}")
        return problems


def current_units(milliamps: int, model: MotorModel, what: str) -> int:
    """A current in mA as the model's Current Limit counts it (XM430/XM540: 2.69 mA a unit, XL330: 1 mA): the rig
    file speaks mA, so one figure means one current on every motor. More than the motor allows is refused."""
    units = max(1, round(milliamps / model.effort_unit))
    most = model.register("Current Limit").default  # the e-Manual's initial value is the motor's maximum
    if units > most:
        raise ValueError(f"{what}: gripper_current_limit {milliamps} mA is more than a {model.name} allows "
                         f"({most * model.effort_unit:.0f} mA)")
    return units


def _prepare(arm_cfg: RigArm, arm: Arm, calibration: ArmCalibration) -> None:
    bus = arm.bus
    with bus.torque_disabled():
        for motor_id in bus.ids:
            bus.write_if_different(motor_id, "Return Delay Time", 0)
        for j in arm.spec.joints:
            if j.shadow_id is not None:
                bus.write_if_different(j.shadow_id, "Secondary ID", j.motor_id)
        calibration.apply(bus)
        if arm_cfg.role == "follower":
            for j in arm.spec.joints:
                model = bus.model_of(j.motor_id)
                if j.name == arm.spec.gripper and model.has("Current Limit"):
                    limit = current_units(arm_cfg.gripper_current_limit, model, f"{arm_cfg.name} gripper")
                    bus.write_if_different(j.motor_id, "Operating Mode", CURRENT_BASED_POSITION)
                    bus.write_if_different(j.motor_id, "Current Limit", limit)
                    bus.write(j.motor_id, "Goal Current", limit)
                else:
                    bus.write_if_different(j.motor_id, "Operating Mode", POSITION)
    if arm_cfg.role == "leader":
        bus.set_torque(False)
        return
    arm.write_positions(arm.read().position)  # hold where it is when torque comes on
    arm.set_torque(True)


@contextmanager
def connect(rig: Rig, *, torque_off_at_exit: bool = True, say: Callable[[str], None] = print,
            **bus_options: object) -> Iterator[ConnectedRig]:
    """Open, check and prepare every arm (in parallel); release them on the way out, whatever happened.

    The rig file's bus settings (e.g. the simulated rig's read deadline) apply unless `bus_options` says otherwise.
    """
    bus_options = {**rig.bus_options, **bus_options}
    arms: dict[str, Arm] = {}
    calibrations: dict[str, ArmCalibration] = {}
    for arm_cfg in rig.arms:
        calibration, source = load_calibration(rig, arm_cfg)
        say(f"{arm_cfg.name}: {arm_cfg.spec.kind} on {arm_cfg.port}, calibration from {source}")
        calibrations[arm_cfg.name] = calibration
        arms[arm_cfg.name] = Arm.on_port(arm_cfg.name, arm_cfg.spec, arm_cfg.port, arm_cfg.baud, **bus_options)

    def open_and_prepare(arm_cfg: RigArm) -> None:
        arm = arms[arm_cfg.name].open()
        calibrations[arm_cfg.name].check_live(arm.bus, arm_cfg.name)
        _prepare(arm_cfg, arm, calibrations[arm_cfg.name])

    connected = ConnectedRig(rig, arms, calibrations)
    try:
        with ThreadPoolExecutor(max_workers=len(rig.arms)) as pool:
            for future in [pool.submit(open_and_prepare, a) for a in rig.arms]:
                future.result()
        yield connected
    finally:
        try:
            for problem in connected.release(torque_off=torque_off_at_exit):
                say(f"WARNING: {problem}")
        finally:
            for arm in arms.values():
                arm.close()
