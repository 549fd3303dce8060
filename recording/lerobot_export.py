"""A tandem dataset folder written as a LeRobotDataset v3.0 folder (see recording/lerobot_format.py for the map).

Every episode file is checked first (Dataset.check_episode: layout, lengths,
finite values), so a bad file stops the export before anything is encoded. The
folder is built under a hidden `.NAME.*.partial` name beside the target and
renamed when complete (meta/info.json last), so an interrupted or failed export
leaves nothing that looks like a dataset; the source is only read.

Videos are encoded as LeRobot records them (AV1 through libsvtav1, yuv420p, a
keyframe every 2 frames, crf 30; or H.264), one stream per camera in which the
episodes follow each other, so each frame sits at exactly
from_timestamp + frame_index / fps. Episodes are numbered 0..N-1 in the order of
their tandem indices (LeRobot looks them up by position).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from recording import lerobot_format as fmt
from recording.dataset import KINDS, Dataset, DatasetError, EpisodeInfo
from recording.frames import resize_frame
from recording.layout import joint_layout
from recording.reader import EpisodeReader
from recording.video import encoder_start


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    episodes: int
    frames: int
    cameras: tuple[str, ...]
    codec: str
    bytes: int
    seconds: float


def episode_task(dataset: Dataset, episode: EpisodeInfo) -> str:
    """An episode's task text: its own description where it has one, else the dataset's task, else its kind."""
    return episode.task_description or dataset.info.task or episode.kind


def whole_fps(fps: float, where: str) -> int:
    """LeRobot's fps is a whole number of frames per second."""
    if fps <= 0 or abs(fps - round(fps)) > 1e-6:
        raise DatasetError(f"{where}: fps {fps:g} is not a whole number of frames per second, which LeRobot needs")
    return int(round(fps))


class VideoStream:
    """One camera's mp4 file: frames appended episode after episode, pts = frame number at 1/fps."""

    def __init__(self, path: Path, fps: int, codec: str, height: int, width: int) -> None:
        import av

        encoder, options = fmt.CODECS[codec]
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's errors only, not ~25 lines of set-up per stream
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps, self.frames, self.bytes = path, fps, 0, 0
        self._container = av.open(str(path), "w", options={"movflags": "faststart"})
        try:
            self._stream = self._container.add_stream(encoder, rate=fps, options=dict(options))
            self._stream.pix_fmt = fmt.PIX_FMT
            self._stream.width, self._stream.height = width, height
        except BaseException:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame

    def add(self, image: np.ndarray) -> None:
        frame = self._frame_type.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = self.frames, Fraction(1, self.fps)
        with encoder_start() if self.frames == 0 else nullcontext():
            packets = self._stream.encode(frame)
        self._mux(packets)
        self.frames += 1

    def close(self) -> None:
        try:
            self._mux(self._stream.encode())  # flush the encoder's delayed frames
        finally:
            self._container.close()

    def _mux(self, packets: Sequence) -> None:
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)


