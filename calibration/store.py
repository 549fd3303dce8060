"""Find an arm's calibration for a rig: its file, or for a virtual arm with no file, the factory one."""

from __future__ import annotations

from calibration.file import ArmCalibration, CalibrationError, MotorCalibration, calibration_path, gripper_limits
from calibration.poses import DEFAULT_LIMITS, GRIPPER
from robot.rig import Rig, RigArm
from robot.sim.virtual_arm import gripper_range


def factory_calibration(arm: RigArm) -> ArmCalibration:
    """What the virtual arms are built to: homing offset 0, reversed shadows, ALOHA's gripper range."""
    shadows = {j.shadow_id: j.shadow_reversed for j in arm.spec.joints if j.shadow_id is not None}
    motors = tuple(MotorCalibration(m.motor_id, m.model.name, m.joint or "", 0, shadows.get(m.motor_id, False))
                   for m in arm.spec.motors())
    closed, open_ = gripper_range(arm.spec)
    limits = {**DEFAULT_LIMITS, GRIPPER: gripper_limits(closed, open_)}
    return ArmCalibration(arm.name, arm.spec.kind, motors, limits, closed, open_, created="factory")


def load_calibration(rig: Rig, arm: RigArm) -> tuple[ArmCalibration, str]:
    """The arm's calibration and where it came from; checked against the rig's motors for that arm."""
    path = calibration_path(rig.calibration_dir, arm.name)
    if path.exists():
        calibration = ArmCalibration.load(path)
        calibration.check_spec(arm.spec, str(path), arm=arm.name)
        return calibration, str(path)
    if arm.virtual:
        return factory_calibration(arm), "the virtual arm's factory calibration"
    raise CalibrationError(f"arm {arm.name} has no calibration at {path}: run "
                           f"'tandem-calibrate --rig {rig.cli_arg} --arm {arm.name}'")
