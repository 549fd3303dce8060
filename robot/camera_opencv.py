"""OpenCVCamera: a USB (V4L2) camera, or anything else OpenCV's VideoCapture opens, such as a video file.

The settings go to the driver in the order V4L2 needs (pixel format first), and
what the driver granted is read back: a size other than asked is an error, a
lower rate or another format a warning. A frame's time is when it reached us.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import cv2

from robot.camera_reader import READ_TIMEOUT_S, Capture, ReaderCamera

if TYPE_CHECKING:
    from robot.rig import CameraConfig

log = logging.getLogger(__name__)

LIST_HINT = ("list cameras with `v4l2-ctl --list-devices`, and name them in the rig file by their "
             "/dev/v4l/by-id/... paths, which survive replugging")
PERMISSION_HINT = ("permission denied. Add yourself to the video group (sudo usermod -aG video $USER), "
                   "then log out and back in.")


class OpenCVCamera(ReaderCamera):
    stale_hint = ("check the cable and USB bandwidth (MJPG, fewer cameras per USB controller, or a lower fps)")
    no_frame_hint = ("Check the cable; with several cameras on one USB controller, use MJPG or fewer cameras per "
                     "controller.")

    def __init__(self, config: CameraConfig, *, backend: int | None = None, **options: Any) -> None:
        """`options`: the reader's (clock, max_age_s, warmup_frames, open_timeout_s, reconnect_delay_s)."""
        self._source: int | str = int(config.device) if config.device.isdigit() else config.device
        self._backend = backend if backend is not None else _default_backend(self._source)
        super().__init__(config, **options)

    # -- opening -------------------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        """Open, configure and verify the device."""
        self._check_device()
        cap = cv2.VideoCapture(self._source, self._backend)
        try:
            if not cap.isOpened():
                raise self._error(
                    f"OpenCV could not open it ({cv2.videoio_registry.getBackendName(self._backend)} backend). "
                    f"Is another program using it (`fuser {self.config.device}`)? Some cameras create two "
                    "/dev/video nodes and only the first one delivers frames.")
            self._configure(cap)
        except BaseException:
            cap.release()
            raise
        return cap

    def _check_device(self) -> None:
        """Errors a person can act on for a device that is missing or not theirs, before OpenCV's vaguer ones."""
        device = self.config.device
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

    def _configure(self, cap: cv2.VideoCapture) -> None:
        c = self.config
        # FOURCC first: V4L2 picks the sizes and rates on offer per pixel format.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        cap.set(cv2.CAP_PROP_FPS, c.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a deep driver queue would hand out old frames; ignored where unsupported
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_S * 1000)  # V4L2 waits 10 s by default
        # What the driver granted can differ from what was asked, silently.
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width > 0 and height > 0 and (width, height) != (c.width, c.height):  # some report 0 before a frame
            raise self._error(self._size_problem(width, height))
        fps = cap.get(cv2.CAP_PROP_FPS)
        if 0 < fps < c.fps - 0.5:
            log.warning("camera %s (%s): asked for %d fps, the driver granted %.1f fps; frames will repeat in a "
                        "faster loop", self.name, c.device, c.fps, fps)
        granted = _fourcc_text(int(cap.get(cv2.CAP_PROP_FOURCC)))
        if granted is not None and granted != c.fourcc:
            log.warning("camera %s (%s): asked for %s, the driver granted %s; uncompressed formats from several "
                        "cameras can exceed USB bandwidth", self.name, c.device, c.fourcc, granted)

    def _size_problem(self, width: int, height: int) -> str:
        c = self.config
        offers = f" (`v4l2-ctl -d {c.device} --list-formats-ext`)" if self._backend == cv2.CAP_V4L2 else ""
        return (f"asked for {c.width}x{c.height}, the driver granted {width}x{height}. Set width and height in the "
                f"rig file to a size the camera offers{offers}.")

    # -- reading -------------------------------------------------------------------------------------
    def _read(self, cap: cv2.VideoCapture) -> Capture | None:
        try:
            ok, bgr = cap.read()
        except cv2.error:
            ok, bgr = False, None
        t = self._clock()  # when the frame reached us: the loop's notion of "captured"
        if not ok or bgr is None:
            return None
        return Capture(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t)  # a new array: never overwritten once handed out

    def _release(self, cap: cv2.VideoCapture) -> None:
        cap.release()


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
