"""Camera frames handed from the world process to the loop's process through shared memory.

One block per camera: a header (frame index, capture time) and the RGB image.
The writer bumps the index to odd before writing and to even after (a seqlock),
so a reader that overlaps a write sees it and reads again: never a torn frame.
"""

from __future__ import annotations

import struct
import time
from multiprocessing import shared_memory

import numpy as np

from robot.cameras import Frame

_HEADER = struct.Struct("<Qd")  # sequence (2 per frame), capture time


class SharedFrame:
    """A frame slot of a fixed (H, W) size. create=True in the owner, False to attach by name."""

    def __init__(self, name: str, height: int, width: int, *, create: bool = False) -> None:
        self.shape = (height, width, 3)
        size = _HEADER.size + height * width * 3
        self._shm = shared_memory.SharedMemory(name=name, create=create, size=size if create else 0)
        self.name = self._shm.name
        self._owner = create
        self._image = np.ndarray(self.shape, np.uint8, self._shm.buf, offset=_HEADER.size)
        if create:
            _HEADER.pack_into(self._shm.buf, 0, 0, 0.0)

    def write(self, image: np.ndarray, t: float) -> None:
        seq, _ = _HEADER.unpack_from(self._shm.buf, 0)
        _HEADER.pack_into(self._shm.buf, 0, seq + 1, t)
        self._image[:] = image
        _HEADER.pack_into(self._shm.buf, 0, seq + 2, t)

    def read(self, timeout_s: float = 1.0) -> Frame:
        deadline = time.monotonic() + timeout_s
        while True:
            seq, t = _HEADER.unpack_from(self._shm.buf, 0)
            image = self._image.copy()
            again, _ = _HEADER.unpack_from(self._shm.buf, 0)
            if seq == again and seq % 2 == 0:
                return Frame(image, t, seq // 2)
            if time.monotonic() > deadline:
                raise TimeoutError(f"shared frame {self.name}: the writer never finished a frame")

    def close(self) -> None:
        del self._image  # the buffer cannot be released while an array views it
        self._shm.close()
        if self._owner:
            self._shm.unlink()
