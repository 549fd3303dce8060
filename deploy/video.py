"""A loop observer that films a rollout: every camera's newest frame side by side, one video frame per step."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2

from recording.video import open_video, side_by_side
from robot.cameras import Camera
from robot.loop import Step


class VideoRecorder:
    def __init__(self, path: Path, cameras: Mapping[str, Camera], fps: float, height: int = 240) -> None:
        self.path = Path(path)
        self.cameras = dict(cameras)
        self.fps = fps
        self.height = height
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None  # opened at the first frame, when the sizes are known

    def __call__(self, step: Step) -> None:
        if not self.cameras:
            return
        frame = side_by_side([camera.latest().image for camera in self.cameras.values()], self.height)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = open_video(self.path, self.fps, frame.shape[1], frame.shape[0])
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
