"""The live view of the rig in Rerun (`--display`): every camera, every joint, who drives, the loop's timing.

`LiveView` is a control-loop observer. On the control thread it only copies what
the step decided (positions, commands, the period error) into a bounded queue
and returns; a display thread turns the copies into Rerun data, one Arrow batch
per tick for every scalar series, and takes the cameras' newest frames itself
at its own rate, so the control thread never touches an image. When the
display thread falls behind, the oldest copies are dropped and counted: the
loop never waits for the display.

Entities (joint values in the dataset's units: radians, grippers 0 closed .. 1 open):
  cameras/<camera>                      JPEG, `image_hz` a second, scaled to `image_height` rows
  joints/<side>/<joint>                 series leader (through the pair's joint map), follower, command
  deploy/<row>/<side>/<joint>           rows deploy notes per step: policy_action, ensembled
  control                               who drives (person, policy, replay): a text line at each change
  control/person                        1 while a person drives, else 0
  loop/period_error_ms, loop/overruns   the step's period minus the nominal one; overruns so far
Timelines: `step` (counted on across episodes: each episode's loop starts at 0) and `time` (wall clock).

Where it goes: `--display` spawns the viewer where there is a display and the
`rerun` binary starts, else saves a .rrd file next to the data (or in the
working directory); `--display FILE.rrd` saves there; `--display serve` serves
it over gRPC for a viewer on another machine. The command says which in one
line at start, and what was shown and dropped at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robot.cameras import Camera
from robot.commands import DISPLAY_AUTO, DISPLAY_SERVE
from robot.loop import Step
from robot.rig import SIDES

log = logging.getLogger(__name__)

APP_ID = "tandem"
VIEWER_PORT = 9876  # Rerun's default: a viewer already running there is reused
SERIES = ("leader", "follower", "command")
CLOSE_TIMEOUT_S = 3.0  # at the end: the display thread's last updates, then the recording's flush, each
PERSON, POLICY = "person", "policy"  # who drives


# -- where the view goes --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sink:
    kind: str  # "viewer", "file" or "serve"
    where: str = ""  # the file's path, or the server's URL
    why: str = ""  # why a file rather than the viewer

    def line(self, what: str = "display") -> str:
        if self.kind == "viewer":
            return f"{what}: in a Rerun viewer (spawned, or the one already running)"
        if self.kind == "serve":
            return (f"{what}: serving at {self.where}; watch with `rerun {self.where}` (from another machine, "
                    "with this one's address); the server stops when this command ends")
        why = f" ({self.why})" if self.why else ""
        return f"{what}: saving to {self.where}{why}; open it with `rerun {self.where}`"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def default_file(prog: str, near: str | Path | None = None) -> Path:
    """A .rrd beside the data a command works on (a dataset folder), else in the working directory."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if near is None:
        return Path.cwd() / f"{prog}-{stamp}.rrd"
    near = Path(near).resolve()
    return near.parent / f"{near.name}-{prog}-{stamp}.rrd"


def open_recording(target: str, *, name: str, fallback: Path) -> tuple[Any, Sink]:
    """A Rerun recording stream sending to `target` (auto, serve or a .rrd path), and where it goes."""
    import rerun as rr

    recording = rr.RecordingStream(APP_ID, recording_id=uuid.uuid4())
    if target == DISPLAY_SERVE:
        return recording, Sink("serve", recording.serve_grpc())
    path, why = Path(target), ""
    if target == DISPLAY_AUTO:
        path = fallback
        why = ("no display here" if not has_display() else
               "no `rerun` viewer on the PATH" if shutil.which("rerun") is None else "")
        if not why:
            try:  # the viewer is started, then connected to only if it listens: with a display that cannot be
                # reached it exits at once, and a stream sent to it would be lost
                recording.spawn(port=VIEWER_PORT, connect=False)
                if _listening(VIEWER_PORT):
                    recording.connect_grpc(f"rerun+http://127.0.0.1:{VIEWER_PORT}/proxy")
                    return recording, Sink("viewer")
                why = "the viewer did not start: its message is above"
            except Exception as exc:  # the viewer's own start-up errors vary; a file still shows the run
                why = f"the viewer did not start: {exc}"
    path.parent.mkdir(parents=True, exist_ok=True)
    recording.save(path)
    recording.send_recording_name(name)
    return recording, Sink("file", str(path), why)


