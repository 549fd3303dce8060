"""The one resize of camera frames to a policy's input size (kept apart from video.py, which loads PyAV)."""

from __future__ import annotations

import cv2
import numpy as np


def resize_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (H, W) by INTER_AREA, each pixel the mean of those it covers: training, evaluation and the
    LeRobot export all resize through here, so a policy runs on frames made as its training frames were."""
    h, w = size
    return image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
