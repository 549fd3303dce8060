"""Recorded actions as the control loop's targets: the controller that replay and deploy's start-pose ramp use."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recording.layout import StateLayout
from robot.arm import ArmState


class ReplayController:
    """Holds the first row until `play()`, then gives one row per step and the last one after the end."""

    def __init__(self, layout: StateLayout, actions: np.ndarray) -> None:
        self.layout = layout
        self.actions = actions
        self.next = 0
        self.playing = False

    def play(self) -> None:
        self.playing = True

    @property
    def finished(self) -> bool:
        return self.next >= len(self.actions)

    def targets(self, states: Mapping[str, ArmState]) -> dict[str, np.ndarray]:
        row = self.actions[min(self.next, len(self.actions) - 1)]
        if self.playing:
            self.next += 1
        return self.layout.commands(row)
