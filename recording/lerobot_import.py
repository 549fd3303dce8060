"""A LeRobotDataset v3.0 folder converted into a tandem dataset folder (ALOHA-layout HDF5 episodes + dataset.json).

Converted once rather than read in place, so everything tandem does with a
dataset applies: the folder's write lock and crash reconciliation, strict checks
of every file, the training image cache, ALOHA's own loaders; and training does
not decode AV1 every epoch.

The LeRobot folder is checked against the rig before anything is written, and a
feature that does not fit is refused by name: observation.state and action must
have the rig's joints (their number, and their names where the folder gives
any), fps must be the rig's rate, and an existing target dataset's cameras must
all be there as observation.images.<camera>. Cameras keep their names (an
aloha_sim dataset's `top` stays `top`). observation.velocity and
observation.effort fill /observations/qvel and /observations/effort (zeros where
absent); `intervention` and `episode_kind` (tandem's exports) give back
/intervention and each episode's kind; anything else is a demo with no
intervention. Episodes are written one at a time through EpisodeWriter and
indexed as they finish, so an interrupted import keeps the episodes it finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recording import lerobot_format as fmt
from recording.dataset import KINDS, Dataset, DatasetInfo, EpisodeInfo
from recording.layout import rig_state_names
from recording.writer import EpisodeWriter, StepRecord
from robot.commands import interrupts_deferred
from robot.rig import Rig
from robot.sim.tasks import task_described_as

FRAME_TOLERANCE_S = 1e-4  # LeRobotDataset's default tolerance_s between a frame's timestamp and its video frame
WRITER_QUEUE = 64  # steps waiting for the writer thread; the import waits rather than drop one


@dataclass(frozen=True)
class LeRobotEpisode:
    index: int
    length: int
    tasks: tuple[str, ...]
    data_file: str
    start: int  # dataset_from_index: the global index of its first frame
    videos: dict[str, tuple[str, float]]  # video feature -> (file, from_timestamp)


@dataclass(frozen=True)
class ImportSummary:
    dest: Path
    episodes: list[EpisodeInfo]
    frames: int
    cameras: tuple[str, ...]
    filled: tuple[str, ...]  # tandem datasets written as zeros for lack of a feature
    seconds: float


class LeRobotFolder:
    """A LeRobot v3.0 folder, read with pyarrow and PyAV: its metadata checked when opened, frames on demand."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        info_path = self.root / fmt.INFO
        if not info_path.is_file():
            raise fmt.LeRobotFormatError(f"{self.root}: not a LeRobot dataset folder (no {fmt.INFO})")
        try:
            info = json.loads(info_path.read_text())
        except ValueError as exc:
            raise fmt.LeRobotFormatError(f"{info_path}: not valid JSON ({exc})") from None
        self.info_path = info_path
        self.info = info if isinstance(info, dict) else {}
        version = self.info.get("codebase_version")
        if version != fmt.CODEBASE_VERSION:
            raise fmt.LeRobotFormatError(f"{info_path}: codebase_version is {version!r}; tandem-import reads "
                                         f"{fmt.CODEBASE_VERSION} (convert older datasets with LeRobot's converter)")
        self.fps = self._field("fps", int)
        if self.fps <= 0:
            raise fmt.LeRobotFormatError(f"{info_path}: \"fps\" is {self.fps}, expected a positive rate")
        self.features: dict[str, dict] = self._field("features", dict)
        for key, feature in self.features.items():
            if not isinstance(feature, dict) or "dtype" not in feature or not isinstance(feature.get("shape"), list):
                raise fmt.LeRobotFormatError(f"{info_path}: feature {key} has no dtype and shape list")
        self.data_path = self._field("data_path", str)
        self.video_path = self.info.get("video_path")
        if any(f["dtype"] == "video" for f in self.features.values()) and not isinstance(self.video_path, str):
            raise fmt.LeRobotFormatError(f"{info_path}: has video features but \"video_path\" is "
                                         f"{json.dumps(self.video_path)}")
        self.cameras = {key.removeprefix(fmt.IMAGES): key for key, f in self.features.items()
                        if key.startswith(fmt.IMAGES) and f["dtype"] in ("video", "image")}
        self.tasks = self._read_tasks()
        self.episodes = self._read_episodes()
        self._table: tuple | None = None  # the data file read last: (its path, table, episode_index column)

    def _field(self, name: str, kind: type) -> object:
        value = self.info.get(name)
        if type(value) is not kind:
            expected = {int: "a whole number", dict: "an object", str: "text"}[kind]
            raise fmt.LeRobotFormatError(f"{self.info_path}: \"{name}\" is {json.dumps(value)[:60]}, expected "
                                         f"{expected}")
        return value

    def _read_tasks(self) -> list[str]:
        import pyarrow.parquet as pq

        path = self.root / fmt.TASKS
        if not path.is_file():
            raise fmt.LeRobotFormatError(f"{path}: missing (every v3.0 dataset has its tasks there)")
        table = pq.read_table(path)
        names = [n for n in table.column_names if n != "task_index"]
        if "task_index" not in table.column_names or len(names) != 1:
            raise fmt.LeRobotFormatError(f"{path}: expected the columns task_index and the task text, found "
                                         f"{', '.join(table.column_names)}")
        order = table.column("task_index").to_pylist()
        texts = [str(t) for t in table.column(names[0]).to_pylist()]
        if sorted(order) != list(range(len(order))):
            raise fmt.LeRobotFormatError(f"{path}: task_index is {order}, expected 0..{len(order) - 1}")
        return [text for _, text in sorted(zip(order, texts, strict=True))]

    def _read_episodes(self) -> list[LeRobotEpisode]:
        import pyarrow.parquet as pq

        paths = sorted((self.root / fmt.EPISODES_DIR).glob("*/*.parquet"))
        if not paths:
            raise fmt.LeRobotFormatError(f"{self.root / fmt.EPISODES_DIR}: no episode files (chunk-*/file-*.parquet)")
        rows = []
        for path in paths:
            columns = set(pq.read_schema(path).names)
            wanted = ["episode_index", "length", "tasks", "data/chunk_index", "data/file_index", "dataset_from_index"]
            for key, f in self.features.items():
                if f["dtype"] == "video":
                    wanted += [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
            missing = [c for c in wanted if c not in columns]
            if missing:
                raise fmt.LeRobotFormatError(f"{path}: no column {missing[0]}")
            rows += [(path, row) for row in pq.read_table(path, columns=wanted).to_pylist()]
        rows.sort(key=lambda item: item[1]["episode_index"])
        episodes = []
        for position, (path, row) in enumerate(rows):
            if row["episode_index"] != position:
                raise fmt.LeRobotFormatError(f"{path}: episode_index {row['episode_index']} where {position} was "
                                             "expected (episodes are numbered 0..N-1)")
            videos = {key: (self.video_path.format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                                   file_index=row[f"videos/{key}/file_index"]),
                            float(row[f"videos/{key}/from_timestamp"]))
                      for key, f in self.features.items() if f["dtype"] == "video"}
            data = self.data_path.format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
            episodes.append(LeRobotEpisode(position, int(row["length"]), tuple(row["tasks"] or ()), data,
                                           int(row["dataset_from_index"]), videos))
        return episodes

    # -- one episode's rows ---------------------------------------------------------------------------------------
    def rows(self, episode: LeRobotEpisode) -> dict[str, np.ndarray]:
        """Every data column of one episode, in frame order, checked: frame count, frame_index 0..T-1, index."""
        import pyarrow.parquet as pq

        if self._table is None or self._table[0] != episode.data_file:
            path = self.root / episode.data_file
            if not path.is_file():
                raise fmt.LeRobotFormatError(f"{path}: missing ({fmt.EPISODES_DIR} puts episode {episode.index} "
                                             "there)")
            table = pq.read_table(path)
            self._table = (episode.data_file, table, np.asarray(table.column("episode_index")))
        _, table, owners = self._table
        where = f"{self.root / episode.data_file}, episode {episode.index}"
        picked = table.take(np.flatnonzero(owners == episode.index))
        if picked.num_rows != episode.length:
            raise fmt.LeRobotFormatError(f"{where}: {picked.num_rows} rows, its episode entry says {episode.length}")
        for name in ("frame_index", "timestamp"):
            if name not in picked.column_names:
                raise fmt.LeRobotFormatError(f"{where}: no column {name}")
        out = {}
        for name in picked.column_names:
            feature = self.features.get(name)
            if feature is None:
                continue
            out[name] = column_values(picked.column(name), feature, f"{where}: {name}")
        order = np.argsort(out["frame_index"], kind="stable")
        out = {name: values[order] for name, values in out.items()}
        if not np.array_equal(out["frame_index"], np.arange(episode.length)):
            raise fmt.LeRobotFormatError(f"{where}: frame_index is not 0..{episode.length - 1}")
        if "index" in out and not np.array_equal(out["index"], episode.start + np.arange(episode.length)):
            raise fmt.LeRobotFormatError(f"{where}: index is not dataset_from_index {episode.start} onwards")
        return out

    # -- one camera's pictures of one episode -----------------------------------------------------------------------
    def frames(self, episode: LeRobotEpisode, camera: str, timestamps: np.ndarray,
               rows: Mapping[str, np.ndarray]) -> Iterator[tuple[float, np.ndarray]]:
        """(time in the episode, (H, W, 3) uint8 RGB) for each timestamp: the video frame at from_timestamp +
        timestamp (as LeRobotDataset finds it, within FRAME_TOLERANCE_S), or the image stored in the row."""
        key = self.cameras[camera]
        feature = self.features[key]
        if feature["dtype"] == "image":
            yield from _stored_images(rows[key], timestamps, f"{self.root / episode.data_file}: {key}")
            return
        file, start = episode.videos[key]
        yield from _video_frames(self.root / file, start, timestamps, key, episode.index)


