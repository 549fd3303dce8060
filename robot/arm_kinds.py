"""Arm kinds as data: the built-in kinds of arm_kinds.yaml, and the parser a rig file's own `kinds:` share.

A kind says an arm's joints in order (motor IDs, models, shadows), which joint is
the gripper and its range, where the arm rests, its default limits and the two
calibration poses. Every field is checked, and an error names the file and the
field: a kind reaches the motors through the rig, the calibration and the JointMap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from robot.arm import MIN_GRIPPER_TRAVEL_RAD, ArmSpec, CalibrationPoses, JointSpec, PoseJoint
from robot.dynamixel.control_table import MODELS

if TYPE_CHECKING:
    from robot.rig import Fields

KINDS_FILE = Path(__file__).with_name("arm_kinds.yaml")
ALOHA_FOLLOWER = "viperx_300_6dof"  # the sim world's arms; its joints name the columns of a 14-wide file without names
KIND_FIELDS = ("description", "joints", "gripper", "rest", "limits", "calibration")
JOINT_FIELDS = ("id", "model", "shadow", "shadow_reversed")
POSE_FIELDS = ("reference_deg", "second_deg", "how")
MAX_ANGLE_RAD = math.tau  # anything further from zero than a turn is a typo
SHADOW_SUFFIX = "_shadow"  # robot/arm.py names a shadow motor <joint>_shadow
MIN_POSE_MOVE_DEG = 20.0  # calibration tells a motor's direction from its move between the two poses


def parse_kind(fields: Fields, name: str) -> ArmSpec:
    """The kind `name` of a mapping of kinds (arm_kinds.yaml's top level, a rig file's `kinds:`)."""
    k = fields.section(name, KIND_FIELDS)
    joints_section = k.section("joints", _keys(k.data.get("joints")))
    joint_names = joints_section.names()
    if not joint_names:
        raise k.error("joints", "an arm needs at least one joint (and a gripper)")
    for joint in (j for j in joint_names if j.endswith(SHADOW_SUFFIX)):
        raise joints_section.error(joint, f"a joint's name may not end in {SHADOW_SUFFIX}: a shadow motor goes by its "
                                          f"joint's name and {SHADOW_SUFFIX} (calibration files, errors); rename it")
    joints = tuple(parse_joint(joints_section, joint) for joint in joint_names)
    check_motor_ids(k, joints)

    g = k.section("gripper", ("joint", "closed", "open"))
    gripper = g.get("joint", str)
    if gripper not in joint_names:
        raise g.error("joint", f"{gripper!r} is not one of the kind's joints: {', '.join(joint_names)}")
    closed, open_ = g.number("closed", MAX_ANGLE_RAD), g.number("open", MAX_ANGLE_RAD)
    if abs(open_ - closed) < MIN_GRIPPER_TRAVEL_RAD:
        raise g.error("open", f"{open_} rad is within {MIN_GRIPPER_TRAVEL_RAD} rad of closed ({closed})")

    arm_joints = tuple(j for j in joint_names if j != gripper)
    limits_section = _joint_section(k, "limits", joint_names, gripper, "takes its limits from its calibrated range")
    _require_every(limits_section, arm_joints, "limits")
    limits = {j: parse_limit(limits_section, j) for j in arm_joints}
    rest_section = _joint_section(k, "rest", joint_names, gripper, "rests open", required=False)
    rest = {j: _within(rest_section, j, rest_section.number(j, MAX_ANGLE_RAD), limits[j])
            for j in arm_joints if j in rest_section.data}
    calibration = _parse_calibration(k, joint_names, gripper, limits)
    return ArmSpec(name, joints, gripper, closed, open_, calibration, limits, rest, k.get("description", str, ""))


def parse_joint(fields: Fields, name: str) -> JointSpec:
    """One joint's motors: {id, model, shadow, shadow_reversed}, in a kind or a rig file's per-arm override."""
    j = fields.section(name, JOINT_FIELDS)
    return JointSpec(name, _motor_id(j, "id", j.get("id", int)), j.get("model", str, choices=tuple(MODELS)),
                     _motor_id(j, "shadow", j.get("shadow", int, None)), j.get("shadow_reversed", bool, True))


def check_motor_ids(fields: Fields, joints: tuple[JointSpec, ...]) -> None:
    """No motor ID twice on the arm's bus, shadows included (error at `fields`' joints)."""
    ids = [i for j in joints for i in (j.motor_id, j.shadow_id) if i is not None]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise fields.error("joints", f"motor ID(s) {repeated} are used twice on one bus")


@functools.cache
def builtin_kinds() -> Mapping[str, ArmSpec]:
    """The kinds of arm_kinds.yaml by name (read once)."""
    from robot.rig import Fields, RigFileError, read_yaml  # robot.rig imports this module: import it once loaded

    data = read_yaml(KINDS_FILE, RigFileError)
    top = Fields(str(KINDS_FILE), "", data, _keys(data))
    return MappingProxyType({name: parse_kind(top, name) for name in top.names()})


def aloha_joint_names() -> tuple[str, ...]:
    """ALOHA's 7 joints per arm, in order."""
    return builtin_kinds()[ALOHA_FOLLOWER].joint_names


