"""Cameras: OpenCVCamera on video files, the registry of camera types, synthetic cameras, depth in episodes.

OpenCVCamera runs through OpenCV's real VideoCapture, on short MJPG video files
instead of cameras. Frame k of a test video is uniform BGR (20k, 0, 200): after the
camera's BGR->RGB conversion, red is ~200 and blue tells the frame number, so order
survives JPEG. A file has an end: reading past it is how these tests unplug a camera.

The registry is tested from a rig file with a camera of each type; a synthetic
camera with depth is recorded through the real loop, recorder and writer on
virtual buses, and read back.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml

from calibration.connection import connect
from recording.dataset import Dataset, DatasetInfo
from recording.layout import StateLayout
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.session import EpisodeSlot, RecordOptions
from recording.writer import EpisodeWriteError, EpisodeWriter, StepRecord
from robot.camera_opencv import OpenCVCamera
from robot.camera_reader import FAILS_BEFORE_RECONNECT, DeviceClock
from robot.camera_synthetic import SyntheticCamera
from robot.cameras import CameraError, Frame, open_camera, open_cameras, opened_by_world
from robot.clock import RealClock
from robot.commands import is_sim_world
from robot.loop import ControlLoop
from robot.rig import CameraConfig, RigFileError, load_rig, parse_rig
from robot.sim.virtual_rig import virtual_buses
from teleop.controller import TeleopController

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


def test_a_size_the_driver_does_not_grant_is_an_error_naming_both_sizes(video):
    # OpenCV ignores width/height for a file, as a driver may for a camera: the check reads back what was granted.
    with pytest.raises(CameraError) as err:
        OpenCVCamera(config("cam_left_wrist", video, width=640, height=480))
    message = str(err.value)
    assert "cam_left_wrist" in message and video in message
    assert "asked for 640x480, the driver granted 320x240" in message


def test_a_lower_fps_or_another_format_than_asked_is_a_warning(video, caplog):
    with caplog.at_level(logging.WARNING, logger="robot.camera_opencv"):
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


# -- the registry of camera types ----------------------------------------------------------------------------
def rig_with_cameras(tmp_path, cameras: dict):
    """The sim preset's arms with these cameras, through the rig file parser."""
    data = yaml.safe_load((Path(load_rig("sim").source)).read_text())
    data["cameras"] = cameras
    return parse_rig(data, str(tmp_path / "mixed.yaml"))


def test_a_rig_file_with_a_camera_of_each_type_opens_each_through_its_kind(tmp_path):
    video = write_video(tmp_path / "cam.avi", 12)
    rig = rig_with_cameras(tmp_path, {
        "cam_high": {"device": video, "width": WIDTH, "height": HEIGHT, "fps": FPS},  # no type: opencv
        "cam_low": {"type": "realsense", "device": "912345678901", "depth": True},
        "cam_left_wrist": {"type": "synthetic", "device": "left", "width": 64, "height": 48, "fps": 60,
                           "depth": True},
        "cam_right_wrist": {"device": "sim", "width": 64, "height": 48},  # no type: the sim world renders it
    })
    by_name = {c.name: c for c in rig.cameras}
    assert [c.type for c in rig.cameras] == ["opencv", "realsense", "synthetic", "sim"]
    assert [c.depth for c in rig.cameras] == [False, True, True, False]
    assert [opened_by_world(c) for c in rig.cameras] == [False, False, False, True]
    assert is_sim_world(rig)  # virtual arms and a camera the world renders
    assert not is_sim_world(dataclasses.replace(rig, cameras=rig.cameras[:3]))
    assert all(c.type == "synthetic" for c in rig.as_virtual().cameras[:3])  # --virtual: every camera generated

    with pytest.raises(CameraError, match="rendered by the simulated rig's world process"):
        open_camera(by_name["cam_right_wrist"])
    cameras = open_cameras([by_name["cam_high"], by_name["cam_left_wrist"]], warmup_frames=1, reconnect_delay_s=60)
    try:
        assert type(cameras["cam_high"]).__name__ == "OpenCVCamera"
        assert type(cameras["cam_left_wrist"]).__name__ == "SyntheticCamera"
        assert cameras["cam_high"].latest().image.shape == (HEIGHT, WIDTH, 3)
        frame = cameras["cam_left_wrist"].latest()
        assert frame.image.shape == (48, 64, 3) and frame.depth.shape == (48, 64) and frame.depth.dtype == np.uint16
    finally:
        for cam in cameras.values():
            cam.close()
    # no RealSense with that serial here (or no pyrealsense2): it fails, naming it, and the others close again
    with pytest.raises(CameraError, match=r"camera cam_low \(912345678901\)"):
        open_cameras([by_name["cam_high"], by_name["cam_low"], by_name["cam_left_wrist"]], reconnect_delay_s=60)