# -- what the view shows of a rig -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointGroup:
    """One follower's joints as the view shows them, with its paired leader."""

    name: str  # the entity under joints/: the follower's side (its name where two followers share a side)
    follower: str
    joints: tuple[str, ...]
    leader: str | None = None
    leader_to_follower: Callable[[np.ndarray], np.ndarray] | None = None  # the pair's joint map
    units: Callable[[np.ndarray], np.ndarray] | None = None  # follower radians -> the dataset's units


def joint_groups(connected: Any) -> list[JointGroup]:
    """The followers of a calibration.connection.ConnectedRig (read by its attributes: robot/ stands below
    calibration/), each with its leader and the joint map that turns the leader's pose into the follower's."""
    followers = list(connected.rig.followers)
    sides = [a.side for a in followers]
    pairs = {follower: (leader, joint_map) for leader, follower, joint_map in connected.joint_maps()}
    groups = []
    for arm in sorted(followers, key=lambda a: (SIDES.index(a.side), a.name)):  # left first, as in qpos rows
        leader, joint_map = pairs.get(arm.name, (None, None))
        groups.append(JointGroup(arm.side if sides.count(arm.side) == 1 else arm.name, arm.name,
                                 tuple(connected.arms[arm.name].joint_names), leader, joint_map,
                                 _gripper_opening(joint_map)))
    return groups


def _gripper_opening(joint_map: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The follower's gripper as its opening 0..1 (the dataset's unit), from the pair's calibrations."""
    if joint_map is None or joint_map.gripper is None:
        return None
    index, calibration = joint_map.gripper, joint_map.follower

    def units(radians: np.ndarray) -> np.ndarray:
        out = np.array(radians, dtype=np.float64)
        out[index] = calibration.gripper_normalized(out[index])
        return out

    return units


def row_entities(names: Sequence[str], groups: Sequence[JointGroup]) -> list[tuple[str, str] | None]:
    """(side, joint) for each column of a qpos/action row named like `left_waist`; None where no group has it."""
    known = {f"{g.name}_{joint}": (g.name, joint) for g in groups for joint in g.joints}
    return [known.get(str(n)) for n in names]


# -- scalars in batches ---------------------------------------------------------------------------------------------
class ScalarTable:
    """Scalar series of many entities over a run of steps, sent to Rerun as one Arrow record batch.

    A Rerun call per entity per step costs tens of microseconds of Python each: 30 entities at 50 Hz would
    take the display thread more time than it saves. Here the Python work is one small array per entity per
    tick, and Rerun splits the batch into per-entity chunks in native code.
    """

    def __init__(self, time_kind: str = "timestamp") -> None:
        self.time_kind = time_kind  # "timestamp" (wall clock, live) or "duration" (seconds into an episode)
        self.steps: list[int] = []
        self.times: list[float] = []
        self.cells: dict[str, dict[int, Sequence[float]]] = {}

    def row(self, step: int, t: float) -> None:
        if not self.steps or self.steps[-1] != step:
            self.steps.append(step)
            self.times.append(t)

    def put(self, entity: str, values: Sequence[float]) -> None:
        self.cells.setdefault(entity, {})[len(self.steps) - 1] = values

    def batch(self) -> Any:
        import pyarrow as pa
        import rerun as rr

        descriptor = next(iter(rr.Scalars.columns(scalars=[0.0]))).component_descriptor()
        n = len(self.steps)
        nanos = np.round(np.asarray(self.times, dtype=np.float64) * 1e9).astype(np.int64)
        time_type = pa.timestamp("ns") if self.time_kind == "timestamp" else pa.duration("ns")
        fields = [_index_field("step", pa.int64()), _index_field("time", time_type)]
        arrays = [pa.array(np.asarray(self.steps, dtype=np.int64)), pa.array(nanos, type=time_type)]
        for entity, cells in self.cells.items():
            width = len(next(iter(cells.values())))
            valid = np.zeros(n, dtype=bool)
            values = np.empty((len(cells), width), dtype=np.float64)
            for k, (r, v) in enumerate(sorted(cells.items())):
                valid[r] = True
                values[k] = v
            offsets = np.concatenate([[0], np.cumsum(valid * width)]).astype(np.int32)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.ravel()),
                                                   mask=pa.array(~valid)))
            fields.append(pa.field(entity, pa.list_(pa.float64()), metadata={
                rr.RERUN_KIND: b"data", rr.SORBET_ENTITY_PATH: entity.encode(),
                rr.SORBET_ARCHETYPE_NAME: descriptor.archetype.encode(),
                rr.SORBET_COMPONENT: descriptor.component.encode(),
                rr.SORBET_COMPONENT_TYPE: descriptor.component_type.encode()}))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def send(self, recording: Any) -> None:
        if self.steps and self.cells:
            recording.send_record_batch(self.batch())


