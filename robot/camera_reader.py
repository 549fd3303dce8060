"""The reader every opened camera kind shares: one thread per camera, the newest frame only.

The thread reads as fast as the device delivers and keeps only the newest frame, so
the control loop never waits for a camera and never gets a frame from a driver
queue that is several periods old. A frame older than `max_age_s` is an error, not
a silent repeat: a recorder must not write the same image for seconds after a
cable came loose. When reads fail several times in a row, the reader re-opens the
device with growing delays (a replugged camera comes back).

A kind subclasses ReaderCamera and supplies `_open` (open and configure the device,
or raise CameraError), `_read` (one frame as a Capture, or None) and `_release`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot.cameras import CameraError, CameraStats, Frame

if TYPE_CHECKING:
    from robot.rig import CameraConfig

log = logging.getLogger(__name__)

FAILS_BEFORE_RECONNECT = 3  # one failed read can be a hiccup; several in a row mean the device is gone
MAX_RECONNECT_DELAY_S = 2.0
READ_TIMEOUT_S = 1.0  # the longest one read may block: close() waits about this long at most


@dataclass(frozen=True)
class Capture:
    """One frame as a kind reads it, before it gets its index."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, a new array (a Frame handed out is never overwritten)
    t: float  # on the loop's clock
    depth: np.ndarray | None = None
    depth_units: float = 0.0
    device_t: float | None = None


class ReaderCamera:
    """A camera with a reader thread. The constructor opens the device and waits for its first good frame, so a
    camera that is constructed delivers frames; it raises CameraError otherwise."""

    # what to check when the device is open but sends nothing new (kinds say it for their hardware)
    stale_hint = "check the cable and USB bandwidth"
    no_frame_hint = "Check the cable."

    def __init__(self, config: CameraConfig, *, clock: Callable[[], float] = time.perf_counter,
                 max_age_s: float | None = None, warmup_frames: int = 5, open_timeout_s: float = 5.0,
                 reconnect_delay_s: float = 0.1) -> None:
        self.name = config.name
        self.config = config
        # A few frame periods, but never so tight that one late USB transfer is an error.
        self.max_age_s = max_age_s if max_age_s is not None else max(0.5, 3.0 / config.fps)
        self.warmup_frames = warmup_frames
        self.open_timeout_s = open_timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._frame: Frame | None = None
        self._read_failures = 0
        self._reconnects = 0
        self._connected = True
        self._last_error = ""
        handle = self._connect()  # in the caller's thread: a camera that fails to start fails loudly, here
        self._thread = threading.Thread(target=self._run, args=(handle,), name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    # -- what a kind supplies ------------------------------------------------------------------------
    def _open(self) -> Any:
        """Open and configure the device; CameraError (naming what to do) when it cannot."""
        raise NotImplementedError

    def _read(self, handle: Any) -> Capture | None:
        """The next frame, blocking at most about READ_TIMEOUT_S; None when none came."""
        raise NotImplementedError

    def _release(self, handle: Any) -> None:
        raise NotImplementedError

    def _size_problem(self, width: int, height: int) -> str:
        c = self.config
        return (f"asked for {c.width}x{c.height}, the device delivers {width}x{height}. Set width and height in the "
                "rig file to a size the camera offers.")

    # -- the camera ----------------------------------------------------------------------------------
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
            why = f"the device is open but delivers no new frames: {self.stale_hint}"
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
        self._thread.join(timeout=READ_TIMEOUT_S + 1.0)
        if self._thread.is_alive():  # a read is stuck in the driver; the thread releases the device when it returns
            log.warning("camera %s (%s): the reader thread did not stop within %.1f s", self.name,
                        self.config.device, READ_TIMEOUT_S + 1.0)

    def __enter__(self) -> ReaderCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -------------------------------------------------------------------------------------
    def _error(self, problem: str) -> CameraError:
        return CameraError(self.name, self.config.device, problem)

    def _connect(self) -> Any:
        """Open the device and warm it up; the first good frame is published."""
        handle = self._open()
        try:
            self._warm_up(handle)
        except BaseException:
            self._release(handle)
            raise
        return handle

    def _warm_up(self, handle: Any) -> None:
        """Drop the first frames (exposure and white balance still settling), then publish the first good one."""
        deadline = time.monotonic() + self.open_timeout_s  # wall time: an injected clock may stand still
        discarded = 0
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                raise self._error(f"no frame within {self.open_timeout_s:.1f} s of opening ({discarded} warm-up "
                                  f"frame(s) arrived). {self.no_frame_hint}")
            capture = self._read(handle)
            if capture is None:
                self._stop.wait(1.0 / self.config.fps)
                continue
            if capture.image.shape[:2] != self.size:
                raise self._error(self._size_problem(capture.image.shape[1], capture.image.shape[0]))
            if discarded < self.warmup_frames:
                discarded += 1
                continue
            self._publish(capture)
            return

    # -- reading -------------------------------------------------------------------------------------
    def _publish(self, capture: Capture) -> None:
        with self._lock:
            index = self._frame.index + 1 if self._frame is not None else 1
            self._frame = Frame(capture.image, capture.t, index, capture.depth, capture.depth_units,
                                capture.device_t)

    def _run(self, handle: Any) -> None:
        fails = 0
        try:
            while handle is not None and not self._stop.is_set():
                capture = self._read(handle)
                if capture is not None and capture.image.shape[:2] == self.size:
                    fails = 0
                    self._publish(capture)
                    continue
                fails += 1
                with self._lock:
                    self._read_failures += 1
                if fails < FAILS_BEFORE_RECONNECT:
                    self._stop.wait(1.0 / self.config.fps)
                    continue
                self._release(handle)
                handle = self._reconnect()
                fails = 0
        except Exception as exc:  # keep the reason: latest() reports it instead of a bare "stale"
            log.exception("camera %s (%s): reader thread failed", self.name, self.config.device)
            with self._lock:
                self._connected, self._last_error = False, f"reader thread failed: {exc!r}"
        finally:
            if handle is not None:
                self._release(handle)

    def _reconnect(self) -> Any:
        """Re-open the device with growing delays until it answers or close() is called."""
        with self._lock:
            self._connected = False
            self._last_error = f"{FAILS_BEFORE_RECONNECT} reads in a row failed"
        log.warning("camera %s (%s): reads failed, re-opening the device", self.name, self.config.device)
        delay = self.reconnect_delay_s
        while not self._stop.wait(delay):
            try:
                handle = self._connect()
            except CameraError as exc:
                with self._lock:
                    self._last_error = exc.problem
                delay = min(2 * delay, max(MAX_RECONNECT_DELAY_S, self.reconnect_delay_s))
                continue
            with self._lock:
                self._connected, self._reconnects = True, self._reconnects + 1
            log.info("camera %s (%s): reconnected", self.name, self.config.device)
            return handle
        return None


class DeviceClock:
    """A device's frame times mapped onto the loop's clock.

    t = device time + the smallest (arrival - device time) among the last `window` frames: the frame that came
    through with the least delay bounds the offset between the clocks, and the window lets the offset follow a slow
    drift between them. The result is never later than the frame's arrival, and it increases with the device's
    time. A device time that goes backwards (the device restarted) starts the mapping afresh.
    """

    def __init__(self, window: int = 300) -> None:
        self._offsets: deque[float] = deque(maxlen=window)
        self._last_device = -math.inf

    def __call__(self, device_t: float, arrival: float) -> float:
        if device_t < self._last_device:
            self._offsets.clear()
        self._last_device = device_t
        self._offsets.append(arrival - device_t)
        return device_t + min(self._offsets)
