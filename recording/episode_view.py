"""A recorded episode in Rerun, laid out as the live view shows the rig (tandem-inspect --episode K --rerun).

Every camera frame at its recorded size, each joint's observed position
(`follower`, from qpos) and the action sent (`command`) in the dataset's units,
and who drove: in an episode of a policy run (it names its checkpoint) the
/intervention mask says when a person had control; a person drove
demonstrations throughout.
Timelines: `step`, and `time` in seconds into the episode (its control
timestamps where usable, else step / fps). The entity paths are the live
view's (robot/display.py), so a live session and its recorded episodes read
the same way in the viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recording.joint_plot import episode_times, takeover_spans
from recording.layout import joint_layout
from recording.reader import EpisodeReader
from robot.display import PERSON, POLICY, ScalarTable, Sink, blueprint, jpeg, open_recording, series_names

CHUNK_STEPS = 1000  # scalar rows per Arrow batch: one batch per episode would hold it all in memory twice


def joint_entities(reader: EpisodeReader) -> list[tuple[str, str]]:
    """(side, joint) of each qpos column, from the file's state_names (`left_waist`), else ALOHA's layout."""
    names = [str(n) for n in reader.attrs.get("state_names", joint_layout(reader.dim))]
    out = []
    for name in names:
        side, _, joint = name.partition("_")
        out.append((side, joint) if joint else ("all", name))
    return out


def log_episode(reader: EpisodeReader, recording: Any, fps: float) -> int:
    """Send one episode to a Rerun recording stream; returns the camera frames sent."""
    import rerun as rr

    qpos, action = reader.qpos, reader.action
    times = episode_times(reader, fps)
    person = np.ones(reader.length, dtype=bool)
    spans = takeover_spans(reader)
    if spans is not None and reader.attrs.get("checkpoint"):  # deploy's: the policy drove but where a person took over
        person[:] = False
        for start, stop in spans:
            person[start:stop] = True
    entities = joint_entities(reader)
    for j, (side, joint) in enumerate(entities):
        series_names(recording, f"joints/{side}/{joint}", ["follower", "command"] if j < reader.action_dim
                     else ["follower"])
    series_names(recording, "control/person", ["a person drives"])
    for first in range(0, reader.length, CHUNK_STEPS):
        table = ScalarTable("duration")
        for step in range(first, min(first + CHUNK_STEPS, reader.length)):
            table.row(step, float(times[step]))
            for j, (side, joint) in enumerate(entities):
                values = [qpos[step, j], action[step, j]] if j < reader.action_dim else [qpos[step, j]]
                table.put(f"joints/{side}/{joint}", values)
            table.put("control/person", [float(person[step])])
        table.send(recording)
    changes = [0, *np.flatnonzero(np.diff(person.astype(np.int8))) + 1] if reader.length else []
    for step in changes:
        _at(recording, step, times)
        recording.log("control", rr.TextLog(f"{PERSON if person[step] else POLICY} drives", level="INFO"))
    frames = 0
    for step in range(reader.length):
        _at(recording, step, times)
        for cam in reader.camera_names:
            recording.log(f"cameras/{cam}", jpeg(reader.image(cam, step), quality=90))
            frames += 1
    return frames


def _at(recording: Any, step: int, times: np.ndarray) -> None:
    recording.set_time("step", sequence=step)
    recording.set_time("time", duration=float(times[step]))


def show_episode(reader: EpisodeReader, target: str, *, fps: float, fallback: Path,
                 say: Callable[[str], None] = print) -> Sink:
    """An episode in the viewer (spawned where there is a display), or saved to a .rrd (`target` names it, or
    `fallback` where there is no display)."""
    recording, sink = open_recording(target, name=reader.path.name, fallback=fallback)
    say(sink.line("rerun"))
    entities = joint_entities(reader)
    sides = list(dict.fromkeys(side for side, _ in entities))  # in the file's order: left, then right
    try:
        recording.send_blueprint(blueprint([(s, [j for side, j in entities if side == s]) for s in sides],
                                           list(reader.camera_names)))
        frames = log_episode(reader, recording, fps)
    finally:
        recording.flush()
        recording.disconnect()
    say(f"rerun: episode {reader.path.name}, {reader.length} steps, {frames} camera frame(s)"
        + (f" in {sink.where}" if sink.kind == "file" else ""))
    return sink
