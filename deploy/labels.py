"""Plain DAgger on the simulated rig: the policy drives every step, the scripted expert labels every state.

A loop observer, the counterpart of `TakeoverRecorder` for the world's
"labels" operator mode. Each step's observation (follower states, camera
frames) is written with the action the expert would command from that state
in place of what the policy sent. The rollout becomes one `correction`
episode (file attribute `labels` = "expert"), so the trainer takes it with the
demonstrations as it takes a person's corrections. This is the comparison the
human-gated round is measured against, at an equal number of labelled steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from recording.dataset import Dataset, EpisodeInfo
from recording.layout import StateLayout
from recording.session import EpisodeSlot, RecordOptions
from robot.cameras import Camera
from robot.loop import Step
from robot.sim.world_process import SimWorldProcess


class ExpertLabelRecorder:
    def __init__(self, world: SimWorldProcess, dataset: Dataset, layout: StateLayout, cameras: Mapping[str, Camera],
                 options: RecordOptions, *, checkpoint: str, rate_hz: float, seed: int | None = None,
                 task_description: str = "") -> None:
        self.world = world
        self.layout = layout
        self.options = options
        self.rate_hz = rate_hz
        self.seed = seed
        self.checkpoint = checkpoint
        self._slot = EpisodeSlot(dataset, layout, {name: cameras[name] for name in dataset.info.cameras}, options,
                                 kind="correction", task_description=task_description,
                                 attrs={"checkpoint": checkpoint, "labels": "expert",
                                        "start_reason": "expert labels every step"})

    def label_commands(self) -> dict[str, np.ndarray]:
        """The expert's targets for the state the followers show now, as follower commands (rad)."""
        label = self.world.label()
        if label is None:
            raise RuntimeError("the simulated world is not in operator mode 'labels'; call "
                               "world.set_operator('labels') before the rollout")
        row = np.concatenate([[*label[slot.side][0], label[slot.side][1]] for slot in self.layout.slots])
        return self.layout.commands(row)

    def __call__(self, step: Step) -> None:
        self._slot.recorder(replace(step, commands=self.label_commands()))

    def finish(self, stop_reason: str, success: bool | None = None) -> list[EpisodeInfo]:
        episode, _ = self._slot.finish(rate_hz=self.rate_hz, options=self.options, stop_reason=stop_reason,
                                       success=success, seed=self.seed, checkpoint=self.checkpoint)
        return [episode]

    def discard(self) -> None:
        self._slot.discard()
