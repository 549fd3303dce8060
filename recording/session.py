"""Recording episodes into a dataset folder: the per-episode bookkeeping shared by every way of recording.

`EpisodeSlot` opens a writer under the dataset's next episode name and, when the
episode ends, closes it and adds it to dataset.json (or discards it). The
hardware session (operator keys and gestures) and the simulated one (the
scripted operator, seeded episodes) both go through it. A write that fails
(disk full) ends the episode at the next step with an EpisodeWriteError from
the recorder: the caller discards the slot and lets the error end the session.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recording.dataset import Dataset, DatasetInfo, EpisodeInfo, calibration_digest
from recording.layout import StateLayout
from recording.recorder import EpisodeRecorder
from recording.writer import EpisodeWriter, WriteSummary, human_bytes
from robot.cameras import Camera
from robot.clock import PeriodSummary
from robot.loop import Step
from robot.rig import Rig

if TYPE_CHECKING:
    from calibration.connection import ConnectedRig


@dataclass(frozen=True)
class RecordOptions:
    compress: bool = True  # JPEG rows (ALOHA's compressed layout); False = raw frames
    jpeg_quality: int = 50
    min_rate_ratio: float = 0.95  # an episode whose loop rate fell below this share of the rig's is flagged


JPEG_BYTES_PER_PIXEL = 0.3  # a camera scene at ALOHA's quality 50, on the generous side
ROW_BYTES = 1024  # qpos, qvel, effort, action rows and timestamps per step: 4 rows of up to 60 joints
LOW_SPACE_EPISODES = 3  # warn when the disk holds fewer episodes than this


def episode_bytes(dataset: Dataset, steps: int) -> int:
    """About how much one episode of `steps` takes on disk with the dataset's cameras, image size and format."""
    pixels = sum(h * w for h, w in (dataset.info.image_size[c] for c in dataset.info.cameras))
    per_pixel = JPEG_BYTES_PER_PIXEL if dataset.info.compress else 3
    return int(steps * (pixels * per_pixel + ROW_BYTES * max(1, len(dataset.info.cameras))))


def warn_if_low_space(dataset: Dataset, steps: int, episodes: int, say: Callable[[str], None] = print) -> None:
    """One line when the free space holds fewer episodes than LOW_SPACE_EPISODES or than asked for."""
    free = shutil.disk_usage(dataset.root).free
    each = episode_bytes(dataset, steps)
    fits = free // max(each, 1)
    if fits < max(LOW_SPACE_EPISODES, episodes):
        say(f"warning: {dataset.root} has {human_bytes(free)} free, room for about {fits} episode(s) of "
            f"{human_bytes(each)} ({episodes} asked for); an episode that does not fit is discarded and ends the "
            "session")


class EpisodeSlot:
    """One episode being recorded: its writer, its recorder (a loop observer), and its entry when done."""

    def __init__(self, dataset: Dataset, layout: StateLayout, cameras: Mapping[str, Camera], options: RecordOptions,
                 *, kind: str = "demo", task_description: str = "", attrs: Mapping[str, Any] | None = None,
                 intervention: Callable[[], bool] | None = None) -> None:
        self.dataset = dataset
        self.task_description = task_description
        self.index = dataset.next_index()
        sizes = {name: tuple(dataset.info.image_size[name]) for name in cameras}
        info = dataset.info
        self.kind = kind
        self.writer = EpisodeWriter(
            dataset.path(self.index), sizes, compress=options.compress, jpeg_quality=options.jpeg_quality,
            dim=layout.dim, attrs={"sim": info.rig == "sim", "fps": info.fps, "rig": info.rig,
                                   "calibration": info.calibration, "kind": kind, "task": info.task,
                                   "task_description": task_description, "render": info.render,
                                   "state_names": list(layout.names), **(attrs or {})})
        self.recorder = EpisodeRecorder(layout, cameras, self.writer, intervention=intervention)
        self.started = time.perf_counter()

    def finish(self, *, loop: PeriodSummary | None = None, rate_hz: float, options: RecordOptions,
               stop_reason: str, success: bool | None = None, seed: int | None = None,
               attrs: Mapping[str, Any] | None = None, **info: Any) -> tuple[EpisodeInfo, WriteSummary]:
        """Close the file (renamed into place) and add the episode to dataset.json."""
        fps = None
        flagged = []
        if loop is not None and loop.steps > 1:
            fps = loop.rate_hz
            if fps < options.min_rate_ratio * rate_hz:
                flagged.append(f"loop ran at {fps:.1f} Hz (< {options.min_rate_ratio * rate_hz:.1f})")
        if self.writer.dropped:
            flagged.append(f"{self.writer.dropped} steps dropped by the writer")
        extra = {"stop_reason": stop_reason, "success": -1 if success is None else int(success),
                 "seed": -1 if seed is None else seed, "achieved_fps": fps or 0.0, **(attrs or {})}
        summary = self.writer.close(extra)
        episode = EpisodeInfo(self.index, self.kind, summary.steps, success=success, seed=seed, fps=fps,
                              dropped=summary.dropped, flagged="; ".join(flagged), bytes=summary.bytes,
                              task_description=self.task_description, **info)
        self.dataset.add(episode)
        return episode, summary

    def discard(self) -> None:
        self.writer.discard()


class ProgressLine:
    """A refreshed status line while recording: step, achieved rate, dropped steps, repeated frames."""

    def __init__(self, slot: EpisodeSlot, total_steps: int, every_s: float = 0.25) -> None:
        self.slot = slot
        self.total_steps = total_steps
        self.every_s = every_s
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._wall_start = time.perf_counter()

    def __call__(self, step: Step) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        n = self.slot.recorder.steps
        period = step.stats.last_period()
        rate = 1.0 / period if period > 0 else 0.0
        wall = n / max(now - self._wall_start, 1e-9)
        sys.stderr.write(f"\r  episode {self.slot.index}: step {n:>5}/{self.total_steps}  {rate:5.1f} Hz "
                         f"({wall:5.1f} steps/s wall)  dropped {self.slot.writer.dropped}  "
                         f"repeated frames {self.slot.recorder.repeated_frames}   ")
        sys.stderr.flush()

    def end(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def dataset_info(rig: Rig, connected: ConnectedRig, cameras: Mapping[str, tuple[int, int]], compress: bool,
                 task: str = "", render: str = "") -> DatasetInfo:
    digest = calibration_digest({name: c.digest() for name, c in connected.calibrations.items()})
    return DatasetInfo(rig=rig.name, calibration=digest, fps=rig.control_hz, cameras=list(cameras),
                       image_size={c: list(size) for c, size in cameras.items()}, compress=compress, task=task,
                       render=render)


def open_dataset(path: str, info: DatasetInfo) -> Dataset:
    """For writing: holds the folder's write lock until closed or the process ends, and cleans up after a crash."""
    return Dataset.create_or_open(path, info, say=print)
