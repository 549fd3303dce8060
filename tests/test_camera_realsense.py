"""RealSenseCamera through pyrealsense2's own software_device: librealsense's frame path with no camera attached.

A software device gets a colour sensor (and a depth sensor, with depth units and the
extrinsics rs.align needs) and a feeder thread that pushes frames at the stream's
rate with device timestamps, as a camera does over USB. Colour frame k is uniform
(k % 256, 40, 200); depth frame k is 500 + k everywhere, so a depth image tells
which colour frame it was matched with.

librealsense 2.56+ keeps only a weak reference to a software device added to a
context (`add_to`), so no context lists it: the camera gets a context whose
query_devices() returns the software devices (`context=`).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from robot import camera_realsense
from robot.camera_realsense import RealSenseCamera
from robot.cameras import CameraError, open_cameras
from robot.rig import CameraConfig

WIDTH, HEIGHT, FPS = 64, 48, 30
SERIAL = "912345678901"


def config(serial: str = SERIAL, **overrides) -> CameraConfig:
    return CameraConfig("cam_high", serial, **{"width": WIDTH, "height": HEIGHT, "fps": FPS, "type": "realsense",
                                               **overrides})


class SoftwareCamera:
    """A RealSense as librealsense sees it, fed from a thread: colour, and depth when asked."""

    def __init__(self, rs, serial: str = SERIAL, *, depth: bool = False) -> None:
        self.rs = rs
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Intel RealSense (software)")
        self.streams = []  # (sensor, profile, make pixels, bytes per pixel)
        if depth:
            sensor = self.device.add_sensor("Stereo Module")
            sensor.add_read_only_option(rs.option.depth_units, 0.001)
            depth_profile = self._stream(sensor, rs.stream.depth, rs.format.z16, 2, uid=1,
                                         pixels=lambda k: np.full((HEIGHT, WIDTH), 500 + k, np.uint16))
        sensor = self.device.add_sensor("RGB Camera")
        color_profile = self._stream(sensor, rs.stream.color, rs.format.rgb8, 3, uid=2,
                                     pixels=lambda k: np.tile(np.array([k % 256, 40, 200], np.uint8),
                                                              (HEIGHT, WIDTH, 1)))
        if depth:  # rs.align maps depth pixels into the colour image through these
            extrinsics = rs.extrinsics()
            extrinsics.rotation, extrinsics.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
            depth_profile.register_extrinsics_to(color_profile, extrinsics)
        self.device_t0_ms = 5000.0
        self.sent = 0
        self.running = threading.Event()
        self.running.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="software-realsense", daemon=True)
        self._thread.start()

    def _stream(self, sensor, kind, fmt, bpp: int, *, uid: int, pixels):
        rs = self.rs
        intrinsics = rs.intrinsics()
        intrinsics.width, intrinsics.height = WIDTH, HEIGHT
        intrinsics.fx = intrinsics.fy = 60.0
        intrinsics.ppx, intrinsics.ppy = WIDTH / 2, HEIGHT / 2
        intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5
        stream = rs.video_stream()
        stream.type, stream.fmt, stream.index, stream.uid, stream.bpp = kind, fmt, 0, uid, bpp
        stream.width, stream.height, stream.fps, stream.intrinsics = WIDTH, HEIGHT, FPS, intrinsics
        profile = sensor.add_video_stream(stream).as_video_stream_profile()
        # The hardware reports its frame rate in each frame's metadata; rs.syncer matches depth with colour by it
        # (a software sensor reports a meaningless rate unless told).
        sensor.set_metadata(rs.frame_metadata_value.actual_fps, FPS * 1000)
        self.streams.append((sensor, profile, pixels, bpp))
        return profile

    def _feed(self) -> None:
        rs = self.rs
        while not self._stop.wait(1.0 / FPS):
            if not self.running.is_set():
                continue
            k = self.sent
            for sensor, profile, pixels, bpp in self.streams:
                frame = rs.software_video_frame()
                frame.pixels, frame.stride, frame.bpp = pixels(k), WIDTH * bpp, bpp
                frame.timestamp, frame.domain = self.device_t0_ms + k * 1000.0 / FPS, rs.timestamp_domain.hardware_clock
                frame.frame_number, frame.profile, frame.depth_units = k, profile, 0.001
                sensor.on_video_frame(frame)  # dropped while the camera's sensors are not started
            self.sent += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class Devices:
    """What the camera asks for the connected devices: rs.context's query_devices(), over software devices."""

    def __init__(self, *cameras: SoftwareCamera) -> None:
        self.cameras = list(cameras)

    def query_devices(self):
        return [c.device for c in self.cameras]


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rs():
    return pytest.importorskip("pyrealsense2", reason="pyrealsense2 has wheels for x86_64 Linux and Windows only")


@pytest.fixture
def software(rs):
    cameras = []

    def make(serial: str = SERIAL, **kwargs) -> SoftwareCamera:
        cameras.append(SoftwareCamera(rs, serial, **kwargs))
        return cameras[-1]

    yield make
    for camera in cameras:
        camera.close()


