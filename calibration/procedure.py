"""Calibrate an arm from two poses a person puts it in, and check an arm against its calibration.

With torque off, every motor's Homing Offset is set to 0 and Drive Mode to
forward; the person puts the arm in the reference pose (gripper closed), then in
the second pose (gripper open); the arm's kind holds the two poses. Each motor's
move between the poses gives its direction (the sign of the move against the
pose table) and, with the reference angle, its homing offset. Shadows are calibrated like any motor, from their own
readings, so a shadow mounted either way ends up reading what its primary reads.
Nothing is kept in the motors that the file does not also say: re-running is safe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration.file import ArmCalibration, CalibrationError, MotorCalibration, gripper_limits
from robot.arm import RAD_PER_TICK, Arm, ticks_to_rad
from robot.dynamixel.control_table import CENTER_TICK, TICKS_PER_TURN

Prompt = Callable[[str], None]  # show the instruction, return once the arm is in place
MIN_MOVE_RATIO, MAX_MOVE_RATIO = 0.5, 1.5  # a joint's move between poses, against the pose table's


def _joint_of(motor_joint: str) -> str:
    return motor_joint.removesuffix("_shadow")


def _wrapped(delta: np.ndarray) -> np.ndarray:
    """Ticks moved, allowing for a reading that wrapped past 0/4095 between the poses."""
    return (delta + TICKS_PER_TURN // 2) % TICKS_PER_TURN - TICKS_PER_TURN // 2


def calibrate_arm(arm: Arm, prompt: Prompt) -> ArmCalibration:
    bus = arm.bus
    motors = bus.motors
    spec = arm.spec
    primaries_first = sorted(range(len(motors)), key=lambda i: (motors[i].joint or "").endswith("_shadow"))
    bus.set_torque(False)
    for i in primaries_first:
        bus.configure(motors[i].motor_id, reverse=False, homing_offset=0)

    prompt(spec.calibration.reference_prompt())
    first = bus.read_state().position.astype(np.int64)
    prompt(spec.calibration.second_prompt(spec.gripper))
    second = bus.read_state().position.astype(np.int64)

    reference, target = spec.calibration.reference_angles(), spec.calibration.second_angles()
    moved = _wrapped(second - first)
    reverse = np.zeros(len(motors), dtype=bool)
    problems = []
    for i, m in enumerate(motors):
        joint = _joint_of(m.joint or "")
        if joint == spec.gripper:
            continue
        expected = (target[joint] - reference[joint]) / RAD_PER_TICK
        ratio = moved[i] / expected
        if not MIN_MOVE_RATIO <= abs(ratio) <= MAX_MOVE_RATIO:
            problems.append(f"  {m.joint} (motor {m.motor_id}) moved {math.degrees(moved[i] * RAD_PER_TICK):+.0f} "
                            f"degrees between the poses; the second pose needs about "
                            f"{math.degrees(expected * RAD_PER_TICK):+.0f}")
        reverse[i] = ratio < 0
    if problems:
        raise CalibrationError(f"arm {arm.name}: the two poses do not fit the pose table; nothing was saved:\n"
                               + "\n".join(problems) + "\nRe-run and follow the pose descriptions.")

    # Set the directions, then read the second pose again as the motors now show it: the homing offset
    # follows from that reading, whatever the firmware does to show a reversed position.
    for i in primaries_first:
        bus.configure(motors[i].motor_id, reverse=bool(reverse[i]))
    shown_second = bus.read_state().position.astype(np.int64)
    homing = np.zeros(len(motors), dtype=np.int64)
    for i, m in enumerate(motors):
        joint = _joint_of(m.joint or "")
        if joint == spec.gripper:
            continue  # read in the motor's own frame; the open/closed readings normalize it
        shown_first = shown_second[i] - (-moved[i] if reverse[i] else moved[i])
        homing[i] = round(CENTER_TICK + reference[joint] / RAD_PER_TICK - shown_first)
    for i in primaries_first:
        bus.configure(motors[i].motor_id, homing_offset=int(homing[i]))

    grip = [i for i, m in enumerate(motors) if m.joint == spec.gripper][0]
    closed, open_ = (float(ticks_to_rad(first[grip])), float(ticks_to_rad(second[grip])))
    if abs(open_ - closed) < 0.1:
        raise CalibrationError(f"arm {arm.name}: the gripper (motor {motors[grip].motor_id}) hardly moved between "
                               "closed and open; nothing was saved. Re-run and open the gripper fully.")
    _verify(arm, target)
    return ArmCalibration(
        arm.name, arm.spec.kind,
        tuple(MotorCalibration(m.motor_id, m.model.name, m.joint or "", int(homing[i]), bool(reverse[i]))
              for i, m in enumerate(motors)),
        {**spec.limits, spec.gripper: gripper_limits(closed, open_)},
        closed, open_,
    )


def _verify(arm: Arm, second: dict[str, float], tolerance_rad: float = 0.35) -> None:
    """The arm is still in the second pose: its joints must now read about the second pose's angles."""
    state = arm.read()  # also checks every shadow against its primary
    off = [f"{joint} reads {angle:+.2f} rad" for joint, angle in zip(arm.joint_names, state.position, strict=True)
           if joint in second and abs(angle - second[joint]) > tolerance_rad]
    if off:
        raise CalibrationError(f"arm {arm.name}: after calibration {', '.join(off)} in the second pose; "
                               "was the arm moved before the end? Nothing was saved.")


