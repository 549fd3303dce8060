"""OpenCVCamera through OpenCV's real VideoCapture, on short MJPG video files instead of cameras.

Frame k of a test video is uniform BGR (20k, 0, 200): after the camera's BGR->RGB
conversion, red is ~200 and blue tells the frame number, so order survives JPEG.
A file has an end: reading past it is how these tests unplug a camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot.cameras import FAILS_BEFORE_RECONNECT, CameraError, Frame, OpenCVCamera, open_cameras
from robot.rig import CameraConfig

WIDTH, HEIGHT, FPS = 320, 240, 30


def write_video(path: Path, frames: int, width: int = WIDTH, height: int = HEIGHT) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    assert writer.isOpened()
    for k in range(frames):
        bgr = np.zeros((height, width, 3), np.uint8)
        bgr[..., 0], bgr[..., 2] = 20 * k, 200
        writer.write(bgr)
    writer.release()
    return str(path)


def config(name: str, device: str, **overrides) -> CameraConfig:
    return CameraConfig(name, device, **{"width": WIDTH, "height": HEIGHT, "fps": FPS, **overrides})


def frame_number(frame: Frame) -> int:
    return round(float(frame.image[..., 2].mean()) / 20)


def camera_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("camera-") and t.is_alive()]


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)  # a spinning poll would hold the GIL the reader thread needs


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    yield
    assert camera_threads() == []


@pytest.fixture
def video(tmp_path) -> str:
    return write_video(tmp_path / "cam.avi", 12)


def test_frames_arrive_rgb_of_the_configured_size_in_order_and_warmup_frames_are_dropped(video):
    ticks = iter(range(1, 10**9))  # every read gets its own time, so order shows in t
    with OpenCVCamera(config("cam_high", video), clock=lambda: float(next(ticks)), max_age_s=1e9,
                      warmup_frames=2, reconnect_delay_s=60) as cam:
        seen = [cam.latest()]
        wait_for(lambda: (seen.append(cam.latest()), cam.stats.read_failures > 0)[1])  # to the end of the file
        seen.append(cam.latest())
        stats = cam.stats
    for frame in seen:
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert abs(float(frame.image[..., 0].mean()) - 200) < 8  # red first: RGB, not OpenCV's BGR
        assert frame_number(frame) == frame.index + 1  # frames 0 and 1 went to the warm-up
    assert all(b.index >= a.index and b.t >= a.t for a, b in zip(seen, seen[1:], strict=False))
    assert len({f.index for f in seen}) == len({f.t for f in seen})  # a new index always comes with a new time
    assert seen[-1].index == stats.frames == 12 - 2
    assert stats.reconnects == 0


def test_a_missing_device_says_which_and_how_to_find_the_cameras(tmp_path):
    for device, path in (("/dev/video7", "/dev/video7"), ("7", "/dev/video7")):
        with pytest.raises(CameraError) as err:
            OpenCVCamera(config("cam_low", device))
        message = str(err.value)
        assert "cam_low" in message and f"{path}: no such device" in message
        assert "v4l2-ctl --list-devices" in message and "/dev/v4l/by-id/" in message
        assert err.value.camera == "cam_low" and err.value.device == device
    with pytest.raises(CameraError, match="no such file"):
        OpenCVCamera(config("cam_low", str(tmp_path / "missing.avi")))
    with pytest.raises(CameraError, match="simulated rig"):
        OpenCVCamera(config("cam_low", "sim"))


def test_a_size_the_driver_does_not_grant_is_an_error_naming_both_sizes(video):
    # OpenCV ignores width/height for a file, as a driver may for a camera: the check reads back what was granted.
    with pytest.raises(CameraError) as err:
        OpenCVCamera(config("cam_left_wrist", video, width=640, height=480))
    message = str(err.value)
    assert "cam_left_wrist" in message and video in message
    assert "asked for 640x480, the driver granted 320x240" in message


def test_a_lower_fps_or_another_format_than_asked_is_a_warning(video, caplog):
    with caplog.at_level(logging.WARNING, logger="robot.cameras"):
        OpenCVCamera(config("cam_high", video, fps=60, fourcc="YUYV"), reconnect_delay_s=60).close()
    text = caplog.text
    assert "asked for 60 fps, the driver granted 30.0 fps" in text
    assert "asked for YUYV, the driver granted MJPG" in text


def test_a_video_too_short_for_the_warmup_times_out_with_a_clear_error(tmp_path):
    video = write_video(tmp_path / "short.avi", 3)
    with pytest.raises(CameraError, match=r"no frame within 0\.2 s of opening \(3 warm-up frame"):
        OpenCVCamera(config("cam_high", video), warmup_frames=5, open_timeout_s=0.2)


def test_a_stale_frame_raises_naming_the_camera_its_age_and_the_reconnect(video):
    clock = FakeClock()
    with OpenCVCamera(config("cam_right_wrist", video), clock=clock, max_age_s=0.5, warmup_frames=0,
                      reconnect_delay_s=60) as cam:  # the file ends, then the reader waits to re-open it
        wait_for(lambda: not cam.stats.connected)
        newest = cam.latest()
        assert newest.index == 12 and cam.latest() is newest  # fresh enough: the same frame again, same index
        clock.t = 0.5
        assert cam.latest() is newest
        clock.t = 1.25
        with pytest.raises(CameraError) as err:
            cam.latest()
        message = str(err.value)
        assert "cam_right_wrist" in message and video in message
        assert "1.25 s old" in message and "max age 0.50 s" in message and "reconnecting" in message
        assert cam.stats.read_failures == FAILS_BEFORE_RECONNECT
    # close() ended the 60 s backoff wait at once: the autouse fixture finds no reader thread


def test_the_reader_reconnects_after_the_stream_ends_and_indices_keep_increasing(video):
    with OpenCVCamera(config("cam_high", video), warmup_frames=2, reconnect_delay_s=0.01,
                      max_age_s=10) as cam:
        seen = [cam.latest()]
        wait_for(lambda: (seen.append(cam.latest()), cam.stats.reconnects >= 2)[1])
        seen.append(cam.latest())
        stats = cam.stats
    per_pass = 12 - 2  # each re-open warms up again, then the file plays from frame 2
    for frame in seen:
        assert frame_number(frame) == 2 + (frame.index - 1) % per_pass
    assert all(b.index >= a.index and b.t >= a.t for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1].index > 2 * per_pass
    assert stats.read_failures >= 2 * FAILS_BEFORE_RECONNECT


def test_close_stops_the_reader_and_can_be_called_twice(video):
    cam = OpenCVCamera(config("cam_low", video), reconnect_delay_s=60)
    assert camera_threads() == ["camera-cam_low"]
    cam.close()
    assert camera_threads() == []
    cam.close()
    with pytest.raises(CameraError, match="cam_low.*closed"):
        cam.latest()


def test_open_cameras_opens_them_all(tmp_path):
    configs = [config(name, write_video(tmp_path / f"{name}.avi", 8)) for name in ("cam_high", "cam_low")]
    cameras = open_cameras(configs, reconnect_delay_s=60, warmup_frames=1)
    try:
        assert list(cameras) == ["cam_high", "cam_low"]
        assert all(cam.latest().image.shape == (HEIGHT, WIDTH, 3) for cam in cameras.values())
    finally:
        for cam in cameras.values():
            cam.close()


def test_open_cameras_closes_the_opened_ones_when_one_fails(tmp_path, monkeypatch):
    closed = []
    close = OpenCVCamera.close

    def recording_close(self):
        closed.append(self.name)
        close(self)

    monkeypatch.setattr(OpenCVCamera, "close", recording_close)
    good = config("cam_high", write_video(tmp_path / "good.avi", 8))
    with pytest.raises(CameraError, match="cam_low.*/dev/video9: no such device"):
        open_cameras([good, config("cam_low", "/dev/video9")], reconnect_delay_s=60)
    assert closed == ["cam_high"]
    with pytest.raises(CameraError) as err:  # several failures: one error that lists them all
        open_cameras([good, config("cam_low", "/dev/video9"), config("cam_wrist", "/dev/video8")])
    assert "cam_low" in str(err.value) and "also camera cam_wrist (/dev/video8)" in str(err.value)
    with pytest.raises(ValueError, match="repeated: cam_high"):
        open_cameras([good, good])
