"""Cameras as the control loop sees them: the newest frame of each, with the time it was captured.

Camera kinds are a registry (CAMERA_KINDS): a rig file's camera `type:` names one,
and `open_cameras` opens each camera through its kind. The kinds:

  opencv     USB (V4L2) cameras and video files, robot/camera_opencv.py
  realsense  Intel RealSense by serial number, colour and optional aligned depth, robot/camera_realsense.py
  synthetic  generated frames, for a rig run virtual before its cameras arrive, robot/camera_synthetic.py
  sim        rendered by the simulated rig's world process (robot/sim), not opened here

Every opened kind keeps one reader thread per camera (robot/camera_reader.py): the
newest frame only, an error for a frame older than `max_age_s`, and re-opening
with backoff when the device goes away. A frame's time is on the loop's clock,
so a recorder can tell a fresh frame from a repeated one. A kind's module, and
the library it needs (cv2, pyrealsense2), is imported only when a camera of that
kind is opened.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from robot.rig import CameraConfig


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8, RGB
    t: float  # capture time, on the loop's clock
    index: int  # frames captured by this camera so far; equal index = the same frame
    depth: np.ndarray | None = None  # (H, W) uint16 aligned to the image, in `depth_units`; None: no depth
    depth_units: float = 0.0  # metres per depth value (RealSense D400: 0.001)
    device_t: float | None = None  # the device's own timestamp (s, its clock) where it gives one


class Camera(Protocol):
    name: str

    def latest(self) -> Frame: ...

    def close(self) -> None: ...


class CameraError(RuntimeError):
    """A camera could not be opened, or has no fresh frame. Names the camera and its device."""

    def __init__(self, camera: str, device: str, problem: str) -> None:
        super().__init__(f"camera {camera} ({device}): {problem}")
        self.camera, self.device, self.problem = camera, device, problem


@dataclass(frozen=True)
class CameraStats:
    frames: int  # frames delivered (warm-up frames not counted); the newest frame's index
    read_failures: int  # reads that returned no frame (or a frame of the wrong size)
    reconnects: int  # successful re-opens after the device was lost
    connected: bool  # False while the reader is re-opening the device


@dataclass(frozen=True)
class CameraKind:
    opener: str | None  # "module:Class", imported when a camera of this kind opens; None: the sim world renders it
    device: str  # what `device:` means for this kind (rig file docs and errors)
    depth: bool = False  # can deliver depth (`depth: true` in the rig file)
    claims_device: str | None = None  # a camera whose device is this gets this kind when the rig file names none

    @property
    def opened_by_world(self) -> bool:
        return self.opener is None


CAMERA_KINDS: dict[str, CameraKind] = {
    "opencv": CameraKind("robot.camera_opencv:OpenCVCamera",
                         "a /dev/v4l/by-id/... path, /dev/videoN, N, or a video file"),
    "realsense": CameraKind("robot.camera_realsense:RealSenseCamera",
                            "the camera's serial number, quoted (`rs-enumerate-devices -s` lists them)", depth=True),
    "synthetic": CameraKind("robot.camera_synthetic:SyntheticCamera", "any label; the frames are generated",
                            depth=True),
    "sim": CameraKind(None, "sim: the simulated rig's world renders it", claims_device="sim"),
}
DEFAULT_KIND = "opencv"


def camera_kind(type_name: str) -> CameraKind:
    try:
        return CAMERA_KINDS[type_name]
    except KeyError:
        raise ValueError(f"unknown camera type {type_name!r}; the types are {', '.join(CAMERA_KINDS)}") from None


def default_camera_type(device: str) -> str:
    """The type of a camera whose rig file entry names none: the kind that claims its device (sim), else opencv."""
    return next((name for name, kind in CAMERA_KINDS.items() if kind.claims_device == device), DEFAULT_KIND)


def opened_by_world(config: CameraConfig) -> bool:
    """Rendered by the simulated rig's world process: `open_cameras` does not open it."""
    return camera_kind(config.type).opened_by_world


def open_camera(config: CameraConfig, **options: Any) -> Camera:
    """One camera, opened by its kind; `options` go to the kind's class (the reader's options, for every kind:
    clock, max_age_s, warmup_frames, open_timeout_s, reconnect_delay_s)."""
    kind = camera_kind(config.type)
    if kind.opener is None:
        raise CameraError(config.name, config.device, f"a {config.type} camera is rendered by the simulated rig's "
                                                      "world process (robot/sim); it is not opened here")
    module, name = kind.opener.split(":")
    return getattr(importlib.import_module(module), name)(config, **options)


def open_cameras(configs: Iterable[CameraConfig], **options: Any) -> dict[str, Camera]:
    """Open several cameras at once (each warm-up takes a while); all or none: on a failure the opened ones close.

    `options` go to every camera (see open_camera). When several fail, the error lists them all.
    """
    configs = list(configs)
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"camera names must be unique; repeated: {', '.join(duplicates)}")
    if not configs:
        return {}
    with ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="camera-open") as pool:
        futures = [pool.submit(open_camera, c, **options) for c in configs]
    opened = {c.name: f.result() for c, f in zip(configs, futures, strict=True) if f.exception() is None}
    failures = [e for f in futures if (e := f.exception()) is not None]
    if not failures:
        return opened
    for camera in opened.values():
        camera.close()
    first = failures[0]
    if len(failures) == 1 or not isinstance(first, CameraError):
        raise first
    also = "".join(f"\n  also {e}" for e in failures[1:])
    raise CameraError(first.camera, first.device, first.problem + also)
