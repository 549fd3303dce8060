"""A simulated camera: the newest frame the world process rendered for it, from shared memory."""

from __future__ import annotations

from robot.cameras import Frame
from robot.sim.shared_frames import SharedFrame


class SimCamera:
    def __init__(self, name: str, slot: SharedFrame) -> None:
        self.name = name
        self._slot = slot

    @property
    def size(self) -> tuple[int, int]:
        return self._slot.shape[:2]

    def latest(self) -> Frame:
        return self._slot.read()

    def close(self) -> None:
        pass  # the world process's owner releases the shared memory
