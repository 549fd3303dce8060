"""EpisodeWriter: streams one episode into an ALOHA-layout HDF5 file from a background thread.

The control loop only puts a step on a bounded queue (`append` never blocks);
the writer thread encodes images (raw or JPEG) and writes them as they come, so
closing an episode costs the queue's tail, not the whole episode. A camera with
depth also gets `/observations/depth/<cam>`, (T, H, W) uint16 in the camera's
units (the dataset's attribute `depth_units`, metres per value), one frame per
chunk, lzf-compressed; the colour images keep ALOHA's layout. Low-dimensional
rows are small and kept in memory until close. The file is written under a
hidden temporary name and renamed when complete: a crash leaves no half episode
under an episode name, and never touches another file.

A write that fails (disk full, file too large, any error in the thread) is
raised to the control loop by the next `append` as an `EpisodeWriteError`.
HDF5 itself never sees the failure: it writes through `FailSafeFile`, which
keeps the first OSError and drops every later write. After a failed write
HDF5 retries its flushes on every handle it releases (hundreds of tracebacks)
and its close can crash the process; this way the doomed file closes cleanly
and is deleted. The chunk cache is off, so image data reaches the disk in the
step it is written, and a full disk is seen there, not at close.
"""

from __future__ import annotations

import atexit
import os
import queue
import re
import shutil
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from robot.commands import interrupts_deferred

GROW_ROWS = 256  # image datasets grow by this many rows at a time, trimmed at close
JPEG_CHUNKS_PER_ROW = 4  # a padded JPEG row spans about this many chunks: bounds the padding stored per frame
# lzf: about half the bytes of raw depth for ~3 ms of the writer thread per 480x640 frame, outside the GIL
# (gzip level 1: 36% of the bytes for ~6 ms)
DEPTH_COMPRESSION = "lzf"


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
    depth: dict[str, np.ndarray] = field(default_factory=dict)  # (H, W) uint16 per camera with depth
    depth_units: dict[str, float] = field(default_factory=dict)  # metres per depth value, per camera with depth


@dataclass(frozen=True)
class WriteSummary:
    path: Path
    steps: int
    dropped: int  # steps refused because the queue was full
    queue_high_water: int
    bytes: int
    close_s: float  # from close() being called to the file renamed into place


