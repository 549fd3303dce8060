"""Takeovers into the dataset: each stretch under human control becomes a `correction` episode.

A loop observer. On pedal down a correction episode opens (the next free index
in the dataset), every step the person drives is written to it, and on pedal
up it is closed and added to dataset.json, linked to the checkpoint and, when
the whole rollout is kept too, to the rollout episode (which then carries a
per-step intervention mask). Each correction records the rollout step it
started at (`rollout_step`): where the policy had led the person to take over.
Closing runs on a background thread, so handing back never stalls the control
loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from deploy.runner import Mode
from recording.dataset import Dataset, EpisodeInfo
from recording.layout import StateLayout
from recording.session import EpisodeSlot, RecordOptions
from robot.cameras import Camera
from robot.loop import Step


class TakeoverRecorder:
    def __init__(self, dataset: Dataset, layout: StateLayout, cameras: Mapping[str, Camera], options: RecordOptions,
                 *, checkpoint: str, rate_hz: float, keep_rollout: bool = False, seed: int | None = None,
                 task_description: str = "") -> None:
        self.dataset = dataset
        self.task_description = task_description
        self.layout = layout
        self.cameras = {name: cameras[name] for name in dataset.info.cameras}
        self.options = options
        self.checkpoint = checkpoint
        self.rate_hz = rate_hz
        self.seed = seed
        self.human = False
        self.next_step = 0  # the rollout step the loop runs next: where a takeover now would start
        self._correction: EpisodeSlot | None = None
        self._correction_step: int | None = None
        self._finishing: list[Future] = []
        self._closer = ThreadPoolExecutor(1, thread_name_prefix="episode-close")  # one at a time: dataset.json
        self._rollout = (EpisodeSlot(dataset, layout, self.cameras, options, kind="rollout",
                                     task_description=task_description, attrs=self._attrs(),
                                     intervention=lambda: self.human)
                         if keep_rollout else None)

    def _attrs(self) -> dict:
        return {"checkpoint": self.checkpoint, **({"seed": self.seed} if self.seed is not None else {})}

    def on_switch(self, mode: Mode) -> None:
        """DeployController's callback: pedal down opens a correction, pedal up closes it."""
        self.human = mode is Mode.HUMAN
        if self.human and self._correction is None:
            self._correction_step = self.next_step
            attrs = {**self._attrs(), "start_reason": "pedal down", "rollout_step": self.next_step}
            if self._rollout is not None:
                attrs["rollout"] = self._rollout.index
            self._correction = EpisodeSlot(self.dataset, self.layout, self.cameras, self.options, kind="correction",
                                           task_description=self.task_description, attrs=attrs,
                                           intervention=lambda: True)
        elif not self.human and self._correction is not None:
            self._close(self._correction, "pedal up")
            self._correction = None

    def __call__(self, step: Step) -> None:
        self.next_step = step.index + 1
        if self._rollout is not None:
            self._rollout.recorder(step)
        if self._correction is not None:
            self._correction.recorder(step)

    def finish(self, stop_reason: str, success: bool | None = None) -> list[EpisodeInfo]:
        """The rollout ended: close what is open and wait for every episode; returns them in index order."""
        if self._correction is not None:
            self._close(self._correction, stop_reason)
            self._correction = None
        if self._rollout is not None:
            self._close(self._rollout, stop_reason, success)
            self._rollout = None
        self._closer.shutdown(wait=True)
        episodes = [f.result()[0] for f in self._finishing]
        return sorted(episodes, key=lambda e: e.index)

    def discard(self) -> None:
        """Something failed mid-rollout: drop what is open; closed corrections are kept."""
        for slot in (self._correction, self._rollout):
            if slot is not None:
                slot.discard()
        self._correction = self._rollout = None
        self._closer.shutdown(wait=True)

    def _close(self, slot: EpisodeSlot, stop_reason: str, success: bool | None = None) -> None:
        correction = slot is not self._rollout
        rollout = self._rollout.index if self._rollout is not None and correction else None
        self._finishing.append(self._closer.submit(
            slot.finish, rate_hz=self.rate_hz, options=self.options, stop_reason=stop_reason, success=success,
            seed=self.seed, checkpoint=self.checkpoint, rollout=rollout,
            rollout_step=self._correction_step if correction else None))