def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def frame_number(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def test_colour_frames_arrive_with_device_times_mapped_onto_the_loop_clock(software):
    device = software()
    with RealSenseCamera(config(), context=Devices(device), warmup_frames=2, reconnect_delay_s=60) as cam:
        seen = [cam.latest()]
        wait_for(lambda: (seen.append(cam.latest()), seen[-1].index >= 8)[1])
        after = time.perf_counter()
    fresh = list({f.index: f for f in seen}.values())
    for frame in fresh:
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert tuple(frame.image[HEIGHT // 2, WIDTH // 2]) == (frame_number(frame.image), 40, 200)  # RGB as sent
        assert frame.depth is None
        k = frame_number(frame.image)  # the device's time of frame k, kept in seconds
        assert frame.device_t == pytest.approx((device.device_t0_ms + k * 1000 / FPS) / 1000)
        assert frame.t <= after
    assert [f.index for f in fresh] == list(range(fresh[0].index, fresh[-1].index + 1))
    assert all(b.t > a.t for a, b in zip(fresh, fresh[1:], strict=False))
    # the loop-clock times are spaced as the device's (a constant offset), not by when Python got to them
    device_steps = np.diff([f.device_t for f in fresh])
    loop_steps = np.diff([f.t for f in fresh])
    assert np.all(loop_steps <= device_steps + 1e-9)
    assert frame_number(fresh[0].image) >= 2  # frames 0 and 1 went to the warm-up


def test_a_device_that_stops_sending_is_stale_after_max_age(software, monkeypatch):
    monkeypatch.setattr(camera_realsense, "READ_TIMEOUT_S", 0.1)  # close() waits for a read that gets nothing
    device, clock = software(), FakeClock()
    with RealSenseCamera(config(), context=Devices(device), clock=clock, max_age_s=0.5, warmup_frames=0,
                         reconnect_delay_s=60) as cam:
        first = cam.latest()
        device.running.clear()
        time.sleep(0.1)  # a frame on its way is read
        newest = cam.latest()
        assert newest.index >= first.index
        clock.t = newest.t + 0.45
        assert cam.latest() is newest  # young enough: still served
        clock.t = newest.t + 1.25
        with pytest.raises(CameraError) as err:
            cam.latest()
    message = str(err.value)
    assert "cam_high" in message and SERIAL in message
    assert "1.25 s old" in message and "max age 0.50 s" in message and "USB" in message


def test_a_device_that_comes_back_is_reopened_and_indices_keep_counting(software, monkeypatch):
    monkeypatch.setattr(camera_realsense, "READ_TIMEOUT_S", 0.05)  # three silent reads: gone, within 0.2 s
    device = software()
    with RealSenseCamera(config(), context=Devices(device), warmup_frames=1, reconnect_delay_s=0.01,
                         max_age_s=10) as cam:
        before = cam.latest()
        device.running.clear()
        wait_for(lambda: cam.stats.read_failures >= 3)
        device.running.set()
        wait_for(lambda: cam.stats.reconnects >= 1 and cam.latest().index > before.index + 2)
        after = cam.latest()
    assert after.t > before.t and after.device_t > before.device_t
    assert cam.stats.connected


def test_depth_arrives_aligned_to_colour_as_uint16_of_the_same_frame(software):
    device = software(depth=True)
    with RealSenseCamera(config(depth=True), context=Devices(device), warmup_frames=2,
                         reconnect_delay_s=60) as cam:
        seen = [cam.latest()]
        wait_for(lambda: (seen.append(cam.latest()), seen[-1].index >= 5)[1])
    for frame in {f.index: f for f in seen}.values():
        assert frame.depth is not None and frame.depth.dtype == np.uint16
        assert frame.depth.shape == frame.image.shape[:2] == (HEIGHT, WIDTH)
        assert frame.depth_units == pytest.approx(0.001)
        k = frame_number(frame.image)
        inner = frame.depth[4:-4, 4:-4]  # rs.align leaves holes only at the borders, if anywhere
        assert np.all(inner == 500 + k), f"colour frame {k} came with depth {np.unique(inner)}"


def test_a_serial_that_is_not_connected_lists_the_ones_that_are(software):
    devices = Devices(software("111111111111"), software("222222222222"))
    with pytest.raises(CameraError) as err:
        RealSenseCamera(config("333333333333"), context=devices)
    message = str(err.value)
    assert "camera cam_high (333333333333)" in message
    assert "no RealSense camera with serial number 333333333333" in message
    assert "connected: 111111111111, 222222222222" in message
    with pytest.raises(CameraError, match="none is connected.*rs-enumerate-devices"):
        RealSenseCamera(config("333333333333"), context=Devices())


def test_a_mode_the_camera_does_not_offer_lists_the_modes_it_does(software):
    devices = Devices(software())
    with pytest.raises(CameraError) as err:
        RealSenseCamera(config(width=1280, height=720), context=devices)
    assert "offers no colour rgb8 stream at 1280x720, 30 fps; it offers 64x48@30" in str(err.value)


def test_without_pyrealsense2_opening_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # what `import pyrealsense2` meets when it is missing
    with pytest.raises(CameraError) as err:
        open_cameras([config()])
    message = str(err.value)
    assert "camera cam_high (912345678901)" in message
    assert "pip install pyrealsense2" in message and "libusb-1.0-0" in message


def test_no_module_imports_pyrealsense2_until_a_realsense_camera_opens():
    code = ("import sys, robot.cameras, robot.camera_realsense, robot.camera_opencv, robot.camera_synthetic, "
            "robot.rig; print('pyrealsense2' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