def _index_field(name: str, kind: Any) -> Any:
    import pyarrow as pa
    import rerun as rr

    return pa.field(name, kind, metadata={rr.RERUN_KIND: rr.RERUN_KIND_INDEX, rr.SORBET_INDEX_NAME: name.encode()})


def jpeg(image: np.ndarray, height: int | None = None, quality: int = 80) -> Any:
    """An RGB frame as a Rerun JPEG image, scaled down to `height` rows where it is taller."""
    import rerun as rr

    h, w = image.shape[:2]
    if height and h > height:
        image = cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"a {w}x{h} frame could not be JPEG-encoded")
    return rr.EncodedImage(contents=data.tobytes(), media_type="image/jpeg")


def series_names(recording: Any, entity: str, names: Sequence[str]) -> None:
    import rerun as rr

    recording.log(entity, rr.SeriesLines(names=list(names)), static=True)


def blueprint(sides: Sequence[tuple[str, Sequence[str]]], cameras: Sequence[str],
              extra_rows: Sequence[str] = ()) -> Any:
    """Cameras in a grid beside one plot per joint (left | right), each plot with deploy's rows for that joint.
    `sides`: (side, its joints) in the order the columns go."""
    import rerun.blueprint as rrb

    plots = []
    for i in range(max((len(joints) for _, joints in sides), default=0)):
        for side, joints in sides:
            if i < len(joints):
                extra = [f"+ deploy/{row}/{side}/{joints[i]}" for row in extra_rows]
                plots.append(rrb.TimeSeriesView(origin=f"joints/{side}/{joints[i]}",
                                                contents=["+ $origin/**", *extra], name=f"{side} {joints[i]}"))
    status = [rrb.TimeSeriesView(origin="loop/period_error_ms", name="period error, ms"),
              rrb.TimeSeriesView(origin="loop/overruns", name="overruns"),
              rrb.TimeSeriesView(origin="control/person", name="a person drives"),
              rrb.TextLogView(origin="control", name="control")]
    left = [rrb.Grid(*[rrb.Spatial2DView(origin=f"cameras/{c}", name=c) for c in cameras])] if cameras else []
    return rrb.Blueprint(rrb.Horizontal(rrb.Vertical(*left, *status),
                                        rrb.Grid(*plots, grid_columns=max(1, len(sides)))),
                         collapse_panels=True)


# -- the observer ---------------------------------------------------------------------------------------------------
@dataclass
class _Copy:
    """What the control thread hands over for one step (or, with positions None, notes that came after it)."""
    seq: int
    wall: float
    positions: dict[str, np.ndarray] | None
    commands: dict[str, np.ndarray]
    period_error_ms: float
    overruns: int
    notes: dict[str, Any] | None