def _keys(section: object) -> tuple[str, ...]:
    """A mapping whose keys are names the file chooses (kinds, joints): its own keys are its allowed fields."""
    return tuple(section) if isinstance(section, dict) else ()


def _motor_id(fields: Fields, key: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 252:
        raise fields.error(key, f"motor ID {value} is outside 0..252")
    return value


def _joint_section(k: Fields, key: str, joints: tuple[str, ...], gripper: str, gripper_note: str, *,
                   required: bool = True) -> Fields:
    """A mapping keyed by joint: an unknown joint or the gripper is refused naming the kind's joints."""
    data = k.data.get(key)
    if isinstance(data, dict):
        for joint in data:
            if joint == gripper:
                raise k.error(f"{key}.{joint}", f"leave the gripper out: it {gripper_note}")
            if joint not in joints:
                raise k.error(f"{key}.{joint}", f"unknown joint; the kind's joints are {', '.join(joints)}")
    return k.section(key, joints) if required else k.section(key, joints, {})


def _require_every(section: Fields, joints: tuple[str, ...], what: str) -> None:
    missing = [j for j in joints if j not in section.data]
    if missing:
        raise section.error(missing[0], f"no {what} for joint(s) {', '.join(missing)}: every joint but the gripper "
                                        "needs them")


def parse_limit(limits: Fields, joint: str) -> tuple[float, float]:
    """[lower, upper] in rad: finite, ordered, within a turn (a kind's limits, a calibration file's)."""
    pair = limits.get(joint, list)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in pair):
        raise limits.error(joint, f"expected [lower, upper] in rad, got {pair!r}")
    lower, upper = pair
    if not -MAX_ANGLE_RAD <= lower < upper <= MAX_ANGLE_RAD:  # NaN fails every comparison
        raise limits.error(joint, f"[{lower}, {upper}] is not lower < upper within "
                                  f"-{MAX_ANGLE_RAD:.4g}..{MAX_ANGLE_RAD:.4g} rad")
    return float(lower), float(upper)


def _within(fields: Fields, key: str, angle: float, limits: tuple[float, float], as_written: str = "") -> float:
    """An angle (rad) inside the joint's limits; the error shows it as the file wrote it."""
    lower, upper = limits
    if not lower <= angle <= upper:
        raise fields.error(key, f"{as_written or f'{angle:g} rad'} is outside the joint's limits "
                                f"[{lower:g}, {upper:g}] rad")
    return angle


def _parse_calibration(k: Fields, joints: tuple[str, ...], gripper: str,
                       limits: Mapping[str, tuple[float, float]]) -> CalibrationPoses:
    c = k.section("calibration", ("reference", "joints"))
    reference = c.get("reference", str).strip()
    if not reference:
        raise c.error("reference", "describe the reference pose for the person who calibrates")
    poses_section = _joint_section(c, "joints", joints, gripper, "closes in the reference pose and opens fully in "
                                                                 "the second")
    _require_every(poses_section, tuple(j for j in joints if j != gripper), "calibration pose")
    poses = {}
    for joint in (j for j in joints if j != gripper):
        p = poses_section.section(joint, POSE_FIELDS)
        first, second = p.number("reference_deg", 360.0), p.number("second_deg", 360.0)
        if abs(second - first) < MIN_POSE_MOVE_DEG:
            raise p.error("second_deg", f"{second:g} degrees is within {MIN_POSE_MOVE_DEG:g} of reference_deg "
                                        f"({first:g}): calibration tells a motor's direction from this move")
        how = p.get("how", str).strip()
        if not how:
            raise p.error("how", "say how a person gets the joint from the reference pose to the second")
        poses[joint] = PoseJoint(_within(p, "reference_deg", math.radians(first), limits[joint], f"{first:g} degrees"),
                                 _within(p, "second_deg", math.radians(second), limits[joint], f"{second:g} degrees"),
                                 how)
    return CalibrationPoses(reference, poses)
