"""The control loop's recording observer: each Step plus every camera's newest frame becomes one episode row."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from recording.layout import StateLayout
from recording.writer import EpisodeWriter, StepRecord
from robot.cameras import Camera
from robot.loop import Step


class EpisodeRecorder:
    def __init__(self, layout: StateLayout, cameras: Mapping[str, Camera], writer: EpisodeWriter, *,
                 intervention: Callable[[], bool] | None = None) -> None:
        self.layout = layout
        self.cameras = dict(cameras)
        self.writer = writer
        self.intervention = intervention
        self.steps = 0
        self.repeated_frames = 0  # a camera delivered no new frame since the previous step
        self._last_index: dict[str, int] = {}

    def __call__(self, step: Step) -> None:
        images, image_t, depth, depth_units = {}, {}, {}, {}
        for name, camera in self.cameras.items():
            frame = camera.latest()  # raises, naming the camera, when its newest frame is too old
            if self._last_index.get(name) == frame.index:
                self.repeated_frames += 1
            self._last_index[name] = frame.index
            images[name], image_t[name] = frame.image, frame.t
            if frame.depth is not None:
                depth[name], depth_units[name] = frame.depth, frame.depth_units
        layout = self.layout
        self.writer.append(StepRecord(
            t=step.t, qpos=layout.qpos(step.states), qvel=layout.qvel(step.states),
            effort=layout.effort(step.states), action=layout.action(step.commands),
            images=images, image_t=image_t, intervention=bool(self.intervention and self.intervention()),
            depth=depth, depth_units=depth_units,
        ))
        self.steps += 1