class LiveView:
    def __init__(self, recording: Any, groups: Sequence[JointGroup], cameras: Mapping[str, Camera], *,
                 sink: Sink | None = None, control: str = PERSON, row_names: Sequence[str] = (),
                 extra_rows: Sequence[str] = (), image_hz: float = 10.0, image_height: int | None = 240,
                 tick_hz: float = 10.0, capacity: int = 100, say: Callable[[str], None] = print) -> None:
        self.recording = recording
        self.groups = list(groups)
        self.cameras = dict(cameras)
        self.sink = sink
        self.image_hz = image_hz
        self.image_height = image_height
        self.tick_s = 1.0 / tick_hz
        self.capacity = capacity
        self.say = say
        self.steps = 0  # steps the loop handed over
        self.shown = 0  # steps sent to Rerun
        self.dropped = 0  # copies dropped because the display thread was behind (or had failed)
        self.frames = 0  # camera frames sent
        self.camera_errors = 0  # cameras that had no frame when asked (stale, closed)
        self.error = ""  # why the display stopped showing, if it did
        self.copy_s = 0.0  # control-thread time spent in the observer, all steps together
        self.thread_cpu_s = 0.0  # CPU time of the display thread, once closed
        self._rows = row_entities(row_names, self.groups)
        self._control, self._shown_control = control, None
        self._queue: deque[_Copy] = deque()
        self._lock = threading.Lock()
        self._seq = -1
        self._last_index: int | None = None
        self._pending: tuple[int, dict[str, Any]] | None = None
        self._named: set[str] = set()  # entities whose series names were sent
        self._group_series: dict[str, list[str]] = {}
        self._frame_index: dict[str, int] = {}
        self._last_seq = -1
        self._closed = False
        self._stop = threading.Event()
        recording.send_blueprint(blueprint([(g.name, g.joints) for g in self.groups], list(self.cameras),
                                           extra_rows))
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)
        self._thread.start()

    # -- the control thread: copy and return ------------------------------------------------------------------------
    def __call__(self, step: Step) -> None:
        started = time.perf_counter()
        self._seq += 1
        notes = None
        if self._pending is not None and self._pending[0] == step.index:
            notes = self._pending[1]
        self._pending = None
        self._last_index = step.index
        self._put(_Copy(self._seq, time.time(), {n: s.position.copy() for n, s in step.states.items()},
                        {n: c.copy() for n, c in step.commands.items()},
                        (step.stats.last_period() - step.stats.period_s) * 1e3, step.stats.overruns, notes))
        self.steps += 1
        self.copy_s += time.perf_counter() - started

    def note(self, step_index: int, *, control: str | None = None, **rows: np.ndarray | None) -> None:
        """Facts of a step beyond the loop's (deploy: who drives, the policy's action, the ensembled action).

        Rows are qpos/action rows named by `row_names`; None leaves a row out. Call it before the view sees the
        step (they travel with it) or after (they are shown at the same step)."""
        notes: dict[str, Any] = {k: np.array(v, dtype=np.float64) for k, v in rows.items() if v is not None}
        if control is not None:
            notes["control"] = control
        if step_index == self._last_index:
            self._put(_Copy(self._seq, time.time(), None, {}, 0.0, 0, notes))
        else:
            self._pending = (step_index, notes)

    def _put(self, copy: _Copy) -> None:
        with self._lock:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()  # the oldest goes: a live view wants the newest
                self.dropped += 1
            self._queue.append(copy)

    # -- the display thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        next_frames = 0.0
        while True:
            stopping = self._stop.wait(self.tick_s)
            with self._lock:
                copies, self._queue = list(self._queue), deque()
            if self.error:
                with self._lock:
                    self.dropped += len(copies)
            else:
                try:
                    if copies:
                        self._show(copies)
                    if self.cameras and (stopping or time.monotonic() >= next_frames):
                        next_frames = time.monotonic() + 1.0 / self.image_hz
                        self._show_frames()
                except Exception as exc:  # the view never ends a session: it stops showing and says why
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.warning("display: stopped showing the rig: %s", self.error)
            if stopping:
                with self._lock:
                    if not self._queue:
                        self.thread_cpu_s = time.thread_time()
                        return

    def _show(self, copies: list[_Copy]) -> None:
        table = ScalarTable("timestamp")
        for copy in copies:
            table.row(copy.seq, copy.wall)
            if copy.positions is not None:
                self._put_joints(table, copy)
                table.put("loop/period_error_ms", [copy.period_error_ms])
                table.put("loop/overruns", [float(copy.overruns)])
                self.shown += 1
            notes = copy.notes or {}
            self._control = notes.get("control", self._control)
            self._name("control/person", ["a person drives"])
            table.put("control/person", [float(self._control == PERSON)])
            for name, row in notes.items():
                if isinstance(row, np.ndarray):
                    self._put_row(table, name, row)
            if self._control != self._shown_control:
                self._set_time(copy.seq, copy.wall)
                self.recording.log("control", _text(self._control))
                self._shown_control = self._control
            self._last_seq = copy.seq
        table.send(self.recording)

    def _put_joints(self, table: ScalarTable, copy: _Copy) -> None:
        for g in self.groups:
            leader = copy.positions.get(g.leader) if g.leader and g.leader_to_follower else None
            series = {"leader": None if leader is None else g.leader_to_follower(leader),
                      "follower": copy.positions.get(g.follower), "command": copy.commands.get(g.follower)}
            # the series a group shows are those its first step had (replay reads no leaders, say)
            names = self._group_series.setdefault(g.name, [n for n in SERIES if series[n] is not None])
            if any(series[n] is None for n in names):
                continue  # an arm this step did not report: a gap in its plots
            values = [self._units(g, series[n]) for n in names]
            for j, joint in enumerate(g.joints):
                self._name(f"joints/{g.name}/{joint}", names)
                table.put(f"joints/{g.name}/{joint}", [v[j] for v in values])

    @staticmethod
    def _units(group: JointGroup, radians: np.ndarray) -> np.ndarray:
        return group.units(radians) if group.units is not None else radians

    def _put_row(self, table: ScalarTable, name: str, row: np.ndarray) -> None:
        for where, value in zip(self._rows, row, strict=False):
            if where is not None:
                entity = f"deploy/{name}/{where[0]}/{where[1]}"
                self._name(entity, [name])
                table.put(entity, [float(value)])

    def _name(self, entity: str, names: Sequence[str]) -> None:
        """The names of an entity's series, sent once (static), before its first values."""
        if entity not in self._named:
            self._named.add(entity)
            series_names(self.recording, entity, names)

    def _show_frames(self) -> None:
        if self._last_seq < 0:
            return
        self._set_time(self._last_seq, time.time())
        for name, camera in self.cameras.items():
            try:
                frame = camera.latest()
            except (RuntimeError, OSError, ValueError, TimeoutError):  # stale or closed: the loop says so itself
                self.camera_errors += 1
                continue
            if self._frame_index.get(name) == frame.index:
                continue  # no new frame since the last look
            self._frame_index[name] = frame.index
            self.recording.log(f"cameras/{name}", jpeg(frame.image, self.image_height))
            self.frames += 1

    def _set_time(self, seq: int, wall: float) -> None:
        self.recording.set_time("step", sequence=seq)
        self.recording.set_time("time", timestamp=wall)

    # -- the end ----------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Show what is queued, take the cameras once more, finish the file (or the stream), say what was shown."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        # Short bounds: the view closes before the arms are released, which must not wait on a slow viewer.
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            self.error = self.error or f"the display thread did not finish within {CLOSE_TIMEOUT_S:g} s"
        try:
            self.recording.flush(timeout_sec=CLOSE_TIMEOUT_S)
            self.recording.disconnect()
        except Exception as exc:  # a display that cannot finish must not hide the session's result
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        self.say(self.summary_line())

    def summary_line(self) -> str:
        why = "after it stopped" if self.error else "the display fell behind; the loop never waited"
        dropped = f", {self.dropped} update(s) dropped ({why})" if self.dropped else ", none dropped"
        frames = f", {self.frames} camera frame(s)" if self.cameras else ""
        if self.camera_errors:
            frames += f" ({self.camera_errors} time(s) a camera had no fresh frame)"
        where = f"; saved to {self.sink.where} (`rerun {self.sink.where}`)" if self.sink and \
            self.sink.kind == "file" else ""
        stopped = f"; it stopped showing: {self.error}" if self.error else ""
        return f"display: {self.shown} of {self.steps} steps shown{dropped}{frames}{where}{stopped}"

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(control: str) -> Any:
    import rerun as rr

    return rr.TextLog(f"{control} drives", level="INFO")