class ShardedVideo:
    """One camera's videos: a new file once the current one has reached VIDEO_FILE_MB, between episodes."""

    def __init__(self, root: Path, key: str, fps: int, codec: str, size: Sequence[int]) -> None:
        self.root, self.key, self.fps, self.codec, self.size = root, key, fps, codec, size
        self.shards = fmt.Shards(fmt.VIDEO_FILE_MB)
        self.stream: VideoStream | None = None

    def start_episode(self) -> dict[str, object]:
        if self.stream is not None and self.stream.bytes >= self.shards.limit_bytes:
            self.stream.close()
            self.stream = None
            self.shards.advance()
        if self.stream is None:
            path = self.root / self.shards.path(fmt.VIDEO_PATH, video_key=self.key)
            self.stream = VideoStream(path, self.fps, self.codec, *self.size)
        return {f"videos/{self.key}/chunk_index": self.shards.chunk, f"videos/{self.key}/file_index": self.shards.file,
                f"videos/{self.key}/from_timestamp": self.stream.frames / self.fps}

    def end_episode(self) -> dict[str, object]:
        return {f"videos/{self.key}/to_timestamp": self.stream.frames / self.fps}

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class ShardedParquet:
    """Rows of one kind of parquet file (data, episodes): a new file once the current one reaches `limit_mb`."""

    def __init__(self, root: Path, template: str, limit_mb: float, metadata: dict[bytes, bytes] | None = None) -> None:
        self.root, self.template, self.metadata = root, template, metadata
        self.shards = fmt.Shards(limit_mb)
        self._writer = None
        self._bytes = 0

    def where(self, rows_bytes: int) -> tuple[int, int]:
        """The (chunk, file) the next rows go to: the next file when they would take this one past its limit."""
        if self._writer is not None and self._bytes + rows_bytes >= self.shards.limit_bytes:
            self._writer.close()
            self._writer, self._bytes = None, 0
            self.shards.advance()
        return self.shards.chunk, self.shards.file

    def write(self, table: object) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            path = self.root / self.shards.path(self.template)
            path.parent.mkdir(parents=True, exist_ok=True)
            schema = table.schema.with_metadata(self.metadata) if self.metadata else table.schema
            self._writer = pq.ParquetWriter(path, schema=schema, compression="snappy", use_dictionary=True)
        self._writer.write_table(table)
        self._bytes += table.nbytes

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _column(feature: dict, values: np.ndarray) -> object:
    import pyarrow as pa

    kind = fmt.arrow_type(feature)
    if pa.types.is_fixed_size_list(kind):
        flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=kind.value_type), kind.list_size)
    return pa.array(values, type=kind)