def column_values(column: object, feature: Mapping, where: str) -> np.ndarray:
    """A parquet column as numpy: (T, n) for vectors, (T,) for scalars, encoded images as they are."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if feature["dtype"] == "image":
        return np.array(column.to_pylist(), dtype=object)
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) or \
            pa.types.is_large_list(column.type):
        width = int(feature["shape"][0])
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
        if values.size != len(column) * width:
            raise fmt.LeRobotFormatError(f"{where}: rows are not all of {width} values")
        return values.reshape(len(column), width)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _video_frames(path: Path, start: float, timestamps: np.ndarray, key: str,
                  episode: int) -> Iterator[tuple[float, np.ndarray]]:
    import av

    if not path.is_file():
        raise fmt.LeRobotFormatError(f"{path}: missing ({key} of episode {episode} is there)")
    try:
        yield from _decoded(path, start, timestamps, key, episode)
    except av.FFmpegError as exc:
        raise fmt.LeRobotFormatError(f"{path}: {key} of episode {episode} cannot be decoded ({exc})") from None


def _decoded(path: Path, start: float, timestamps: np.ndarray, key: str,
             episode: int) -> Iterator[tuple[float, np.ndarray]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        first = start + float(timestamps[0]) if len(timestamps) else start
        container.seek(max(0, int((first - FRAME_TOLERANCE_S) / stream.time_base)), stream=stream, backward=True)
        decoded = container.decode(stream)
        frame_time, image = -np.inf, None
        for t in timestamps:
            wanted = start + float(t)
            while frame_time < wanted - FRAME_TOLERANCE_S:
                frame = next(decoded, None)
                if frame is None:
                    raise fmt.LeRobotFormatError(f"{path}: {key} of episode {episode} ends before {wanted:.4f} s "
                                                 f"(frame at timestamp {float(t):.4f} s)")
                frame_time, image = float(frame.time), frame
            if abs(frame_time - wanted) > FRAME_TOLERANCE_S:
                raise fmt.LeRobotFormatError(f"{path}: {key} of episode {episode} has no frame at {wanted:.4f} s "
                                             f"(timestamp {float(t):.4f} s); the nearest is at {frame_time:.4f} s")
            yield frame_time - start, image.to_ndarray(format="rgb24")


def _stored_images(cells: np.ndarray, timestamps: np.ndarray, where: str) -> Iterator[tuple[float, np.ndarray]]:
    """Images kept in the parquet rows (dtype "image": {"bytes": PNG/JPEG, "path": ...})."""
    import cv2

    for i, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise fmt.LeRobotFormatError(f"{where}: frame {i} holds no decodable image")
        yield float(timestamps[i]), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# -- does it fit the rig ----------------------------------------------------------------------------------------------
def check_fits(folder: LeRobotFolder, rig: Rig, existing: DatasetInfo | None) -> list[str]:
    """Refuse (LeRobotFormatError naming the feature) what the rig cannot use; returns the features it fills in."""
    where = folder.info_path
    names = rig_state_names(rig)
    for key in (fmt.STATE, fmt.ACTION, fmt.VELOCITY, fmt.EFFORT):
        feature = folder.features.get(key)
        if feature is None:
            if key in (fmt.STATE, fmt.ACTION):
                raise fmt.LeRobotFormatError(f"{where}: no {key} feature; a tandem episode needs the rig's "
                                             f"{len(names)} joint values as {fmt.STATE} and {fmt.ACTION}")
            continue
        if feature["dtype"] not in ("float32", "float64") or len(feature["shape"]) != 1:
            raise fmt.LeRobotFormatError(f"{where}: {key} is {feature['dtype']} of shape {feature['shape']}, expected "
                                         f"float32 of shape [{len(names)}]")
        dim = feature["shape"][0]
        given = fmt.feature_names(feature)
        if dim != len(names):
            shown = f" ({', '.join(given)})" if given else ""
            raise fmt.LeRobotFormatError(f"{where}: {key} has {dim} values{shown}; rig {rig.name} has {len(names)} "
                                         f"joints ({', '.join(names)})")
        if given is not None and tuple(given) != names:
            i = next((i for i, (a, b) in enumerate(zip(given, names, strict=False)) if a != b), min(len(given), dim))
            raise fmt.LeRobotFormatError(f"{where}: {key} names value {i} "
                                         f"{given[i] if i < len(given) else '(none)'!r} where rig {rig.name} has "
                                         f"{names[i]!r} ({key}: {', '.join(given)}; rig: {', '.join(names)})")
    if abs(folder.fps - rig.control_hz) > 1e-6:
        raise fmt.LeRobotFormatError(f"{where}: fps is {folder.fps}, rig {rig.name} runs at {rig.control_hz:g} Hz; "
                                     "the policy's chunks would run at the wrong speed")
    for key in folder.cameras.values():
        shape = folder.features[key]["shape"]
        if len(shape) != 3 or 3 not in (shape[0], shape[2]):
            raise fmt.LeRobotFormatError(f"{where}: {key} has shape {shape}, expected [height, width, 3]")
    for key, feature in ((fmt.INTERVENTION, "bool"), (fmt.EPISODE_KIND, "string")):
        if key in folder.features and folder.features[key]["dtype"] != feature:
            raise fmt.LeRobotFormatError(f"{where}: {key} is {folder.features[key]['dtype']}, expected {feature}")
    if existing is not None:
        missing = [cam for cam in existing.cameras if cam not in folder.cameras]
        if missing:
            raise fmt.LeRobotFormatError(f"{where}: no {fmt.IMAGES}{missing[0]}; the target dataset records cameras "
                                         f"{', '.join(existing.cameras)} (this folder has "
                                         f"{', '.join(folder.cameras) or 'none'})")
    return [key for key in (fmt.VELOCITY, fmt.EFFORT) if key not in folder.features]


def image_size(folder: LeRobotFolder, camera: str) -> tuple[int, int]:
    feature = folder.features[folder.cameras[camera]]
    shape, names = feature["shape"], feature.get("names") or []
    if names and names[0] in ("channel", "channels"):  # (C, H, W), as some ported datasets say
        return shape[1], shape[2]
    return shape[0], shape[1]


# -- the conversion ---------------------------------------------------------------------------------------------------
def episode_kind(rows: Mapping[str, np.ndarray], where: str) -> str:
    kinds = rows.get(fmt.EPISODE_KIND)
    if kinds is None:
        return "demo"
    found = sorted({str(k) for k in kinds})
    if len(found) != 1 or found[0] not in KINDS:
        raise fmt.LeRobotFormatError(f"{where}: {fmt.EPISODE_KIND} is {', '.join(found)}; expected one of "
                                     f"{', '.join(KINDS)} for the whole episode")
    return found[0]


def finite(values: np.ndarray, where: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        row, column = np.argwhere(~np.isfinite(values))[0][:2] if values.ndim == 2 else \
            (np.argwhere(~np.isfinite(values))[0][0], 0)
        raise fmt.LeRobotFormatError(f"{where}: frame {row} column {column} is {values[row].reshape(-1)[column]}; "
                                     "nothing non-finite is imported")
    return values


def import_dataset(source: str | Path, dest: str | Path, rig: Rig, *, compress: bool = True, jpeg_quality: int = 50,
                   say: Callable[[str], None] = print,
                   progress: Callable[[Iterable], Iterable] = lambda items: items) -> ImportSummary:
    """Convert the LeRobot v3.0 folder `source` into the tandem dataset `dest` (created, or appended to when it was
    recorded the same way) for `rig`."""
    started = time.perf_counter()
    folder = LeRobotFolder(source)
    existing = Dataset.open(dest).info if (Path(dest) / "dataset.json").is_file() else None
    filled = check_fits(folder, rig, existing)
    cameras = {cam: image_size(folder, cam) for cam in (existing.cameras if existing else folder.cameras)}
    shared = {t for e in folder.episodes for t in e.tasks}
    # dataset.json's task names a simulated task (the sim builds its world from it); LeRobot's task is a sentence,
    # kept as each episode's task_description. A sentence that is one of the sim tasks' names that task.
    info = DatasetInfo(rig=rig.name, calibration="", fps=float(folder.fps), cameras=list(cameras),
                       image_size={c: list(s) for c, s in cameras.items()}, compress=compress,
                       task=task_described_as(next(iter(shared))) if len(shared) == 1 else "")
    for key in filled:
        say(f"{folder.root}: no {key}; {fmt.ROW_FEATURES[key]} is written as zeros")
    dropped = [folder.cameras[c] for c in folder.cameras if c not in cameras]
    if dropped:
        say(f"{folder.root}: {', '.join(dropped)} not imported: the target dataset records "
            f"{', '.join(cameras) or 'no camera'}")
    names = list(rig_state_names(rig))
    for episode in folder.episodes:  # every row read and checked before anything is written
        episode_rows(folder, episode, len(names))
    imported: list[EpisodeInfo] = []
    with Dataset.create_or_open(dest, info, say=say) as dataset:
        for episode in progress(folder.episodes):
            imported.append(_import_episode(folder, episode, dataset, cameras, names, compress, jpeg_quality))
    return ImportSummary(Path(dest), imported, sum(e.length for e in imported), tuple(cameras), tuple(filled),
                         time.perf_counter() - started)


@dataclass(frozen=True)
class EpisodeRows:
    """One LeRobot episode's data rows as a tandem episode takes them, checked."""

    rows: dict[str, np.ndarray]
    kind: str
    values: dict[str, np.ndarray]  # observation.state, velocity, effort, action: (T, dim) float32, finite
    intervention: np.ndarray
    task: str
    timestamps: np.ndarray


