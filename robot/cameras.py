"""Cameras as the control loop sees them: the newest frame of each, with the time it was captured.

Backends: the simulated rig's cameras (robot/sim/sim_camera.py). A frame's
time is on the loop's clock, so a recorder can tell a fresh frame from a
repeated one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8, RGB
    t: float  # capture time, on the loop's clock
    index: int  # frames captured by this camera so far; equal index = the same frame


class Camera(Protocol):
    name: str

    def latest(self) -> Frame: ...

    def close(self) -> None: ...
