"""Leader radians -> follower radians, joint for joint.

A leader and its follower have the same joints (the rig file refuses a pair
that does not), so arm joints map one to one, with an optional per-joint sign
and offset from the rig file (follower = sign * leader + offset). The gripper
goes through its normalized value: leader closed..open becomes follower
closed..open, whatever the two grippers' ranges in radians.
"""

from __future__ import annotations

import numpy as np

from calibration.file import ArmCalibration
from robot.arm import ArmSpec
from robot.rig import Pairing


class JointMap:
    def __init__(self, spec: ArmSpec, leader: ArmCalibration, follower: ArmCalibration,
                 pairing: Pairing | None = None) -> None:
        """`spec`: the follower's (its leader has the same joints)."""
        pairing = pairing or Pairing(leader.arm, follower.arm)
        self.joint_names = joint_names = spec.joint_names
        self.leader, self.follower = leader, follower
        self.sign = np.array([float(pairing.signs.get(j, 1)) for j in joint_names])
        self.offset = np.array([pairing.offsets.get(j, 0.0) for j in joint_names])
        self.gripper = spec.gripper_index

    def __call__(self, leader_rad: np.ndarray) -> np.ndarray:
        out = self.sign * np.asarray(leader_rad, dtype=np.float64) + self.offset
        normalized = self.leader.gripper_normalized(leader_rad[self.gripper])
        out[self.gripper] = self.follower.gripper_radians(normalized)
        return out

    def inverse(self, follower_rad: np.ndarray) -> np.ndarray:
        """Follower radians -> the leader pose that maps to them (leaders tracking followers in deploy)."""
        out = (np.asarray(follower_rad, dtype=np.float64) - self.offset) / self.sign
        normalized = self.follower.gripper_normalized(follower_rad[self.gripper])
        out[self.gripper] = self.leader.gripper_radians(normalized)
        return out
