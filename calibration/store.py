"""Find an arm's calibration for a rig: its file, or for a virtual arm with no file, the factory one."""

from __future__ import annotations

from calibration.file import ArmCalibration, CalibrationError, MotorCalibration, calibration_path, gripper_limits
from robot.rig import Rig, RigArm


def factory_calibration(arm: RigArm) -> ArmCalibration:
    """What the virtual arms are built to: homing offset 0, reversed shadows, the kind's gripper range."""
    shadows = {j.shadow_id: j.shadow_reversed for j in arm.spec.joints if j.shadow_id is not None}
    motors = tuple(MotorCalibration(m.motor_id, m.model.name, m.joint or "", 0, shadows.get(m.motor_id, False))
                   for m in arm.spec.motors())
    spec = arm.spec
    limits = {**spec.limits, spec.gripper: gripper_limits(spec.gripper_closed, spec.gripper_open)}
    return ArmCalibration(arm.name, spec.kind, motors, limits, spec.gripper_closed, spec.gripper_open,
                          created="factory")


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