def episode_rows(folder: LeRobotFolder, episode: LeRobotEpisode, dim: int) -> EpisodeRows:
    where = f"{folder.root / episode.data_file}, episode {episode.index}"
    rows = folder.rows(episode)
    length = episode.length
    values = {key: finite(rows[key], f"{where}: {key}") if key in rows else np.zeros((length, dim), np.float32)
              for key in (fmt.STATE, fmt.VELOCITY, fmt.EFFORT, fmt.ACTION)}
    intervention = rows.get(fmt.INTERVENTION, np.zeros(length, bool)).reshape(length).astype(bool)
    task_index = rows.get("task_index")
    if task_index is not None and 0 <= int(task_index[0]) < len(folder.tasks):
        task = folder.tasks[int(task_index[0])]
    else:
        task = episode.tasks[0] if episode.tasks else ""
    return EpisodeRows(rows, episode_kind(rows, where), values, intervention, task,
                       rows["timestamp"].astype(np.float64))


def _import_episode(folder: LeRobotFolder, episode: LeRobotEpisode, dataset: Dataset,
                    cameras: Mapping[str, tuple[int, int]], names: Sequence[str], compress: bool,
                    jpeg_quality: int) -> EpisodeInfo:
    where = f"{folder.root / episode.data_file}, episode {episode.index}"
    data = episode_rows(folder, episode, len(names))
    rows, kind, values, intervention, task, timestamps = (data.rows, data.kind, data.values, data.intervention,
                                                          data.task, data.timestamps)
    length = episode.length
    index = dataset.next_index()
    attrs = {"sim": dataset.info.rig == "sim", "fps": dataset.info.fps, "rig": dataset.info.rig, "calibration": "",
             "kind": kind, "task": dataset.info.task, "task_description": task, "state_names": list(names),
             "source": str(folder.root),
             "source_episode": episode.index}
    with interrupts_deferred():  # an interrupt inside the constructor would leave its writer thread running
        writer = EpisodeWriter(dataset.path(index), cameras, compress=compress, jpeg_quality=jpeg_quality,
                               dim=len(names), attrs=attrs, queue_size=WRITER_QUEUE)
    with writer, ExitStack() as decoding:  # each camera's video closed on the way out, an error's way too
        streams = {cam: decoding.enter_context(closing(folder.frames(episode, cam, timestamps, rows)))
                   for cam in cameras}
        for i in range(length):
            images, image_t = {}, {}
            for cam, stream in streams.items():
                image_t[cam], images[cam] = next(stream)
                if images[cam].shape[:2] != cameras[cam]:
                    raise fmt.LeRobotFormatError(f"{where}: {folder.cameras[cam]} frame {i} is "
                                                 f"{images[cam].shape[0]}x{images[cam].shape[1]}, info.json says "
                                                 f"{cameras[cam][0]}x{cameras[cam][1]}")
            _append(writer, StepRecord(t=float(timestamps[i]), qpos=values[fmt.STATE][i],
                                       qvel=values[fmt.VELOCITY][i], effort=values[fmt.EFFORT][i],
                                       action=values[fmt.ACTION][i], images=images, image_t=image_t,
                                       intervention=bool(intervention[i])))
        summary = writer.close({"stop_reason": "imported", "success": -1, "seed": -1, "achieved_fps": 0.0})
    entry = EpisodeInfo(index, kind, summary.steps, bytes=summary.bytes, task_description=task)
    dataset.add(entry)
    return entry


def _append(writer: EpisodeWriter, record: StepRecord) -> None:
    """EpisodeWriter.append drops a step when its queue is full (the control loop must not wait); an import
    waits for room instead, so no step is lost."""
    while writer.steps_queued - writer.steps_written >= WRITER_QUEUE - 1:
        if writer.failed:
            raise writer.failure()
        time.sleep(0.002)
    if not writer.append(record):
        raise RuntimeError(f"{writer.path}: the writer refused a step")