class Export:
    """The folder being written: one episode at a time, then the metadata that describes them."""

    def __init__(self, root: Path, features: dict, fps: int, codec: str,
                 recorded: dict[str, tuple[int, int]]) -> None:
        self.root, self.features, self.fps, self.recorded = root, features, fps, recorded
        self.data = ShardedParquet(root, fmt.DATA_PATH, fmt.DATA_FILE_MB,
                                   {b"huggingface": fmt.huggingface_metadata(features)})
        self.videos = {key: ShardedVideo(root, key, fps, codec, f["shape"][:2])
                       for key, f in features.items() if f["dtype"] == "video"}
        self.tasks: dict[str, int] = {}
        self.rows: list[dict] = []
        self.stats: list[dict] = []
        self.frames = 0

    def add(self, reader: EpisodeReader, kind: str, task: str) -> None:
        import pyarrow as pa

        index = len(self.rows)
        length = reader.length
        task_index = self.tasks.setdefault(task, len(self.tasks))
        columns = {key: reader.array(path, finite=True) for key, path in fmt.ROW_FEATURES.items()
                   if key in self.features}
        intervention = reader.optional("/intervention")
        if intervention is not None and intervention.shape != (length,):
            raise DatasetError(f"{reader.path}: /intervention has shape {intervention.shape}, expected ({length},)")
        columns[fmt.INTERVENTION] = np.zeros(length, bool) if intervention is None else intervention.astype(bool)
        columns[fmt.EPISODE_KIND] = np.array([kind] * length, dtype=object)
        frame_index = np.arange(length, dtype=np.int64)
        columns.update({"timestamp": (frame_index / self.fps).astype(np.float32), "frame_index": frame_index,
                        "episode_index": np.full(length, index, np.int64),
                        "index": np.arange(self.frames, self.frames + length, dtype=np.int64),
                        "task_index": np.full(length, task_index, np.int64)})
        stats = {key: fmt.vector_stats(values) for key, values in columns.items()
                 if self.features[key]["dtype"] != "string"}
        table = pa.table({key: _column(self.features[key], columns[key]) for key in fmt.data_columns(self.features)})
        chunk, file = self.data.where(table.nbytes)
        row: dict[str, object] = {"episode_index": index, "tasks": [task], "length": length,
                                  "data/chunk_index": chunk, "data/file_index": file,
                                  "dataset_from_index": self.frames, "dataset_to_index": self.frames + length}
        self.data.write(table)
        for key, video in self.videos.items():
            row.update(video.start_episode())
            stats[key] = self._encode(reader, key.removeprefix(fmt.IMAGES), video)
            row.update(video.end_episode())
        row.update(fmt.episode_stats_columns(stats))
        self.rows.append(row)
        self.stats.append(stats)
        self.frames += length

    def _encode(self, reader: EpisodeReader, cam: str, video: ShardedVideo) -> dict:
        """Every frame (shrunk to the exported size where it differs) into the camera's stream; the sampled ones
        into its image stats."""
        sample = set(fmt.stats_sample(reader.length))
        sampled = []
        expected = self.recorded[cam]
        h, w = self.features[fmt.IMAGES + cam]["shape"][:2]
        for step in range(reader.length):
            image = reader.image(cam, step)
            if image.shape[:2] != expected:
                raise DatasetError(f"{reader.path}: /observations/images/{cam} frame {step} is "
                                   f"{image.shape[0]}x{image.shape[1]}, the dataset's is {expected[0]}x{expected[1]}")
            image = resize_frame(image, (h, w))
            video.stream.add(image)
            if step in sample:
                sampled.append(image)
        return fmt.image_stats(sampled)

    def finish(self, robot_type: str, card: str) -> None:
        """Close the files, then write the metadata; info.json last, as the sign of a complete folder."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.data.close()
        for video in self.videos.values():
            video.close()
        for row in self.rows:  # one episodes file, as LeRobot's write_episodes (a row is a few kB)
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        episodes = self.root / fmt.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.rows), episodes, compression="snappy")
        pq.write_table(fmt.tasks_table(list(self.tasks)), self.root / fmt.TASKS)
        stats = fmt.stats_json(fmt.aggregate_stats(self.stats))
        _write_json(self.root / fmt.STATS, stats)
        (self.root / "README.md").write_text(card)
        info = fmt.info_json(self.features, self.fps, robot_type, len(self.rows), self.frames, len(self.tasks))
        _write_json(self.root / fmt.INFO, info)

    def abandon(self) -> None:
        """Close what is open (the folder is deleted by the caller)."""
        for closer in [self.data.close, *(v.close for v in self.videos.values())]:
            try:
                closer()
            except Exception:  # the folder is deleted whatever state its files are in
                pass


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def dataset_card(repo_id: str, source: Path, episodes: int, frames: int, fps: int) -> str:
    return ("---\ntags:\n- LeRobot\n- tandem\nconfigs:\n- config_name: default\n  data_files: data/*/*.parquet\n"
            f"---\n\n# {repo_id}\n\nA LeRobotDataset v3.0 written by tandem-export from the tandem dataset "
            f"`{source.name}`: "
            f"{episodes} episodes, {frames} frames at {fps} fps. Besides LeRobot's usual features, `intervention` "
            "marks the steps a person drove the followers and `episode_kind` says whether an episode is a "
            "demonstration (demo), a person's correction of the policy (correction) or a policy rollout (rollout).\n")


def export_dataset(source: str | Path, out: str | Path, *, repo_id: str | None = None,
                   kinds: Iterable[str] = KINDS, codec: str = "av1", image_size: tuple[int, int] | None = None,
                   progress: Callable[[Iterable], Iterable] = lambda items: items,
                   say: Callable[[str], None] = print) -> ExportSummary:
    """Write the dataset at `source` (its episodes of `kinds`) as a LeRobot v3.0 folder at `out` (must not exist);
    with `image_size` (height, width), every camera's frames shrunk to it."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    if codec not in fmt.CODECS:
        raise ValueError(f"codec {codec!r} is not one of {', '.join(fmt.CODECS)}")
    if out.exists():
        raise FileExistsError(f"{out} exists; tandem-export writes a new folder (remove it or choose another --out)")
    dataset = Dataset.open(source)
    kinds = tuple(kinds)
    episodes = dataset.episodes(kinds)
    if not episodes:
        raise DatasetError(f"{source}: no episodes of kind {', '.join(kinds)} to export")
    fps = whole_fps(dataset.info.fps, f"{source / 'dataset.json'}")
    dims, names, effort = None, None, True
    for episode in episodes:  # every file whole and consistent before anything is written
        dims = dataset.check_episode(episode, dims)
        with EpisodeReader(dataset.path(episode.index)) as reader:
            stored = reader.attrs.get("state_names")
            here = tuple(str(n) for n in stored) if stored is not None else joint_layout(reader.dim)
            if names is not None and here != names:
                raise DatasetError(f"{reader.path}: state_names {', '.join(here)} differ from the other episodes' "
                                   f"{', '.join(names)}")
            names = here
            effort = effort and reader.optional("/observations/effort") is not None
    if dims[0] != dims[1]:
        raise DatasetError(f"{source}: states have {dims[0]} columns and actions {dims[1]}; LeRobot's names for "
                           "both come from the rig's joints, so they must be the same")
    if not effort:
        say(f"{source}: some episodes have no /observations/effort (ACT's simulated ones): no observation.effort")
    cameras = {cam: tuple(dataset.info.image_size[cam]) if cam in dataset.info.image_size else None
               for cam in dataset.info.cameras}
    with EpisodeReader(dataset.path(episodes[0].index)) as reader:
        cameras = {cam: size or reader.image_size(cam) for cam, size in cameras.items()}
    exported = {cam: exported_size(source, cam, size, image_size, codec) for cam, size in cameras.items()}
    features = fmt.tandem_features(names, exported, fps, codec, effort=effort)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{time.monotonic_ns()}.partial")
    tmp.mkdir(0o777)  # under the umask, as tandem's dataset folders
    export = None
    try:
        export = Export(tmp, features, fps, codec, cameras)
        for episode in progress(episodes):
            with EpisodeReader(dataset.path(episode.index)) as reader:
                export.add(reader, episode.kind, episode_task(dataset, episode))
        repo = repo_id or f"tandem/{source.resolve().name}"
        export.finish(robot_type(dataset.info.rig), dataset_card(repo, source, len(episodes), export.frames, fps))
        if out.exists():
            raise FileExistsError(f"{out} appeared while exporting; the export is discarded")
        os.rename(tmp, out)
    except BaseException:
        if export is not None:
            export.abandon()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportSummary(out, len(episodes), export.frames, tuple(cameras), codec, size,
                         time.perf_counter() - started)


def exported_size(source: Path, cam: str, recorded: tuple[int, int], wanted: tuple[int, int] | None,
                  codec: str) -> tuple[int, int]:
    """A camera's size in the export: `wanted` where given; only ever smaller, since a larger frame adds no detail.
    libx264 refuses odd sides in yuv420p (AV1 takes them), and padding would break LeRobot's feature shape."""
    size = recorded if wanted is None else tuple(wanted)
    if size[0] > recorded[0] or size[1] > recorded[1]:
        raise DatasetError(f"{source}: camera {cam} was recorded at {recorded[0]}x{recorded[1]}; frames are only "
                           f"shrunk, not enlarged to {size[0]}x{size[1]}")
    if codec == "h264" and (size[0] % 2 or size[1] % 2):
        raise DatasetError(f"{source}: camera {cam} at {size[0]}x{size[1]}: H.264 in yuv420p needs even sizes; "
                           "export with --codec av1 or give --image-size with two even numbers")
    return size


def robot_type(rig: str) -> str:
    """LeRobot's robot_type: the rig's name; a folder from ALOHA's scripts (no dataset.json) is an ALOHA."""
    return rig if rig and rig != "unknown" else "aloha"
