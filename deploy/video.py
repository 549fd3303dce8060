"""A loop observer that films a rollout: every camera's newest frame side by side, labelled, one video frame per
step, into an MP4 that browsers play (recording/video.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recording.video import DEFAULT_CODEC, VideoWriter, side_by_side
from robot.cameras import Camera
from robot.loop import Step


class VideoRecorder:
    def __init__(self, path: Path, cameras: Mapping[str, Camera], fps: float, height: int = 240,
                 codec: str = DEFAULT_CODEC) -> None:
        self.path = Path(path)
        self.cameras = dict(cameras)
        self.fps = fps
        self.height = height
        self.codec = codec
        self.frames = 0
        self._writer: VideoWriter | None = None  # opened at the first frame: no cameras, no file

    def __call__(self, step: Step) -> None:
        if not self.cameras:
            return
        frame = side_by_side([camera.latest().image for camera in self.cameras.values()], self.height,
                             list(self.cameras))
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = VideoWriter(self.path, self.fps, self.codec)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
