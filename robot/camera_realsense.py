"""RealSenseCamera: an Intel RealSense camera, chosen by serial number, through pyrealsense2.

The rig file's `device:` is the serial number (quote it: YAML reads 0123 as a
number); `rs-enumerate-devices -s` lists them. The colour stream is rgb8 at the
rig file's width, height and fps; with `depth: true` the z16 depth stream runs
too and is aligned to the colour image with rs.align, so each Frame carries a
(H, W) uint16 depth image pixel for pixel with its colour image, in the sensor's
depth units (Frame.depth_units, metres per value).

Frame times come from the device: its timestamp (kept as Frame.device_t, seconds)
mapped onto the loop's clock by robot.camera_reader.DeviceClock, so the delay of
USB and of this process does not count as capture time.

The streams are opened sensor by sensor and matched by rs.syncer (what
rs.pipeline does inside); that works for a software_device too, which a
pipeline cannot find. rs.align runs in the reader thread and holds the GIL
while it runs (pyrealsense2 does not release it there): a few ms per frame.

pyrealsense2 is imported when a camera opens, never at module load, so a rig
without RealSense cameras does not need it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from robot.camera_reader import READ_TIMEOUT_S, Capture, DeviceClock, ReaderCamera

if TYPE_CHECKING:
    from robot.rig import CameraConfig

INSTALL_HINT = ("`pip install pyrealsense2` (or `pip install tandem[realsense]`); on Debian and Ubuntu it also needs "
                "libusb: `sudo apt-get install libusb-1.0-0`")
MAX_MODES_LISTED = 12


@dataclass
class _Streams:
    """An opened camera: its started sensors, the syncer they deliver into, and what turns a set into a Capture."""

    sensors: list[Any]
    syncer: Any
    align: Any  # rs.align to colour, or None without depth
    clock: DeviceClock
    depth_units: float


class RealSenseCamera(ReaderCamera):
    stale_hint = ("check the USB cable and that the camera is on a USB 3 port (`rs-enumerate-devices` shows the "
                  "USB type it runs at)")
    no_frame_hint = "Check the USB cable and that the camera is on a USB 3 port."

    def __init__(self, config: CameraConfig, *, context: Any = None, **options: Any) -> None:
        """`context`: where the cameras are found (anything with query_devices(); rs.context() when None).
        `options`: the reader's (clock, max_age_s, warmup_frames, open_timeout_s, reconnect_delay_s)."""
        self._context = context
        super().__init__(config, **options)

    # -- opening -------------------------------------------------------------------------------------
    def _open(self) -> _Streams:
        rs = self._pyrealsense2()
        device = self._find_device(rs)
        c = self.config
        color = self._mode(rs, device, rs.stream.color, rs.format.rgb8, exact=True)
        depth = self._mode(rs, device, rs.stream.depth, rs.format.z16, exact=False) if c.depth else None
        chosen: dict[int, tuple[Any, list[Any]]] = {}  # a sensor may deliver both streams (D405)
        for sensor, profile in (m for m in (color, depth) if m is not None):
            chosen.setdefault(id(sensor), (sensor, []))[1].append(profile)
        syncer = rs.syncer(1)  # a queue of one: the newest set, never a backlog
        started: list[Any] = []
        try:
            for sensor, profiles in chosen.values():
                sensor.open(profiles)
                started.append(sensor)
            for sensor in started:
                sensor.start(syncer)
        except RuntimeError as exc:
            _stop(started)
            raise self._error(f"could not start its streams ({exc}). Is another program (realsense-viewer, "
                              "another tandem command) using it?") from None
        units = depth[0].as_depth_sensor().get_depth_scale() if depth is not None else 0.0
        return _Streams(started, syncer, rs.align(rs.stream.color) if depth is not None else None, DeviceClock(),
                        units)

    def _pyrealsense2(self) -> Any:
        try:
            import pyrealsense2
        except ImportError as exc:
            raise self._error(f"pyrealsense2 cannot be imported ({exc}): {INSTALL_HINT}") from None
        return pyrealsense2

    def _find_device(self, rs: Any) -> Any:
        context = self._context if self._context is not None else rs.context()
        devices = {d.get_info(rs.camera_info.serial_number): d for d in context.query_devices()}
        if self.config.device in devices:
            return devices[self.config.device]
        if devices:
            seen = f"connected: {', '.join(sorted(devices))}"
        else:
            seen = "none is connected: is it plugged in, and does `rs-enumerate-devices -s` list it?"
        raise self._error(f"no RealSense camera with serial number {self.config.device} ({seen}). Put the serial "
                          "number of the camera in the rig file's `device:` (quoted)")

    def _mode(self, rs: Any, device: Any, stream: Any, fmt: Any, *, exact: bool) -> tuple[Any, Any] | None:
        """(sensor, profile) of `stream` in `fmt` at the rig file's size and fps; a depth stream may fall back to
        the largest size at that fps (aligning brings it to the colour size). CameraError listing the modes."""
        c = self.config
        offered = [(sensor, p.as_video_stream_profile()) for sensor in device.query_sensors()
                   for p in sensor.get_stream_profiles() if p.stream_type() == stream and p.format() == fmt]
        for sensor, p in offered:
            if (p.width(), p.height(), p.fps()) == (c.width, c.height, c.fps):
                return sensor, p
        same_rate = [(s, p) for s, p in offered if p.fps() == c.fps]
        if not exact and same_rate:
            return max(same_rate, key=lambda sp: sp[1].width() * sp[1].height())
        name = "colour rgb8" if exact else "depth z16"
        modes = sorted({(p.width(), p.height(), p.fps()) for _, p in offered}, reverse=True)
        listed = ", ".join(f"{w}x{h}@{f}" for w, h, f in modes[:MAX_MODES_LISTED]) or "none"
        raise self._error(f"offers no {name} stream at {c.width}x{c.height}, {c.fps} fps; it offers {listed}. Set "
                          "width, height and fps in the rig file to one of them.")

    # -- reading -------------------------------------------------------------------------------------
    def _read(self, streams: _Streams) -> Capture | None:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not self._stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return None
            ok, frames = streams.syncer.try_wait_for_frames(left_ms)
            if not ok:
                return None
            arrival = self._clock()
            if not frames.get_color_frame() or (streams.align is not None and not frames.get_depth_frame()):
                continue  # a set the syncer let go without its partner (at start, or a dropped frame)
            depth = None
            if streams.align is not None:
                frames = streams.align.process(frames)
                depth = np.array(frames.get_depth_frame().get_data(), dtype=np.uint16, copy=True)
            color = frames.get_color_frame()
            image = np.array(color.get_data(), dtype=np.uint8, copy=True)  # the device's buffer goes back to it
            device_t = color.get_timestamp() / 1000.0
            return Capture(image, streams.clock(device_t, arrival), depth, streams.depth_units, device_t)
        return None

    def _release(self, streams: _Streams) -> None:
        _stop(streams.sensors)


def _stop(sensors: list[Any]) -> None:
    """Stop and close each sensor; a device already gone refuses, and has nothing left to release."""
    for sensor in sensors:
        for step in (sensor.stop, sensor.close):
            try:
                step()
            except RuntimeError:
                pass
