"""SyntheticCamera: generated frames at the rig file's size and rate, for a rig run virtual before its cameras arrive.

A texture that moves, with noise, so the frames compress like a real scene's
(JPEG sizes, video bitrates) and differ from one to the next. The frames are
drawn once at open (a pool of `pool` frames played in a loop), so serving them
costs what a real camera's reader thread costs, not an image synthesis per frame.
They come through the same reader thread as a real camera's, paced at the
camera's fps; each frame's time is when the reader took it, on the loop's clock.
With `depth: true` in the rig file each frame also carries a depth image (uint16
millimetres, a tilted plane with noise).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot.camera_reader import Capture, ReaderCamera

if TYPE_CHECKING:
    from robot.rig import CameraConfig

DEPTH_UNITS = 0.001  # the depth images are in millimetres
SHIFT_PX = 4  # how far the texture moves from one frame to the next


@dataclass
class _Pacer:
    next_due: float  # time.monotonic() of the next frame


class SyntheticCamera(ReaderCamera):
    stale_hint = "the machine is too busy to serve the frames"

    def __init__(self, config: CameraConfig, *, pool: int = 30, **options: Any) -> None:
        """`options`: the reader's (clock, max_age_s, warmup_frames, open_timeout_s, reconnect_delay_s)."""
        self.images, self.depths = _draw(config, pool)
        self._served = 0
        super().__init__(config, **options)

    def _open(self) -> _Pacer:
        return _Pacer(time.monotonic())

    def _read(self, pacer: _Pacer) -> Capture | None:
        wait = pacer.next_due - time.monotonic()
        if wait > 0 and self._stop.wait(wait):
            return None  # closing
        # a reader that fell behind skips frames, as a camera's driver drops them
        pacer.next_due = max(pacer.next_due + 1.0 / self.config.fps, time.monotonic())
        k = self._served % len(self.images)
        self._served += 1
        depth = self.depths[k] if self.depths else None
        return Capture(self.images[k], self._clock(), depth, DEPTH_UNITS if depth is not None else 0.0)

    def _release(self, pacer: _Pacer) -> None:
        pass  # nothing is held


def _draw(config: CameraConfig, pool: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`pool` frames of a texture moving right, with noise; read-only, as frames handed out are never changed."""
    h, w = config.height, config.width
    rng = np.random.default_rng(zlib.crc32(f"{config.name}:{config.device}".encode()))  # each camera its own scene
    hue = rng.uniform(0, 256, 3)
    y, x = np.mgrid[0:h, 0:w + SHIFT_PX * pool].astype(np.float32)
    texture = np.stack([(x * 0.4 + hue[0]) % 256, (y * 0.5 + 40 * np.sin(x / 37) + hue[1]) % 256,
                        ((x + y) * 0.2 + hue[2]) % 256], axis=-1)
    noise = rng.normal(0, 12, (2, h, w, 3)).astype(np.float32)  # sensor noise: JPEG sizes like a real scene's
    depth_noise = rng.normal(0, 2, (2, h, w)).astype(np.float32)  # mm, as a stereo camera's at a metre
    images, depths = [], []
    for i in range(pool):
        window = texture[:, SHIFT_PX * (pool - i):SHIFT_PX * (pool - i) + w]
        images.append(_frozen(np.clip(window + noise[i % 2] + (i % 7), 0, 255).astype(np.uint8)))
        if config.depth:
            plane = 600 + 0.8 * y[:, :w] + (0.3 * (x[:, :w] + SHIFT_PX * i)) % 400  # a surface 0.6..1.4 m away
            depths.append(_frozen((plane + depth_noise[i % 2]).astype(np.uint16)))
    return images, depths


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
