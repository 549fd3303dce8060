"""EpisodeReader: one episode file, ours or one written by the original ALOHA/ACT scripts.

Checks the layout when opened, so a truncated file, a missing dataset or a
wrong shape is reported with the file and dataset named, before any training
or replay starts. Low-dimensional arrays are read whole; images one step at a
time (decoded when the file holds JPEG rows), depth images (ours, from cameras
with depth) likewise. `check_values` (inspect) and
`array(..., finite=True)` (training) name the row and column of a NaN or inf.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np


class EpisodeFormatError(ValueError):
    def __init__(self, path: Path | str, dataset: str, problem: str) -> None:
        where = f"{path}: {dataset}" if dataset else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.dataset, self.problem = Path(path), dataset, problem


STATE = ("/observations/qpos", "/observations/qvel", "/observations/effort")
VALUES = (*STATE, "/action")  # the low-dimensional data a policy learns from: all finite


class EpisodeReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise EpisodeFormatError(self.path, "", "no such file") from None
        except OSError as exc:
            problem = f"not a readable HDF5 file (truncated or corrupt?): {exc}"
            raise EpisodeFormatError(self.path, "", problem) from None
        try:
            self._check()
        except BaseException:
            self._file.close()
            raise

    # -- layout checks ----------------------------------------------------------------------------
    def _dataset(self, name: str, *, required: bool = True) -> h5py.Dataset | None:
        try:
            item = self._file.get(name)
        except (OSError, KeyError, RuntimeError) as exc:
            raise EpisodeFormatError(self.path, name, f"cannot be read (truncated file?): {exc}") from None
        if item is None:
            if required:
                raise EpisodeFormatError(self.path, name, "missing")
            return None
        if not isinstance(item, h5py.Dataset):
            raise EpisodeFormatError(self.path, name, "is a group, expected a dataset")
        return item

    def _check(self) -> None:
        qpos = self._dataset("/observations/qpos")
        if qpos.ndim != 2:
            raise EpisodeFormatError(self.path, "/observations/qpos", f"shape {qpos.shape}, expected (T, dim)")
        self.length, self.dim = qpos.shape
        names = self._file.attrs.get("state_names")  # ours: one name per column
        if names is not None and len(names) != self.dim:
            raise EpisodeFormatError(self.path, "/observations/qpos", f"has {self.dim} columns, expected "
                                     f"{len(names)} (the file's state_names)")
        for name in ("/observations/qvel", "/observations/effort", "/action"):
            ds = self._dataset(name, required=name != "/observations/effort")  # ACT's sim episodes have no effort
            if ds is not None and ds.shape[0] != self.length:
                raise EpisodeFormatError(self.path, name, f"has {ds.shape[0]} steps, /observations/qpos has "
                                         f"{self.length}")
            if ds is not None and ds.ndim != 2:
                raise EpisodeFormatError(self.path, name, f"shape {ds.shape}, expected (T, dim)")
            if ds is not None and name in STATE and ds.shape[1] != self.dim:
                raise EpisodeFormatError(self.path, name, f"has {ds.shape[1]} columns, /observations/qpos has "
                                         f"{self.dim}")
        self.action_dim = self._dataset("/action").shape[1]
        self.compressed = bool(self._file.attrs.get("compress", False))
        group = self._file.get("/observations/images")
        names = list(group.keys()) if isinstance(group, h5py.Group) else []
        stored_order = self._file.attrs.get("cameras")  # ours: the rig's order; ALOHA's: alphabetical
        if stored_order is not None and set(map(str, stored_order)) == set(names):
            names = [str(n) for n in stored_order]
        self.camera_names = tuple(names)
        self._images = {}
        for cam in self.camera_names:
            name = f"/observations/images/{cam}"
            ds = self._dataset(name)
            if ds.shape[0] != self.length:
                raise EpisodeFormatError(self.path, name, f"has {ds.shape[0]} frames, the episode has "
                                         f"{self.length} steps")
            if ds.dtype != np.uint8:
                raise EpisodeFormatError(self.path, name, f"dtype {ds.dtype}, expected uint8")
            if self.compressed and ds.ndim != 2:
                raise EpisodeFormatError(self.path, name, f"shape {ds.shape}: the file says compress=True, "
                                         "expected (T, padded JPEG bytes)")
            if not self.compressed and (ds.ndim != 4 or ds.shape[3] != 3):
                raise EpisodeFormatError(self.path, name, f"shape {ds.shape}, expected (T, H, W, 3)")
            self._images[cam] = ds
        self._depth = self._check_depth()

    def _check_depth(self) -> dict[str, h5py.Dataset]:
        """/observations/depth/<cam>: (T, H, W) uint16, one per camera that recorded depth (none in ALOHA's files)."""
        group = self._file.get("/observations/depth")
        found = {}
        for cam in (group.keys() if isinstance(group, h5py.Group) else ()):
            name = f"/observations/depth/{cam}"
            ds = self._dataset(name)
            if ds.ndim != 3 or ds.dtype != np.uint16:
                raise EpisodeFormatError(self.path, name, f"{ds.dtype} {ds.shape}, expected uint16 (T, H, W)")
            if ds.shape[0] != self.length:
                raise EpisodeFormatError(self.path, name, f"has {ds.shape[0]} frames, the episode has {self.length} "
                                         "steps")
            found[cam] = ds
        return found

    # -- contents ---------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._file.attrs.items()}

    @property
    def task_description(self) -> str:
        """The root attribute `task_description` (ours), "" where the file has none (ALOHA's, older ones)."""
        value = self._file.attrs.get("task_description", "")
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    def array(self, name: str, *, finite: bool = False) -> np.ndarray:
        """A whole low-dimensional dataset, e.g. "/observations/qpos", "/action", "/timestamps/control".

        finite=True: a NaN or inf is an EpisodeFormatError naming its row and column.
        """
        ds = self._dataset(name)
        try:
            data = ds[()]
        except OSError as exc:
            raise EpisodeFormatError(self.path, name, f"cannot be read (truncated file?): {exc}") from None
        if finite and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
            bad = np.argwhere(~np.isfinite(data))
            where = ", ".join(f"column {i}" for i in bad[0][1:])
            more = f" ({len(bad)} non-finite values in all)" if len(bad) > 1 else ""
            value = data[tuple(bad[0])]
            raise EpisodeFormatError(self.path, name, f"row {bad[0][0]}{' ' + where if where else ''} is "
                                     f"{'NaN' if np.isnan(value) else value}{more}")
        return data

    def check_values(self) -> None:
        """Every low-dimensional value finite and, for JPEG files, /compress_len as long as the episode."""
        for name in VALUES:
            if name in self._file:
                self.array(name, finite=True)
        if self.compressed and "compress_len" in self._file:
            lengths = self.array("/compress_len")
            if lengths.ndim != 2 or lengths.shape[1] != self.length:
                raise EpisodeFormatError(self.path, "/compress_len", f"shape {lengths.shape}, expected "
                                         f"({len(self.camera_names)}, {self.length})")

    def optional(self, name: str) -> np.ndarray | None:
        return self.array(name) if name in self._file else None

    @property
    def qpos(self) -> np.ndarray:
        return self.array("/observations/qpos")

    @property
    def action(self) -> np.ndarray:
        return self.array("/action")

    def image_size(self, cam: str) -> tuple[int, int]:
        if not self.compressed:
            return tuple(self._images[cam].shape[1:3])
        return self.image(cam, 0).shape[:2] if self.length else (0, 0)

    def image(self, cam: str, step: int) -> np.ndarray:
        """(H, W, 3) uint8, RGB as recorded."""
        if cam not in self._images:
            raise EpisodeFormatError(self.path, f"/observations/images/{cam}", "missing; the file has cameras "
                                     f"{', '.join(self.camera_names) or '(none)'}")
        name = f"/observations/images/{cam}"
        try:
            row = self._images[cam][step]
        except OSError as exc:
            raise EpisodeFormatError(self.path, name, f"frame {step} cannot be read (truncated file?): {exc}") from None
        if not self.compressed:
            return row
        image = cv2.imdecode(row, cv2.IMREAD_COLOR)  # trailing zero padding is ignored by the decoder
        if image is None:
            raise EpisodeFormatError(self.path, name, f"frame {step} is not a decodable JPEG")
        return image

    @property
    def depth_names(self) -> tuple[str, ...]:
        """The cameras that recorded depth."""
        return tuple(self._depth)

    def depth(self, cam: str, step: int) -> np.ndarray:
        """(H, W) uint16 aligned to the camera's image, in `depth_units(cam)`."""
        try:
            return self._depth_dataset(cam)[step]
        except OSError as exc:
            raise EpisodeFormatError(self.path, f"/observations/depth/{cam}", f"frame {step} cannot be read "
                                     f"(truncated file?): {exc}") from None

    def depth_units(self, cam: str) -> float:
        """Metres per depth value of `cam` (0.001: millimetres)."""
        return float(self._depth_dataset(cam).attrs.get("depth_units", 0.0))

    def _depth_dataset(self, cam: str) -> h5py.Dataset:
        if cam not in self._depth:
            raise EpisodeFormatError(self.path, f"/observations/depth/{cam}", "missing; the file has depth from "
                                     f"{', '.join(self._depth) or 'no camera'}")
        return self._depth[cam]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