def test_a_rig_file_asking_depth_of_a_type_without_it_or_an_unknown_type_is_refused(tmp_path):
    with pytest.raises(RigFileError, match="cameras.cam_high.depth: a camera of type opencv delivers no depth; "
                                           "the types that do: realsense, synthetic"):
        rig_with_cameras(tmp_path, {"cam_high": {"device": "/dev/video0", "depth": True}})
    with pytest.raises(RigFileError, match="cameras.cam_high.type: 'kinect' is not one of opencv, realsense, "
                                           "synthetic, sim"):
        rig_with_cameras(tmp_path, {"cam_high": {"type": "kinect", "device": "0"}})


def test_no_module_decides_by_comparing_a_camera_with_sim():
    """Which cameras the sim world renders is the registry's to say (opened_by_world), nobody's string test."""
    pattern = r'(device|type)\s*[!=]=\s*"sim"|"sim"\s*[!=]=\s*\w*\.(device|type)|SIM_DEVICE'
    found = subprocess.run(["grep", "-rnE", "--include=*.py", pattern, "robot", "recording", "deploy"],
                           capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert found.returncode == 1 and found.stdout == "", found.stdout  # grep: 1 = no line matched


# -- synthetic cameras ---------------------------------------------------------------------------------------
def synthetic(name: str = "cam_high", **overrides) -> CameraConfig:
    return CameraConfig(name, "bench", **{"width": 64, "height": 48, "fps": 60, "type": "synthetic", **overrides})


def test_a_synthetic_camera_serves_moving_frames_of_its_size_on_the_loop_clock():
    ticks = iter(range(1, 10**9))
    with SyntheticCamera(synthetic(), clock=lambda: float(next(ticks)), max_age_s=1e9, warmup_frames=2,
                         pool=8) as cam:
        seen = [cam.latest()]
        wait_for(lambda: (seen.append(cam.latest()), seen[-1].index >= 6)[1])
    frames = list({f.index: f for f in seen}.values())
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 and f.depth is None for f in frames)
    assert [f.index for f in frames] == list(range(frames[0].index, frames[-1].index + 1))
    assert all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False))  # the injected clock's times
    assert all(not np.array_equal(a.image, b.image) for a, b in zip(frames, frames[1:], strict=False))
    assert not frames[0].image.flags.writeable  # a frame handed out is never changed
    # each camera its own scene, the same one every time it opens
    other = SyntheticCamera(synthetic("cam_low"), pool=2, warmup_frames=0)
    again = SyntheticCamera(synthetic(), pool=8, warmup_frames=0)
    other.close(), again.close()
    assert not np.array_equal(other.images[0], cam.images[0]) and np.array_equal(again.images[3], cam.images[3])


def test_device_times_map_onto_the_loop_clock_by_the_least_delayed_frame():
    clock = DeviceClock(window=3)
    assert clock(10.0, 500.030) == pytest.approx(500.030)
    assert clock(10.1, 500.125) == pytest.approx(500.125)  # 5 ms less delay: the offset follows it down
    assert clock(10.2, 500.290) == pytest.approx(500.225)  # a late arrival keeps the device's spacing
    assert clock(10.3, 500.390) == pytest.approx(500.325)
    assert clock(10.4, 500.490) == pytest.approx(500.490)  # 10.1's offset left the window: the clocks drifted
    assert clock(1.0, 600.0) == pytest.approx(600.0)  # the device restarted: a new mapping


