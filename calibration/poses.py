"""The two poses a person puts an arm in to calibrate it, and default joint limits.

Angles follow the Interbotix convention ALOHA uses (0 rad everywhere = arm
upright: upper arm vertical, forearm level and pointing forward, wrist straight).
The gripper is closed in the reference pose and fully open in the second pose.
"""

from __future__ import annotations

import math

GRIPPER = "gripper"

# joint -> (reference angle, second angle, how to put the joint in the second pose)
POSES: dict[str, tuple[float, float, str]] = {
    "waist": (0.0, math.pi / 2, "turned a quarter turn to the arm's left (counter-clockwise seen from above)"),
    "shoulder": (0.0, math.pi / 4, "upper arm tilted 45 degrees forward"),
    "elbow": (0.0, -math.pi / 4, "forearm raised 45 degrees (hand up)"),
    "forearm_roll": (0.0, math.pi / 2, "forearm rolled a quarter turn counter-clockwise, seen from behind"),
    "wrist_angle": (0.0, math.pi / 2, "hand bent 90 degrees down"),
    "wrist_rotate": (0.0, math.pi / 2, "hand rolled a quarter turn counter-clockwise, seen from behind"),
}

REFERENCE_TEXT = (
    "REFERENCE POSE: upper arm straight up, forearm level and pointing forward, wrist straight and "
    "level, forearm and hand not rolled, waist facing forward, gripper fully CLOSED."
)


def second_pose_text() -> str:
    lines = ["SECOND POSE, from the reference pose:"]
    lines += [f"  {joint}: {text}" for joint, (_, _, text) in POSES.items()]
    lines.append("  gripper: fully OPEN")
    return "\n".join(lines)


def reference_angles() -> dict[str, float]:
    return {joint: ref for joint, (ref, _, _) in POSES.items()}


def second_angles() -> dict[str, float]:
    return {joint: second for joint, (_, second, _) in POSES.items()}


# Software limits written into a new calibration file (rad); edit the file to match your arm.
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    "waist": (-math.pi, math.pi),
    "shoulder": (-1.95, 1.95),
    "elbow": (-2.2, 1.75),
    "forearm_roll": (-math.pi, math.pi),
    "wrist_angle": (-2.0, 2.25),
    "wrist_rotate": (-math.pi, math.pi),
}
