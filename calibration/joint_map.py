"""Leader radians -> follower radians, joint for joint.

ALOHA's leaders and followers share kinematics, so arm joints map one to one,
with an optional per-joint sign and offset from the rig file (follower = sign *
leader + offset). The gripper goes through its normalized value: leader closed..open
becomes follower closed..open, whatever the two grippers' ranges in radians.
"""

from __future__ import annotations

import numpy as np

from calibration.file import ArmCalibration
from calibration.poses import GRIPPER
from robot.rig import Pairing


class JointMap:
    def __init__(self, joint_names: tuple[str, ...], leader: ArmCalibration, follower: ArmCalibration,
                 pairing: Pairing | None = None) -> None:
        pairing = pairing or Pairing(leader.arm, follower.arm)
        self.joint_names = joint_names
        self.leader, self.follower = leader, follower
        self.sign = np.array([float(pairing.signs.get(j, 1)) for j in joint_names])
        self.offset = np.array([pairing.offsets.get(j, 0.0) for j in joint_names])
        self.gripper = joint_names.index(GRIPPER) if GRIPPER in joint_names else None

    def __call__(self, leader_rad: np.ndarray) -> np.ndarray:
        out = self.sign * np.asarray(leader_rad, dtype=np.float64) + self.offset
        if self.gripper is not None:
            normalized = self.leader.gripper_normalized(leader_rad[self.gripper])
            out[self.gripper] = self.follower.gripper_radians(normalized)
        return out

    def inverse(self, follower_rad: np.ndarray) -> np.ndarray:
        """Follower radians -> the leader pose that maps to them (leaders tracking followers in deploy)."""
        out = (np.asarray(follower_rad, dtype=np.float64) - self.offset) / self.sign
        if self.gripper is not None:
            normalized = self.follower.gripper_normalized(follower_rad[self.gripper])
            out[self.gripper] = self.leader.gripper_radians(normalized)
        return out