# -- depth in episodes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_a_depth_camera_is_recorded_beside_the_aloha_images_and_read_back(tmp_path, compress):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path / "cal")
    configs = [synthetic("cam_high", depth=True, fps=50), synthetic("cam_low", fps=50)]
    cameras = open_cameras(configs, warmup_frames=0)
    dataset = Dataset.create_or_open(tmp_path / "d", DatasetInfo(rig="sim", cameras=["cam_high", "cam_low"],
                                                                 compress=compress,
                                                                 image_size={"cam_high": [48, 64],
                                                                             "cam_low": [48, 64]}))
    try:
        with virtual_buses(rig) as (live, _), connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
            slot = EpisodeSlot(dataset, StateLayout.from_connected(connected), cameras, RecordOptions(compress))
            loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                               RealClock(), rate_hz=50.0, observers=[slot.recorder])
            try:
                loop.run(lambda step: slot.recorder.steps >= 12)
            finally:
                loop.close()
            episode, _ = slot.finish(rate_hz=50.0, options=RecordOptions(compress), stop_reason="time")
    finally:
        for cam in cameras.values():
            cam.close()
    pool = cameras["cam_high"]
    with EpisodeReader(dataset.path(episode.index)) as ep:
        assert ep.camera_names == ("cam_high", "cam_low") and ep.depth_names == ("cam_high",)
        assert ep.depth_units("cam_high") == pytest.approx(0.001)
        for step in range(ep.length):
            depth = ep.depth("cam_high", step)
            assert depth.dtype == np.uint16 and depth.shape == (48, 64)
            k = next(i for i, d in enumerate(pool.depths) if np.array_equal(d, depth))  # a frame the camera served
            if not compress:
                assert np.array_equal(ep.image("cam_high", step), pool.images[k])  # with its own colour image
        with pytest.raises(EpisodeFormatError, match="depth/cam_low: missing; the file has depth from cam_high"):
            ep.depth("cam_low", 0)
    with h5py.File(dataset.path(episode.index), "r") as f:  # the colour images keep ALOHA's layout
        images = f["/observations/images/cam_high"]
        assert images.shape == ((12, images.shape[1]) if compress else (12, 48, 64, 3)) and images.dtype == np.uint8
        depth = f["/observations/depth/cam_high"]
        assert depth.chunks == (1, 48, 64) and depth.compression == "lzf"


def test_depth_from_another_set_of_cameras_than_the_first_step_fails_the_episode(tmp_path):
    writer = EpisodeWriter(tmp_path / "episode_0.hdf5", {"cam_high": (4, 6)}, dim=2)
    image, depth = np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint16)
    row = np.zeros(2, np.float32)
    writer.append(StepRecord(0.0, row, row, row, row, images={"cam_high": image}))
    writer.append(StepRecord(0.02, row, row, row, row, images={"cam_high": image}, depth={"cam_high": depth}))
    with pytest.raises(EpisodeWriteError, match=r"step 1 .*has depth from \[cam_high\], the episode's first step "
                                                r"from \[\]"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_a_depth_dataset_of_the_wrong_length_is_named(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    row = np.zeros(2, np.float32)
    with EpisodeWriter(path, {"cam_high": (4, 6)}, dim=2) as writer:
        for t in (0.0, 0.02):
            writer.append(StepRecord(t, row, row, row, row, images={"cam_high": np.zeros((4, 6, 3), np.uint8)},
                                     depth={"cam_high": np.zeros((4, 6), np.uint16)}, depth_units={"cam_high": 1e-3}))
    with h5py.File(path, "a") as f:
        f["/observations/depth/cam_high"].resize(1, axis=0)
    with pytest.raises(EpisodeFormatError, match="/observations/depth/cam_high: has 1 frames, the episode has 2"):
        EpisodeReader(path)
