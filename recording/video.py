"""Camera frames into an MP4 that browsers play: several cameras side by side, each panel labelled with its name.

One writer serves tandem-inspect (episode videos, the HTML report) and deploy's rollout videos. PyAV encodes
H.264 (libx264, yuv420p, the moov atom first so a browser plays while loading) by default, or AV1 (SVT-AV1).
Both play in Chromium, Debian's included (tests/test_inspect_html.py loads them in headless Chromium).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class VideoCodec:
    encoder: str  # PyAV/FFmpeg encoder name
    options: dict[str, str] = field(default_factory=dict)


CODECS = {
    "h264": VideoCodec("libx264", {"preset": "veryfast", "crf": "23"}),
    "av1": VideoCodec("libsvtav1", {"preset": "10", "crf": "35"}),
}
DEFAULT_CODEC = "h264"

LABEL_SCALE_PER_PIXEL = 0.45 / 240  # label font scale per pixel of panel height: 0.45 on a 240-pixel panel
LABEL_BOX = (20, 20, 20)  # RGB: dark backing box, so the name reads on any scene
LABEL_TEXT = (255, 255, 255)


REALTIME = (getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1))


def _thread_policies() -> dict[int, int]:
    policies = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            policies[int(task.name)] = os.sched_getscheduler(int(task.name))
        except OSError:  # a thread that ended meanwhile
            pass
    return policies


@contextmanager
def encoder_start() -> Iterator[None]:
    """Around an encoder's first frame, when it starts its threads. SVT-AV1, run as root, turns the calling thread
    and each of its ~20 workers SCHED_FIFO at priority 99: busy, they starve every other process of the machine, a
    control loop included, and children started later inherit it. Every thread made real-time inside goes back to
    normal scheduling; one that was real-time before (a loop run under chrt) stays so."""
    if not hasattr(os, "sched_getscheduler") or not Path("/proc/self/task").is_dir():
        yield
        return
    before = _thread_policies()
    try:
        yield
    finally:
        for tid, policy in _thread_policies().items():
            if policy in REALTIME and before.get(tid) not in REALTIME:
                with suppress(OSError):
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))


def draw_label(image: np.ndarray, text: str) -> None:
    """`text` in the top left corner of an RGB image, white on a dark box, in place."""
    scale = max(0.3, image.shape[0] * LABEL_SCALE_PER_PIXEL)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    pad = max(2, round(4 * scale))
    cv2.rectangle(image, (0, 0), (min(w + 2 * pad, image.shape[1] - 1), h + base + 2 * pad), LABEL_BOX, cv2.FILLED)
    cv2.putText(image, text, (pad, h + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, LABEL_TEXT, 1, cv2.LINE_AA)


def side_by_side(images: Sequence[np.ndarray], height: int, labels: Sequence[str] = ()) -> np.ndarray:
    """RGB frames scaled to one height and joined left to right; with `labels`, each panel carries its name."""
    if labels and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} camera images")
    tiles = [cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                        interpolation=cv2.INTER_AREA) for image in images]
    for tile, label in zip(tiles, labels, strict=False):
        draw_label(tile, label)
    return np.concatenate(tiles, axis=1)


def even_size(height: int, width: int) -> tuple[int, int]:
    """yuv420p halves both sides for colour: the encoded size rounds each up to even (padded black)."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """An MP4 of RGB frames at `fps`; the stream opens at the first frame, when the size is known.

    Use it as a context manager (or call close()): the file is finished and closed on error too, with the frames
    written so far. A frame of another size than the first is an error, not a stretched picture.
    """

    def __init__(self, path: str | Path, fps: float, codec: str = DEFAULT_CODEC) -> None:
        if codec not in CODECS:
            raise ValueError(f"video codec {codec!r} is not one of {', '.join(CODECS)}")
        if not 0 < fps < float("inf"):
            raise ValueError(f"{path}: video rate {fps} is not a positive number")
        self.path = Path(path)
        self.codec = codec
        self.rate = Fraction(fps).limit_denominator(1001)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the frames given
        if CODECS[codec].encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its settings to stderr: errors only
        try:  # opened here, not by FFmpeg at the first frame: a bad path is said now, with its name
            self._file = open(self.path, "w+b")  # closed by close()
        except OSError as exc:
            raise OSError(f"{self.path}: cannot write a video file here: {exc.strerror}") from None
        try:
            self._container = av.open(self._file, "w", format="mp4", options={"movflags": "+faststart"})
        except BaseException:
            self._file.close()
            raise
        self._stream: av.VideoStream | None = None

    def _open_stream(self, height: int, width: int) -> None:
        spec = CODECS[self.codec]
        stream = self._container.add_stream(spec.encoder, rate=self.rate, options=dict(spec.options))
        stream.height, stream.width = even_size(height, width)
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        self._stream = stream
        self.size = (height, width)

    def write(self, image: np.ndarray) -> None:
        """One (H, W, 3) uint8 RGB frame."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: a video frame must be (H, W, 3) uint8 RGB, got {image.shape} "
                             f"{image.dtype}")
        if self._stream is None:
            self._open_stream(*image.shape[:2])
        elif image.shape[:2] != self.size:
            raise ValueError(f"{self.path}: frame {self.frames} is {image.shape[0]}x{image.shape[1]}, the video "
                             f"is {self.size[0]}x{self.size[1]}")
        h, w = even_size(*image.shape[:2])
        if (h, w) != image.shape[:2]:
            image = cv2.copyMakeBorder(image, 0, h - image.shape[0], 0, w - image.shape[1], cv2.BORDER_CONSTANT)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        try:
            with encoder_start() if self.frames == 0 else nullcontext():
                packets = self._stream.encode(frame)
            self._container.mux(packets)
        except av.FFmpegError as exc:
            raise OSError(f"{self.path}: writing video frame {self.frames} failed: {exc}") from None
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent). A video given no frame leaves no file."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self._stream is not None:
                container.mux(self._stream.encode(None))
        finally:
            try:
                container.close()
            finally:
                self._file.close()
                if self.frames == 0:
                    self.path.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
