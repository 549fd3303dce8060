"""The rig's followers as one row: each follower's joints in its kind's order, the left follower first (ALOHA's
14 numbers: [left 6 joints, left gripper, right 6 joints, right gripper]; a Koch pair's 6), named <side>_<joint>.

Arm joints are radians; each gripper is its calibrated opening, 0 closed .. 1
open, so episodes from rigs with different gripper ranges mean the same thing.
The same layout turns a row back into follower commands (replay, deploy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from calibration.file import ArmCalibration
from robot.arm import ArmSpec, ArmState
from robot.arm_kinds import aloha_joint_names

if TYPE_CHECKING:
    from robot.rig import Rig

SIDES = ("left", "right")


def joint_layout(dim: int) -> tuple[str, ...]:
    """Names of the qpos/action entries where nothing says them (files recorded without state_names, ALOHA's
    own): ALOHA's [left 7, right 7] for 14, generic names otherwise."""
    aloha = aloha_joint_names()
    if dim == len(SIDES) * len(aloha):
        return tuple(f"{side}_{joint}" for side in SIDES for joint in aloha)
    return tuple(f"joint_{i}" for i in range(dim))


def rig_state_names(rig: Rig) -> tuple[str, ...]:
    """The rig's qpos/action names as StateLayout orders them once connected (left follower, then right), from
    the rig file alone."""
    followers = sorted(rig.followers, key=lambda a: SIDES.index(a.side) if a.side in SIDES else len(SIDES))
    return tuple(f"{a.side}_{joint}" for a in followers for joint in a.spec.joint_names)


@dataclass(frozen=True)
class FollowerSlot:
    arm: str
    side: str
    spec: ArmSpec
    calibration: ArmCalibration

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.spec.joint_names

    @property
    def gripper(self) -> int:
        return self.spec.gripper_index

    @property
    def gripper_span(self) -> float:
        return self.calibration.gripper_open - self.calibration.gripper_closed


class StateLayout:
    def __init__(self, slots: Sequence[FollowerSlot]) -> None:
        self.slots = sorted(slots, key=lambda s: SIDES.index(s.side) if s.side in SIDES else len(SIDES))
        self.names = tuple(f"{s.side}_{j}" for s in self.slots for j in s.joint_names)
        self.dim = len(self.names)

    @classmethod
    def from_connected(cls, connected: object) -> StateLayout:
        """The followers of a calibration.connection.ConnectedRig, left before right."""
        rig = connected.rig
        return cls([FollowerSlot(a.name, a.side, connected.arms[a.name].spec, connected.calibrations[a.name])
                    for a in rig.followers])

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(s.arm for s in self.slots)

    def _row(self, per_arm: Mapping[str, np.ndarray], gripper: str) -> np.ndarray:
        parts = []
        for s in self.slots:
            values = np.array(per_arm[s.arm], dtype=np.float64)
            if gripper == "position":
                values[s.gripper] = s.calibration.gripper_normalized(values[s.gripper])
            elif gripper == "rate":
                values[s.gripper] = values[s.gripper] / s.gripper_span
            parts.append(values)
        return np.concatenate(parts).astype(np.float32)

    def qpos(self, states: Mapping[str, ArmState]) -> np.ndarray:
        return self._row({s.arm: states[s.arm].position for s in self.slots}, "position")

    def qvel(self, states: Mapping[str, ArmState]) -> np.ndarray:
        return self._row({s.arm: states[s.arm].velocity for s in self.slots}, "rate")

    def effort(self, states: Mapping[str, ArmState]) -> np.ndarray:
        return self._row({s.arm: states[s.arm].effort for s in self.slots}, "raw")

    def action(self, commands: Mapping[str, np.ndarray]) -> np.ndarray:
        """Follower commands (rad) as a row; grippers normalized."""
        return self._row(commands, "position")

    def commands(self, row: np.ndarray) -> dict[str, np.ndarray]:
        """A row (action or qpos) back to follower commands in radians."""
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (self.dim,):
            raise ValueError(f"a row of this rig has {self.dim} values ({', '.join(self.names)}); got shape "
                             f"{row.shape}")
        out, start = {}, 0
        for s in self.slots:
            values = row[start:start + len(s.joint_names)].copy()
            values[s.gripper] = s.calibration.gripper_radians(values[s.gripper])
            out[s.arm] = values
            start += len(s.joint_names)
        return out
