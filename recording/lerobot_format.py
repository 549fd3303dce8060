"""LeRobotDataset v3.0 as LeRobot 0.4 writes it: paths, feature schema, info.json, statistics, parquet schemas.

A v3.0 folder:

  meta/info.json                               codebase_version "v3.0", fps, robot_type, features, path templates
  meta/stats.json                              per feature: min, max, mean, std, count, q01 q10 q50 q90 q99
  meta/tasks.parquet                           task text (the pandas index) -> task_index
  meta/episodes/chunk-000/file-000.parquet     one row per episode: length, tasks, where its rows and frames
                                               are (data file, dataset_from/to_index; per camera video file and
                                               from/to_timestamp in it), its own stats as stats/<feature>/<stat>
  data/chunk-000/file-000.parquet              one row per frame, many episodes per file
  videos/<key>/chunk-000/file-000.mp4          one stream per camera, many episodes per file, one after another

A frame's `timestamp` is frame_index / fps, in seconds from the start of its
episode; its picture is the video frame at from_timestamp + timestamp in its
camera's file. tandem's rows map to features as follows (names: the rig's joint
names, e.g. left_waist):

  /observations/qpos, qvel, effort, /action    observation.state, observation.velocity, observation.effort,
                                               action: float32 (state columns,)
  /observations/images/<cam>                   observation.images.<cam>: video, (H, W, 3)
  /intervention                                intervention: bool, a person drove the followers at this step
  the episode's kind                           episode_kind: string, demo | correction | rollout, every frame

Nothing here imports pyarrow at module level: Dataset.open asks `lerobot_folder_problem`
of every folder it opens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
INFO = "meta/info.json"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_MB = 100  # a data or episodes parquet file grows to about this, then the next one starts
VIDEO_FILE_MB = 200

STATE, VELOCITY, EFFORT, ACTION = "observation.state", "observation.velocity", "observation.effort", "action"
IMAGES = "observation.images."
INTERVENTION, EPISODE_KIND = "intervention", "episode_kind"
ROW_FEATURES = {STATE: "/observations/qpos", VELOCITY: "/observations/qvel", EFFORT: "/observations/effort",
                ACTION: "/action"}
DEFAULT_FEATURES = {  # LeRobot adds these to every dataset, after the others
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
IMAGE_NAMES = ["height", "width", "channels"]
# LeRobot's video settings (lerobot.datasets.video_utils.encode_video_frames): codec name -> PyAV encoder, options
CODECS = {"av1": ("libsvtav1", {"g": "2", "crf": "30", "preset": "12"}),
          "h264": ("libx264", {"g": "2", "crf": "30"})}
PIX_FMT = "yuv420p"


class LeRobotFormatError(ValueError):
    """A LeRobot folder that cannot be read or does not fit: the message names the file and the feature."""


# -- recognising a folder ---------------------------------------------------------------------------------------------
def lerobot_version(root: Path) -> str | None:
    """The codebase_version of a LeRobot dataset folder, None when the folder is not one."""
    path = Path(root) / INFO
    if not path.is_file():
        return None
    try:
        version = json.loads(path.read_text()).get("codebase_version")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return str(version) if version else "unknown"


def import_command(root: Path) -> str:
    root = Path(root)
    return f"tandem-import {root} --dataset {root.with_name(root.name + '_tandem')}"


def lerobot_folder_problem(root: Path) -> str | None:
    """What to say when a tandem command is given a LeRobot folder instead of a tandem one (None: it is not)."""
    version = lerobot_version(root)
    if version is None:
        return None
    if version == CODEBASE_VERSION:
        return (f"{root} is a LeRobot {CODEBASE_VERSION} dataset, not a tandem dataset folder; convert it once "
                f"with: {import_command(root)}")
    return (f"{root} is a LeRobot dataset of codebase_version {version}, not a tandem dataset folder; convert it "
            f"to {CODEBASE_VERSION} with LeRobot's converter, then: {import_command(root)}")


# -- the schema -------------------------------------------------------------------------------------------------------
def vector_feature(names: Sequence[str]) -> dict:
    return {"dtype": "float32", "shape": [len(names)], "names": list(names)}


def video_feature(height: int, width: int, fps: int, codec: str) -> dict:
    return {"dtype": "video", "shape": [height, width, 3], "names": list(IMAGE_NAMES),
            "info": {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": PIX_FMT,
                     "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}


def tandem_features(names: Sequence[str], cameras: Mapping[str, Sequence[int]], fps: int, codec: str,
                    effort: bool = True) -> dict:
    """The features of an export, in LeRobot's order: ours first, then LeRobot's defaults."""
    features = {STATE: vector_feature(names), VELOCITY: vector_feature(names)}
    if effort:
        features[EFFORT] = vector_feature(names)
    features[ACTION] = vector_feature(names)
    for cam, (h, w) in cameras.items():
        features[IMAGES + cam] = video_feature(h, w, fps, codec)
    features[INTERVENTION] = {"dtype": "bool", "shape": [1], "names": None}
    features[EPISODE_KIND] = {"dtype": "string", "shape": [1], "names": None}
    return {**features, **DEFAULT_FEATURES}


def info_json(features: dict, fps: int, robot_type: str, episodes: int, frames: int, tasks: int) -> dict:
    videos = any(f["dtype"] == "video" for f in features.values())
    return {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": episodes,
            "total_frames": frames, "total_tasks": tasks, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps,
            "splits": {"train": f"0:{episodes}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH if videos else None,
            "features": features}


def feature_names(feature: Mapping[str, Any]) -> list[str] | None:
    """A vector feature's names: a list, or (older LeRobot datasets, e.g. the aloha_sim ones) {"motors": [...]}."""
    names = feature.get("names")
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return None


