"""Camera frames into a video file: several cameras side by side, as inspect and deploy's rollout videos write them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def side_by_side(images: Sequence[np.ndarray], height: int) -> np.ndarray:
    """RGB frames scaled to one height and joined left to right, as a BGR frame for cv2.VideoWriter."""
    tiles = [cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height),
                        interpolation=cv2.INTER_AREA) for image in images]
    return cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR)


def open_video(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV could not open an MP4 writer")
    return writer
