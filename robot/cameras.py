"""Cameras as the control loop sees them: the newest frame of each, with the time it was captured.

Backends: the simulated rig's cameras (robot/sim/sim_camera.py) and OpenCVCamera
for USB cameras. A frame's time is on the loop's clock, so a recorder can tell a
fresh frame from a repeated one.

OpenCVCamera gives each camera one reader thread that reads as fast as the camera
delivers and keeps only the newest frame, so the control loop never waits for a
camera and never gets a frame from the driver's queue that is several periods old.
A frame older than `max_age_s` is an error, not a silent repeat: a recorder must
not write the same image for seconds after a cable came loose. When reads fail,
the reader re-opens the device with backoff (a replugged camera comes back).
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from robot.rig import CameraConfig

log = logging.getLogger(__name__)

FAILS_BEFORE_RECONNECT = 3  # one failed read can be a hiccup; several in a row mean the device is gone
MAX_RECONNECT_DELAY_S = 2.0
READ_TIMEOUT_MS = 1000  # V4L2 waits 10 s for a frame by default, which would stall close() as long
LIST_HINT = ("list cameras with `v4l2-ctl --list-devices`, and name them in the rig file by their "
             "/dev/v4l/by-id/... paths, which survive replugging")
PERMISSION_HINT = ("permission denied. Add yourself to the video group (sudo usermod -aG video $USER), "
                   "then log out and back in.")


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8, RGB
    t: float  # capture time, on the loop's clock
    index: int  # frames captured by this camera so far; equal index = the same frame


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


class OpenCVCamera:
    """A USB (V4L2) camera, or anything else OpenCV's VideoCapture opens, such as a video file.

    The constructor opens and configures the device and waits for its first good frame,
    so a camera that is constructed delivers frames; it raises CameraError otherwise.
    """

    def __init__(self, config: CameraConfig, *, clock: Callable[[], float] = time.perf_counter,
                 max_age_s: float | None = None, warmup_frames: int = 5, open_timeout_s: float = 5.0,
                 backend: int | None = None, reconnect_delay_s: float = 0.1) -> None:
        self.name = config.name
        self.config = config
        # A few frame periods, but never so tight that one late USB transfer is an error.
        self.max_age_s = max_age_s if max_age_s is not None else max(0.5, 3.0 / config.fps)
        self.warmup_frames = warmup_frames
        self.open_timeout_s = open_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self._clock = clock
        self._source: int | str = int(config.device) if config.device.isdigit() else config.device
        self._backend = backend if backend is not None else _default_backend(self._source)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._frame: Frame | None = None
        self._read_failures = 0
        self._reconnects = 0
        self._connected = True
        self._last_error = ""
        self._check_device()
        cap = self._connect()  # in the caller's thread: a camera that fails to start fails loudly, here
        self._thread = threading.Thread(target=self._run, args=(cap,), name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    @property
    def size(self) -> tuple[int, int]:
        return self.config.height, self.config.width

    @property
    def stats(self) -> CameraStats:
        with self._lock:
            frames = self._frame.index if self._frame is not None else 0
            return CameraStats(frames, self._read_failures, self._reconnects, self._connected)

    def latest(self) -> Frame:
        """The newest frame; CameraError if it is older than max_age_s or the camera is closed."""
        with self._lock:
            frame, connected, reason, reconnects = self._frame, self._connected, self._last_error, self._reconnects
        if self._closed:
            raise self._error("the camera is closed")
        assert frame is not None  # the constructor returns only after the first frame
        age = self._clock() - frame.t
        if age <= self.max_age_s:
            return frame
        if connected:
            why = ("the device is open but delivers no new frames: check the cable and USB bandwidth "
                   "(MJPG, fewer cameras per USB controller, or a lower fps)")
        else:
            why = (f"the device stopped delivering frames ({reason}); reconnecting, "
                   f"{reconnects} reconnect(s) so far: check the cable")
        raise self._error(f"the newest frame is {age:.2f} s old (frame {frame.index}, max age {self.max_age_s:.2f} s); "
                          f"{why}")

    def close(self) -> None:
        """Stop the reader thread; it releases the device. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=READ_TIMEOUT_MS / 1000 + 1.0)
        if self._thread.is_alive():  # a read is stuck in the driver; the thread releases the device when it returns
            log.warning("camera %s (%s): the reader thread did not stop within %.1f s", self.name,
                        self.config.device, READ_TIMEOUT_MS / 1000 + 1.0)

    def __enter__(self) -> OpenCVCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -----------------------------------------------------------------------------------
    def _error(self, problem: str) -> CameraError:
        return CameraError(self.name, self.config.device, problem)

    def _check_device(self) -> None:
        """Errors a person can act on for a device that is missing or not theirs, before OpenCV's vaguer ones."""
        device = self.config.device
        if device == "sim":
            raise self._error("'sim' is a camera of the simulated rig; the sim world process renders it "
                              "(robot/sim), OpenCVCamera does not open it")
        linux = sys.platform.startswith("linux")
        path = f"/dev/video{device}" if isinstance(self._source, int) and linux else device
        if isinstance(self._source, int) and not linux:
            return  # other systems number cameras without a device file to check
        if not os.path.exists(path):
            if not path.startswith("/dev/"):
                raise self._error("no such file or device")
            present = sorted(glob.glob("/dev/video*"))
            seen = f"cameras present: {', '.join(present)}" if present else \
                "no cameras are present (no /dev/video*): is the camera plugged in?"
            raise self._error(f"{path}: no such device ({seen}); {LIST_HINT}")
        if path.startswith("/dev/") and not os.access(path, os.R_OK | os.W_OK):
            raise self._error(f"{path}: {PERMISSION_HINT}")

    def _connect(self) -> cv2.VideoCapture:
        """Open, configure and verify the device, then warm it up; the first good frame is published."""
        cap = cv2.VideoCapture(self._source, self._backend)
        try:
            if not cap.isOpened():
                raise self._error(
                    f"OpenCV could not open it ({cv2.videoio_registry.getBackendName(self._backend)} backend). "
                    f"Is another program using it (`fuser {self.config.device}`)? Some cameras create two "
                    "/dev/video nodes and only the first one delivers frames.")
            self._configure(cap)
            self._warm_up(cap)
        except BaseException:
            cap.release()
            raise
        return cap

    def _configure(self, cap: cv2.VideoCapture) -> None:
        c = self.config
        # FOURCC first: V4L2 picks the sizes and rates on offer per pixel format.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        cap.set(cv2.CAP_PROP_FPS, c.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a deep driver queue would hand out old frames; ignored where unsupported
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS)
        # What the driver granted can differ from what was asked, silently.
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width > 0 and height > 0:  # some backends report 0 before the first frame; the warm-up checks then
            self._check_size(width, height)
        fps = cap.get(cv2.CAP_PROP_FPS)
        if 0 < fps < c.fps - 0.5:
            log.warning("camera %s (%s): asked for %d fps, the driver granted %.1f fps; frames will repeat in a "
                        "faster loop", self.name, c.device, c.fps, fps)
        granted = _fourcc_text(int(cap.get(cv2.CAP_PROP_FOURCC)))
        if granted is not None and granted != c.fourcc:
            log.warning("camera %s (%s): asked for %s, the driver granted %s; uncompressed formats from several "
                        "cameras can exceed USB bandwidth", self.name, c.device, c.fourcc, granted)

    def _check_size(self, width: int, height: int) -> None:
        c = self.config
        if (width, height) != (c.width, c.height):
            offers = f" (`v4l2-ctl -d {c.device} --list-formats-ext`)" if self._backend == cv2.CAP_V4L2 else ""
            raise self._error(f"asked for {c.width}x{c.height}, the driver granted {width}x{height}. Set width and "
                              f"height in the rig file to a size the camera offers{offers}.")

    def _warm_up(self, cap: cv2.VideoCapture) -> None:
        """Drop the first frames (exposure and white balance still settling), then publish the first good one."""
        deadline = time.monotonic() + self.open_timeout_s  # wall time: an injected clock may stand still
        discarded = 0
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                raise self._error(
                    f"no frame within {self.open_timeout_s:.1f} s of opening ({discarded} warm-up frame(s) "
                    "arrived). Check the cable; with several cameras on one USB controller, use MJPG or fewer "
                    "cameras per controller.")
            ok, bgr, t = self._read(cap)
            if not ok:
                self._stop.wait(1.0 / self.config.fps)
                continue
            self._check_size(bgr.shape[1], bgr.shape[0])
            if discarded < self.warmup_frames:
                discarded += 1
                continue
            self._publish(bgr, t)
            return

    # -- reading -----------------------------------------------------------------------------------
    def _read(self, cap: cv2.VideoCapture) -> tuple[bool, np.ndarray, float]:
        try:
            ok, bgr = cap.read()
        except cv2.error:
            ok, bgr = False, None
        t = self._clock()  # when the frame reached us: the loop's notion of "captured"
        return ok and bgr is not None, bgr, t

    def _publish(self, bgr: np.ndarray, t: float) -> None:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # a new array: a Frame handed out is never overwritten
        with self._lock:
            index = self._frame.index + 1 if self._frame is not None else 1
            self._frame = Frame(rgb, t, index)

    def _run(self, cap: cv2.VideoCapture | None) -> None:
        fails = 0
        try:
            while cap is not None and not self._stop.is_set():
                ok, bgr, t = self._read(cap)
                if ok and bgr.shape[:2] == self.size:
                    fails = 0
                    self._publish(bgr, t)
                    continue
                fails += 1
                with self._lock:
                    self._read_failures += 1
                if fails < FAILS_BEFORE_RECONNECT:
                    self._stop.wait(1.0 / self.config.fps)
                    continue
                cap.release()
                cap = self._reconnect()
                fails = 0
        except Exception as exc:  # keep the reason: latest() reports it instead of a bare "stale"
            log.exception("camera %s (%s): reader thread failed", self.name, self.config.device)
            with self._lock:
                self._connected, self._last_error = False, f"reader thread failed: {exc!r}"
        finally:
            if cap is not None:
                cap.release()

    def _reconnect(self) -> cv2.VideoCapture | None:
        """Re-open the device with growing delays until it answers or close() is called."""
        with self._lock:
            self._connected = False
            self._last_error = f"{FAILS_BEFORE_RECONNECT} reads in a row failed"
        log.warning("camera %s (%s): reads failed, re-opening the device", self.name, self.config.device)
        delay = self.reconnect_delay_s
        while not self._stop.wait(delay):
            try:
                cap = self._connect()
            except CameraError as exc:
                with self._lock:
                    self._last_error = exc.problem
                delay = min(2 * delay, max(MAX_RECONNECT_DELAY_S, self.reconnect_delay_s))
                continue
            with self._lock:
                self._connected, self._reconnects = True, self._reconnects + 1
            log.info("camera %s (%s): reconnected", self.name, self.config.device)
            return cap
        return None


def open_cameras(configs: Iterable[CameraConfig], **kwargs: Any) -> dict[str, OpenCVCamera]:
    """Open several cameras at once (each warm-up takes a while); all or none: on a failure the opened ones close.

    `kwargs` go to every OpenCVCamera. When several fail, the error lists them all.
    """
    configs = list(configs)
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"camera names must be unique; repeated: {', '.join(duplicates)}")
    if not configs:
        return {}
    with ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="camera-open") as pool:
        futures = [pool.submit(OpenCVCamera, c, **kwargs) for c in configs]
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


def _default_backend(source: int | str) -> int:
    """V4L2 for cameras on Linux, so the settings reach the camera's driver; files and URLs: whatever opens them."""
    camera = isinstance(source, int) or source.startswith("/dev/")
    return cv2.CAP_V4L2 if camera and sys.platform.startswith("linux") else cv2.CAP_ANY


def _fourcc_text(code: int) -> str | None:
    """'MJPG' from OpenCV's integer FOURCC; None where the backend reports none (0 or not printable)."""
    if not 0 < code < 2**32:
        return None
    text = code.to_bytes(4, "little").decode("ascii", errors="replace")
    return text if text.isprintable() and "\ufffd" not in text else None