@dataclass(frozen=True)
class JointCheck:
    joint: str
    angle: float  # rad, as the arm reads now
    verdict: str  # "ok" or what looks wrong


def check_arm(arm: Arm, calibration: ArmCalibration, pose: dict[str, float] | None = None,
              tolerance_rad: float = 0.35) -> list[JointCheck]:
    """Moves nothing. Compares the motors' registers with the file and, given the pose the person holds
    the arm in, each joint's angle with the pose's: a joint reading minus the pose angle looks reversed,
    a joint off by a whole turn looks offset by a turn."""
    registers = {}
    for m in calibration.motors:
        registers[m.motor_id] = (arm.bus.read(m.motor_id, "Homing Offset"),
                                 bool(arm.bus.read(m.motor_id, "Drive Mode") & 1))
    state = arm.bus.read_state()
    by_id = dict(zip(arm.bus.ids, state.position, strict=True))
    out = []
    for j in arm.spec.joints:
        angle = float(ticks_to_rad(by_id[j.motor_id]))
        verdicts = []
        for m in calibration.motors:
            if _joint_of(m.joint) != j.name:
                continue
            homing, reverse = registers[m.motor_id]
            if reverse != m.reverse:
                verdicts.append(f"REVERSED: motor {m.motor_id} drive mode is "
                                f"{'reverse' if reverse else 'forward'}, the calibration says "
                                f"{'reverse' if m.reverse else 'forward'}")
            elif homing != m.homing_offset:
                turns = (homing - m.homing_offset) / TICKS_PER_TURN
                what = f"OFFSET BY {turns:+.0f} TURN(S)" if turns == round(turns) else "OFFSET"
                verdicts.append(f"{what}: motor {m.motor_id} homing offset is {homing}, the calibration says "
                                f"{m.homing_offset}")
        lo, hi = calibration.limits[j.name]
        if not lo <= angle <= hi:
            turned = [angle + k * 2 * math.pi for k in (-1, 1) if lo <= angle + k * 2 * math.pi <= hi]
            verdicts.append(f"OFFSET BY A TURN: {angle:+.2f} rad is outside the limits, {turned[0]:+.2f} is inside"
                            if turned else f"OUTSIDE LIMITS [{lo:+.2f}, {hi:+.2f}]")
        if pose is not None and j.name in pose:
            verdicts += _pose_verdict(angle, pose[j.name], tolerance_rad)
        out.append(JointCheck(j.name, angle, "; ".join(verdicts) or "ok"))
    return out


def _pose_verdict(angle: float, want: float, tolerance_rad: float) -> list[str]:
    def near(x: float) -> bool:  # within tolerance of a whole number of turns
        return abs(math.remainder(x, 2 * math.pi)) <= tolerance_rad

    if abs(angle - want) <= tolerance_rad:
        return []
    if near(angle - want):
        return [f"LOOKS OFFSET BY A TURN: reads {angle:+.2f} rad where the pose has {want:+.2f}"]
    if abs(want) > tolerance_rad and near(angle + want):
        return [f"LOOKS REVERSED: reads {angle:+.2f} rad where the pose has {want:+.2f}"]
    return [f"OFF BY {angle - want:+.2f} rad from the pose ({want:+.2f})"]
