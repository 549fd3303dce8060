"""Episode files built the way the original ALOHA and ACT scripts build them (for reader and loader tests)."""

from __future__ import annotations

import warnings

import cv2
import h5py
import numpy as np

CAMS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
H, W = 48, 64


def scene(step: int, cam_index: int) -> np.ndarray:
    """A smooth picture (JPEG-friendly) that differs per step and camera."""
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 4 + step * 3) % 256
    g = (y * 5 + cam_index * 40) % 256
    b = np.full_like(x, (step * 7) % 256)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def aloha_raw(path, steps=10, cams=CAMS, effort=True):
    """As record_episodes.py (COMPRESS=False) and ACT's record_sim_episodes.py build a file."""
    with h5py.File(path, "w", rdcc_nbytes=1024 ** 2 * 2) as root, warnings.catch_warnings():
        warnings.simplefilter("ignore", h5py.h5py_warnings.H5pyDeprecationWarning)  # they pass no dtype
        root.attrs["sim"] = False
        obs = root.create_group("observations")
        image = obs.create_group("images")
        for cam in cams:
            image.create_dataset(cam, (steps, H, W, 3), dtype="uint8", chunks=(1, H, W, 3))
        obs.create_dataset("qpos", (steps, 14))
        obs.create_dataset("qvel", (steps, 14))
        if effort:
            obs.create_dataset("effort", (steps, 14))
        root.create_dataset("action", (steps, 14))
        for i in range(steps):
            for k, cam in enumerate(cams):
                root[f"/observations/images/{cam}"][i] = scene(i, k)
        root["/observations/qpos"][...] = np.arange(steps * 14).reshape(steps, 14)
        root["/action"][...] = np.arange(steps * 14).reshape(steps, 14) + 1


def aloha_compressed(path, steps=10):
    """As record_episodes.py with COMPRESS=True: JPEG rows padded to the longest, and compress_len."""
    encoded = {cam: [cv2.imencode(".jpg", scene(i, k), [cv2.IMWRITE_JPEG_QUALITY, 50])[1] for i in range(steps)]
               for k, cam in enumerate(CAMS)}
    padded_size = max(len(e) for frames in encoded.values() for e in frames)
    with h5py.File(path, "w", rdcc_nbytes=1024 ** 2 * 2) as root, warnings.catch_warnings():
        warnings.simplefilter("ignore", h5py.h5py_warnings.H5pyDeprecationWarning)  # they pass no dtype
        root.attrs["sim"] = False
        root.attrs["compress"] = True
        obs = root.create_group("observations")
        image = obs.create_group("images")
        for cam in CAMS:
            image.create_dataset(cam, (steps, padded_size), dtype="uint8", chunks=(1, padded_size))
        for name in ("qpos", "qvel", "effort"):
            obs.create_dataset(name, (steps, 14))
        root.create_dataset("action", (steps, 14))
        root.create_dataset("compress_len", (len(CAMS), steps))
        for k, cam in enumerate(CAMS):
            for i, data in enumerate(encoded[cam]):
                row = np.zeros(padded_size, dtype="uint8")
                row[:len(data)] = data.ravel()
                root[f"/observations/images/{cam}"][i] = row
                root["/compress_len"][k, i] = len(data)
