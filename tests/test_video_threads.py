"""Encoding a video leaves no thread of the process real-time (SVT-AV1 makes its threads SCHED_FIFO 99 as root)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recording.lerobot_export import VideoStream
from recording.video import REALTIME, VideoWriter, _thread_policies

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc/self/task")


def _realtime_threads() -> list[int]:
    return [tid for tid, policy in _thread_policies().items() if policy in REALTIME]


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_no_thread_is_left_real_time_after_an_encoder_starts(tmp_path: Path, codec: str) -> None:
    assert _realtime_threads() == []
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "episode.mp4", 50.0, codec=codec) as video:
        for _ in range(5):
            video.write(frame)
        assert _realtime_threads() == [], "the encoder's threads would starve the machine"
    stream = VideoStream(tmp_path / "lerobot.mp4", 50, codec, 48, 64)
    for _ in range(5):
        stream.add(frame)
    stream.close()
    assert _realtime_threads() == []
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # children started now inherit normal scheduling