def data_columns(features: Mapping[str, dict]) -> dict[str, dict]:
    """The features stored in the data parquet files (videos are not)."""
    return {k: f for k, f in features.items() if f["dtype"] != "video"}


def arrow_type(feature: Mapping[str, Any]) -> Any:
    """A feature's column type as LeRobot writes it through HF datasets: scalars for shape (1,), fixed lists else."""
    import pyarrow as pa

    scalar = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "int32": pa.int32(),
              "bool": pa.bool_(), "string": pa.string()}[feature["dtype"]]
    shape = list(feature["shape"])
    return scalar if shape == [1] else pa.list_(scalar, shape[0])


def huggingface_metadata(features: Mapping[str, dict]) -> bytes:
    """The schema note HF datasets reads back (LeRobot's data files carry it), so the columns load typed."""
    out = {}
    for key, f in data_columns(features).items():
        value = {"dtype": f["dtype"], "_type": "Value"}
        out[key] = value if list(f["shape"]) == [1] else {"feature": value, "length": f["shape"][0], "_type": "List"}
    return json.dumps({"info": {"features": out}}).encode()


def tasks_table(tasks: Sequence[str]) -> Any:
    """meta/tasks.parquet as pandas writes it: the task text is the (unnamed) index, task_index the column."""
    import pyarrow as pa

    pandas = {"index_columns": ["__index_level_0__"],
              "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                  "metadata": {"encoding": "UTF-8"}}],
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                           "numpy_type": "object", "metadata": None}],
              "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__},
              "pandas_version": "2.2.3"}
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
                       metadata={b"pandas": json.dumps(pandas).encode()})
    return pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": list(tasks)}, schema=schema)


# -- statistics (lerobot.datasets.compute_stats: per episode, then aggregated weighted by count) -------------------
def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per column over the frames of one episode. (T,) and (T, 1) both give shape (1,), as LeRobot's."""
    data = np.asarray(values)
    data = data.reshape(len(data), -1)
    numbers = data.astype(np.float64)
    stats = {"min": data.min(axis=0), "max": data.max(axis=0), "mean": numbers.mean(axis=0),
             "std": numbers.std(axis=0), "count": np.array([len(data)])}
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        stats[key] = np.quantile(numbers, q, axis=0)
    return stats


def stats_sample(length: int) -> list[int]:
    """The frames of an episode whose pictures go into its image stats (LeRobot's sample_indices)."""
    count = length if length < 100 else max(100, min(int(length ** 0.75), 10_000))
    return np.round(np.linspace(0, length - 1, count)).astype(int).tolist() if length else []


def image_stats(frames: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Per channel over sampled (H, W, 3) uint8 frames, in 0..1, each of shape (3, 1, 1) as LeRobot's.
    Large frames are subsampled first, as LeRobot does (every k-th pixel, k = size // 150 from 300 up)."""
    pixels, count = [], 0
    for frame in frames:
        h, w = frame.shape[:2]
        step = max(1, (w if w > h else h) // 150) if max(h, w) >= 300 else 1
        pixels.append(frame[::step, ::step].reshape(-1, 3).astype(np.float64) / 255.0)
        count += 1
    if not pixels:
        raise ValueError("no frames for image statistics")
    stats = vector_stats(np.concatenate(pixels))
    return {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in {**stats, "count": np.array([count])}.items()}


def aggregate_stats(per_episode: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, dict[str, Any]]:
    """The dataset's stats from its episodes': min of mins, max of maxes, count-weighted mean, the pooled
    variance, count-weighted quantiles (LeRobot's approximation: the exact quantiles would need every value)."""
    out: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(k for stats in per_episode for k in stats):
        items = [s[key] for s in per_episode if key in s]
        counts = np.array([float(s["count"][0]) for s in items])
        total = counts.sum()
        weights = counts.reshape(-1, *([1] * np.ndim(items[0]["mean"])))
        means = np.stack([s["mean"] for s in items])
        mean = (means * weights).sum(axis=0) / total
        variance = ((np.stack([s["std"] for s in items]) ** 2 + (means - mean) ** 2) * weights).sum(axis=0) / total
        out[key] = {"min": np.min(np.stack([s["min"] for s in items]), axis=0),
                    "max": np.max(np.stack([s["max"] for s in items]), axis=0),
                    "mean": mean, "std": np.sqrt(variance), "count": np.array([int(total)])}
        for q in QUANTILE_KEYS:
            out[key][q] = (np.stack([s[q] for s in items]) * weights).sum(axis=0) / total
    return out


def stats_json(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {key: {name: np.asarray(value).tolist() for name, value in feature.items()}
            for key, feature in stats.items()}


def episode_stats_columns(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """One episode's stats as its meta/episodes row holds them: stats/<feature>/<stat> -> list."""
    return {f"stats/{key}/{name}": np.asarray(value).tolist() for key, feature in stats.items()
            for name, value in feature.items()}


# -- where files go ---------------------------------------------------------------------------------------------------
class Shards:
    """The chunk-XXX/file-XXX of the file being written for one kind of file, and the move to the next one."""

    def __init__(self, limit_mb: float) -> None:
        self.limit_bytes = limit_mb * 1024 * 1024
        self.chunk = self.file = 0

    def advance(self) -> None:
        """LeRobot's update_chunk_file_indices: the next file, in a new chunk folder after CHUNKS_SIZE files."""
        if self.file == CHUNKS_SIZE - 1:
            self.chunk, self.file = self.chunk + 1, 0
        else:
            self.file += 1

    def path(self, template: str, **keys: str) -> str:
        return template.format(chunk_index=self.chunk, file_index=self.file, **keys)
