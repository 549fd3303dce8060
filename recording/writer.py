"""EpisodeWriter: streams one episode into an ALOHA-layout HDF5 file from a background thread.

The control loop only puts a step on a bounded queue (`append` never blocks);
the writer thread encodes images (raw or JPEG) and writes them as they come, so
closing an episode costs the queue's tail, not the whole episode. Low-dimensional
rows are small and kept in memory until close. The file is written under a
hidden temporary name and renamed when complete: a crash leaves no half episode
under an episode name, and never touches another file.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

GROW_ROWS = 256  # image datasets grow by this many rows at a time, trimmed at close
JPEG_CHUNKS_PER_ROW = 4  # a padded JPEG row spans about this many chunks: bounds the padding stored per frame


@dataclass
class StepRecord:
    t: float  # control step time
    qpos: np.ndarray
    qvel: np.ndarray
    effort: np.ndarray
    action: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)  # (H, W, 3) uint8 RGB per camera
    image_t: dict[str, float] = field(default_factory=dict)  # capture time per camera
    intervention: bool = False


@dataclass(frozen=True)
class WriteSummary:
    path: Path
    steps: int
    dropped: int  # steps refused because the queue was full
    queue_high_water: int
    bytes: int
    close_s: float  # from close() being called to the file renamed into place


def partial_path(path: Path) -> Path:
    """Where an episode lives until it is closed: hidden, and never matched by episode_*.hdf5."""
    return path.with_name(f".{path.name}.partial")


class EpisodeWriter:
    def __init__(self, path: str | Path, cameras: Mapping[str, tuple[int, int]], *, compress: bool = False,
                 jpeg_quality: int = 50, dim: int = 14, attrs: Mapping[str, Any] | None = None,
                 queue_size: int = 512, encode_threads: int = 2) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: an episode with this name exists; it will not be overwritten")
        self.cameras = dict(cameras)
        self.compress = compress
        self.jpeg_quality = jpeg_quality
        self.dim = dim
        self.attrs = dict(attrs or {})
        self.dropped = 0
        self.queue_high_water = 0
        self._queue: queue.Queue[StepRecord | None] = queue.Queue(maxsize=queue_size)
        self._rows: dict[str, list] = {k: [] for k in ("qpos", "qvel", "effort", "action", "t", "intervention")}
        self._image_t: dict[str, list[float]] = {c: [] for c in self.cameras}
        self._jpeg_len: dict[str, list[int]] = {c: [] for c in self.cameras}
        self._error: BaseException | None = None
        self._closed = False
        self._tmp = partial_path(self.path)
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self._tmp, "w")
        self._images = self._file.create_group("observations").create_group("images")
        for cam, (h, w) in self.cameras.items():
            if not compress:  # JPEG datasets are made at the first frame, when their row size is known
                self._images.create_dataset(cam, (0, h, w, 3), dtype="uint8", maxshape=(None, h, w, 3),
                                            chunks=(1, h, w, 3))
        self._pool = ThreadPoolExecutor(encode_threads, thread_name_prefix="jpeg") if compress else None
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.path.name}", daemon=True)
        self._thread.start()

    # -- the control loop's side ------------------------------------------------------------------
    def append(self, record: StepRecord) -> bool:
        """Queue a step for writing; never blocks. False (and counted) if the queue is full."""
        if self._closed:
            raise RuntimeError(f"{self.path}: the episode is closed")
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            return False
        self.queue_high_water = max(self.queue_high_water, self._queue.qsize())
        return True

    @property
    def steps_queued(self) -> int:
        return len(self._rows["t"]) + self._queue.qsize()

    def close(self, attrs: Mapping[str, Any] | None = None) -> WriteSummary:
        """Write what is queued, finish the file and rename it into place."""
        start = time.perf_counter()
        self._stop_thread()
        try:
            if self._error is not None:
                raise RuntimeError(f"{self.path}: writing the episode failed: {self._error}") from self._error
            self.attrs.update(attrs or {})
            self._finish()
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return WriteSummary(self.path, len(self._rows["t"]), self.dropped, self.queue_high_water,
                            self.path.stat().st_size, time.perf_counter() - start)

    def discard(self) -> None:
        """Drop the episode: nothing is left on disk."""
        self._stop_thread()
        if self._file.id.valid:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._closed:
            self.close()

    # -- the writer thread ----------------------------------------------------------------------
    def _stop_thread(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)  # blocks only if full, and the thread is draining it
        self._thread.join()
        if self._pool is not None:
            self._pool.shutdown()

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so close() returns; the error is raised there
            try:
                self._write(record)
            except BaseException as exc:  # reported by close(), which discards the file
                self._error = exc

    def _write(self, record: StepRecord) -> None:
        index = len(self._rows["t"])
        missing = set(self.cameras) - set(record.images)
        if missing:
            raise ValueError(f"step {index} has no image from {', '.join(sorted(missing))}")
        for name in ("qpos", "qvel", "effort", "action"):
            row = np.asarray(getattr(record, name), dtype=np.float32)
            if row.shape != (self.dim,):
                raise ValueError(f"step {index}: {name} has shape {row.shape}, expected ({self.dim},)")
            self._rows[name].append(row)
        if self.compress:
            encoded = list(self._pool.map(self._encode, (record.images[c] for c in self.cameras)))
        for i, cam in enumerate(self.cameras):
            if cam not in self._images:  # ALOHA's compressed layout: one zero-padded row of JPEG bytes per step
                chunk = max(1024, -(-encoded[i].size // JPEG_CHUNKS_PER_ROW // 1024) * 1024)
                self._images.create_dataset(cam, (0, chunk), dtype="uint8", maxshape=(None, None), chunks=(1, chunk))
            dataset = self._images[cam]
            if index >= dataset.shape[0]:
                dataset.resize(index + GROW_ROWS, axis=0)
            if self.compress:
                data = encoded[i]
                if data.size > dataset.shape[1]:
                    chunk = dataset.chunks[1]
                    dataset.resize(-(-data.size // chunk) * chunk, axis=1)
                dataset[index, :data.size] = data
                self._jpeg_len[cam].append(data.size)
            else:
                dataset[index] = record.images[cam]
            self._image_t[cam].append(record.image_t.get(cam, np.nan))
        self._rows["t"].append(record.t)
        self._rows["intervention"].append(record.intervention)

    def _encode(self, image: np.ndarray) -> np.ndarray:
        # RGB in, RGB back out of cv2.imdecode: the byte order ALOHA's loaders expect
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
        return data.reshape(-1)

    def _finish(self) -> None:
        steps = len(self._rows["t"])
        f = self._file
        for cam, (h, w) in self.cameras.items():
            if cam not in self._images:  # an episode with no steps
                shape = (0, 0) if self.compress else (0, h, w, 3)
                self._images.create_dataset(cam, shape, dtype="uint8", maxshape=(None,) * len(shape))
            dataset = self._images[cam]
            dataset.resize(steps, axis=0)
            if self.compress:
                dataset.resize(max(self._jpeg_len[cam], default=0), axis=1)
        obs = f["observations"]
        for name in ("qpos", "qvel", "effort"):
            obs.create_dataset(name, data=self._stack(name))
        f.create_dataset("action", data=self._stack("action"))
        if self.compress:
            lengths = np.array([self._jpeg_len[c] for c in self.cameras], dtype=np.int64).reshape(-1, steps)
            f.create_dataset("compress_len", data=lengths).attrs["cameras"] = list(self.cameras)
        stamps = f.create_group("timestamps")
        stamps.create_dataset("control", data=np.array(self._rows["t"], dtype=np.float64))
        for cam in self.cameras:
            stamps.create_dataset(cam, data=np.array(self._image_t[cam], dtype=np.float64))
        f.create_dataset("intervention", data=np.array(self._rows["intervention"], dtype=bool))
        f.attrs["compress"] = self.compress
        f.attrs.setdefault("sim", False)
        f.attrs["dropped_steps"] = self.dropped
        f.attrs["cameras"] = list(self.cameras)
        for key, value in self.attrs.items():
            f.attrs[key] = "" if value is None else value

    def _stack(self, name: str) -> np.ndarray:
        rows = self._rows[name]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)
