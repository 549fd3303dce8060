"""The teleop controller: each follower copies its leader through the pair's JointMap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from calibration.joint_map import JointMap
from robot.arm import ArmState


class TeleopController:
    """Each follower copies its leader through the pair's JointMap."""

    def __init__(self, pairs: Sequence[tuple[str, str, JointMap]]) -> None:
        self.pairs = list(pairs)

    def targets(self, states: Mapping[str, ArmState]) -> dict[str, np.ndarray]:
        return {follower: joint_map(states[leader].position) for leader, follower, joint_map in self.pairs}