class EpisodeWriteError(OSError):
    """Writing an episode failed; the message names the file, the step, the cause and the free space."""


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def short_cause(exc: BaseException) -> str:
    """An h5py write error's one useful part ("[Errno 28] No space left on device"), else its first line."""
    text = str(exc)
    found = re.search(r"errno = (\d+), error message = '([^']*)'", text)
    if found:
        return f"[Errno {found.group(1)}] {found.group(2)}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def free_space(folder: Path) -> str:
    try:
        return human_bytes(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"


class FailSafeFile:
    """The episode file as HDF5 sees it (h5py's fileobj driver): the first failed write is kept in `error`,
    and from then on writes are dropped while reporting success, so HDF5 never enters its failure paths."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):  # a raw write may be partial (e.g. up to a file size limit)
                    done += self._f.write(view[done:])
            except OSError as exc:
                self.error = exc
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._f.truncate(size)
            except OSError as exc:
                self.error = exc
        return size or 0

    def readinto(self, buffer: bytearray) -> int:
        return self._f.readinto(buffer)

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def flush(self) -> None:
        pass  # unbuffered: every write is already with the OS

    def close(self) -> None:
        self._f.close()


# Writers whose file is open. At exit, one still open (an interrupt left it with no owner) is discarded before
# HDF5's exit handler would flush it through a Python file object the finished interpreter can no longer call.
_open_writers: weakref.WeakSet[EpisodeWriter] = weakref.WeakSet()


@atexit.register
def _discard_open_writers() -> None:
    for writer in list(_open_writers):
        try:
            writer.discard()
        except Exception:  # at exit: the next writer of the folder removes a leftover .partial
            pass


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
        self._failed_at = 0  # the step whose write failed
        self._closed = False
        self._file_open = False
        self._tmp = partial_path(self.path)
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._disk = FailSafeFile(self._tmp)
        self._file = h5py.File(self._disk, "w", rdcc_nbytes=0)
        self._file_open = True
        _open_writers.add(self)
        # handles kept for the whole episode: a temporary handle's release would flush, and fail again, after an error
        self._datasets: dict[str, h5py.Dataset] = {}
        self._depth: dict[str, h5py.Dataset] | None = None  # made at the first step, which says which cameras have it
        self._images = self._file.create_group("observations").create_group("images")
        for cam, (h, w) in self.cameras.items():
            if not compress:  # JPEG datasets are made at the first frame, when their row size is known
                self._datasets[cam] = self._images.create_dataset(cam, (0, h, w, 3), dtype="uint8",
                                                                  maxshape=(None, h, w, 3), chunks=(1, h, w, 3))
        self._pool = ThreadPoolExecutor(encode_threads, thread_name_prefix="jpeg") if compress else None
        self._thread = threading.Thread(target=self._run, name=f"writer-{self.path.name}", daemon=True)
        self._thread.start()

    # -- the control loop's side ------------------------------------------------------------------
    def append(self, record: StepRecord) -> bool:
        """Queue a step for writing; never blocks. False (and counted) if the queue is full.

        Raises EpisodeWriteError once the writer thread has failed: the episode cannot be completed.
        """
        if self._error is not None:
            raise self.failure()
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
    def failed(self) -> bool:
        return self._error is not None

    def failure(self) -> EpisodeWriteError:
        """The error that ended this episode, as the one line to show (file, step, cause, free space)."""
        folder = self.path.parent
        advice = "the episode is discarded"
        if isinstance(self._error, OSError):
            advice = (f"{folder} has {free_space(folder)} free. The episode is discarded, earlier ones are kept: free "
                      "some space (or record into another folder) and record again")
        return EpisodeWriteError(f"{self.path}: writing the episode failed at step {self._failed_at} "
                                 f"({short_cause(self._error)}); {advice}")

    @property
    def steps_written(self) -> int:
        return len(self._rows["t"])

    @property
    def steps_queued(self) -> int:
        return len(self._rows["t"]) + self._queue.qsize()

    def close(self, attrs: Mapping[str, Any] | None = None) -> WriteSummary:
        """Write what is queued, finish the file and rename it into place."""
        start = time.perf_counter()
        self._stop_thread()
        try:
            if self._error is not None:
                raise self.failure() from self._error
            self.attrs.update(attrs or {})
            self._finish()
            self._close_file()
            if self._disk.error is not None:  # the disk filled up at the end: the same story as in the thread
                self._error, self._failed_at = self._disk.error, len(self._rows["t"])
                raise self.failure() from self._error
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return WriteSummary(self.path, len(self._rows["t"]), self.dropped, self.queue_high_water,
                            self.path.stat().st_size, time.perf_counter() - start)

    def discard(self) -> None:
        """Drop the episode: nothing is left on disk."""
        self._stop_thread()
        self._close_file()  # the thread is gone: this is the only one that can touch the file
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

    def _close_file(self) -> None:
        """Close the HDF5 file and the OS file, once, from whichever thread owns them at that point.

        Never interrupted half way: an HDF5 file left open is flushed by HDF5's own exit handler, through this
        Python file object, after the interpreter is gone (a segfault at exit)."""
        if not self._file_open:
            return
        with interrupts_deferred():
            self._datasets.clear()
            self._depth = None
            try:
                self._file.close()
            finally:
                self._disk.close()
                self._file_open = False
                _open_writers.discard(self)

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so close() returns; append() and close() raise the error
            try:
                self._write(record)
                if self._disk.error is not None:
                    raise self._disk.error
            except BaseException as exc:
                self._failed_at = len(self._rows["t"])
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
            if cam not in self._datasets:  # ALOHA's compressed layout: one zero-padded row of JPEG bytes per step
                chunk = max(1024, -(-encoded[i].size // JPEG_CHUNKS_PER_ROW // 1024) * 1024)
                self._datasets[cam] = self._images.create_dataset(cam, (0, chunk), dtype="uint8",
                                                                  maxshape=(None, None), chunks=(1, chunk))
            dataset = self._datasets[cam]
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
        self._write_depth(index, record)
        self._rows["t"].append(record.t)
        self._rows["intervention"].append(record.intervention)

    def _write_depth(self, index: int, record: StepRecord) -> None:
        if self._depth is None:
            unknown = sorted(set(record.depth) - set(self.cameras))
            if unknown:
                raise ValueError(f"step {index} has depth from {', '.join(unknown)}, not a camera of this episode")
            self._depth = {}
            for cam in (c for c in self.cameras if c in record.depth):
                h, w = self.cameras[cam]
                group = self._file.require_group("observations/depth")
                self._depth[cam] = group.create_dataset(cam, (0, h, w), dtype="uint16", maxshape=(None, h, w),
                                                        chunks=(1, h, w), compression=DEPTH_COMPRESSION)
                self._depth[cam].attrs["depth_units"] = float(record.depth_units.get(cam, 0.0))
        if record.depth.keys() != self._depth.keys():
            raise ValueError(f"step {index} has depth from [{', '.join(sorted(record.depth))}], the episode's first "
                             f"step from [{', '.join(self._depth)}]")
        for cam, dataset in self._depth.items():
            image = record.depth[cam]
            if image.shape != dataset.shape[1:] or image.dtype != np.uint16:
                raise ValueError(f"step {index}: the depth image of {cam} is {image.dtype} {image.shape}, expected "
                                 f"uint16 {dataset.shape[1:]}")
            if index >= dataset.shape[0]:
                dataset.resize(index + GROW_ROWS, axis=0)
            dataset[index] = image

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
            if cam not in self._datasets:  # an episode with no steps
                shape = (0, 0) if self.compress else (0, h, w, 3)
                self._datasets[cam] = self._images.create_dataset(cam, shape, dtype="uint8",
                                                                  maxshape=(None,) * len(shape))
            dataset = self._datasets[cam]
            dataset.resize(steps, axis=0)
            if self.compress:
                dataset.resize(max(self._jpeg_len[cam], default=0), axis=1)
        for dataset in (self._depth or {}).values():
            dataset.resize(steps, axis=0)
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