def hardware_cameras(rig: Any, display: str | None, stack: ExitStack) -> dict[str, Camera]:
    """A rig's USB cameras, opened for the view of a command that does not record them (none without --display;
    a virtual rig's cameras live in its simulated world). Closed with `stack`."""
    if display is None:
        return {}
    from robot.cameras import open_cameras, opened_by_world

    cameras = open_cameras([c for c in rig.cameras if not opened_by_world(c)])
    stack.callback(lambda: [c.close() for c in cameras.values()])
    return cameras


@contextmanager
def live_view(target: str | None, connected: Any, cameras: Mapping[str, Camera], *, prog: str,
              near: str | Path | None = None, control: str = PERSON, row_names: Sequence[str] = (),
              extra_rows: Sequence[str] = (), say: Callable[[str], None] = print, **options: Any
              ) -> Iterator[LiveView | None]:
    """The live view of a connected rig for `--display TARGET` (None: no view), closed on the way out."""
    if target is None:
        yield None
        return
    recording, sink = open_recording(target, name=prog, fallback=default_file(prog, near))
    say(sink.line())
    try:
        view = LiveView(recording, joint_groups(connected), cameras, sink=sink, control=control, row_names=row_names,
                        extra_rows=extra_rows, say=say, **options)
    except BaseException:  # no view to close it: the file is finished (or the server stopped) here
        recording.disconnect()
        raise
    try:
        yield view
    finally:
        view.close()
