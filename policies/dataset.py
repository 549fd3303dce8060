"""EpisodeDataset: training samples from a dataset folder, uniform over every frame of every episode.

`frame_weights` gives a weighted sampler what to prefer instead: correction
episodes, and fewer "still" frames, whose next chunk of actions barely moves (the
hold at a demo's end: often most of its frames, teaching little beyond staying put).

A sample is the normalized qpos at step t, the configured cameras' images at t
(decoded if JPEG, resized to the training size, 0..1 floats, CHW), and the
normalized action chunk t .. t+chunk-1 with a padding mask past the episode's
end. qpos and actions of all episodes live in memory; HDF5 files are opened
once per worker process and kept open. With an image cache, each frame is
decoded and resized once into a uint8 .npy file per episode under
<dataset>/.cache/, then memory-mapped: every later read is a copy, not a
JPEG decode.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from policies.config import STILL_THRESHOLD
from policies.normalize import NormStats
from recording.dataset import Dataset
from recording.frames import resize_frame
from recording.layout import joint_layout
from recording.reader import EpisodeFormatError, EpisodeReader


@dataclass(frozen=True)
class EpisodeArrays:
    index: int
    kind: str
    path: Path
    qpos: np.ndarray  # (T, state_dim) float32, raw units
    action: np.ndarray  # (T, action_dim) float32, raw units
    state_names: tuple[str, ...] = ()  # one per qpos column: as recorded, else joint_layout's (ALOHA's for 14)


def load_episodes(dataset: Dataset, indices: Sequence[int]) -> list[EpisodeArrays]:
    """qpos and action of each episode; a NaN or inf, or a width or joint names unlike the first episode's, is an
    EpisodeFormatError naming the file, the dataset and the row."""
    out: list[EpisodeArrays] = []
    for index in indices:
        info = dataset.episode(index)
        path = dataset.path(index)
        with EpisodeReader(path) as reader:
            names = reader.attrs.get("state_names")  # the reader checked there is one per column
            episode = EpisodeArrays(index, info.kind, path, reader.array("/observations/qpos", finite=True)
                                    .astype(np.float32), reader.array("/action", finite=True).astype(np.float32),
                                    tuple(str(n) for n in names) if names is not None else joint_layout(reader.dim))
        for name, attr in (("/observations/qpos", "qpos"), ("/action", "action")):
            have, first = getattr(episode, attr).shape[1], out and getattr(out[0], attr).shape[1]
            if first and have != first:
                raise EpisodeFormatError(path, name, f"has {have} columns, expected {first} as in {out[0].path.name}")
        if out and episode.state_names != out[0].state_names:
            raise EpisodeFormatError(path, "state_names", f"{', '.join(episode.state_names)}, unlike "
                                     f"{out[0].path.name}'s {', '.join(out[0].state_names)}: one policy learns one "
                                     "rig's joints")
        out.append(episode)
    return out


def column_names(episodes: Sequence[EpisodeArrays]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The qpos and action column names of episodes load_episodes read (an action is the followers' targets in
    the qpos layout; an action of another width gets joint_layout's names)."""
    first = episodes[0]
    same = first.action.shape[1] == first.qpos.shape[1]
    return first.state_names, first.state_names if same else joint_layout(first.action.shape[1])


def split_episodes(indices: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation split by episode (never by frame: neighbouring frames are near copies), seeded."""
    order = list(indices)
    np.random.default_rng(seed).shuffle(order)
    n_val = int(round(len(order) * val_fraction)) if len(order) > 1 else 0
    n_val = min(max(n_val, 1 if val_fraction > 0 and len(order) > 1 else 0), len(order) - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


def dataset_digest(dataset: Dataset, indices: Sequence[int]) -> str:
    """Identifies the episodes a policy was trained on: index, kind, length and file size of each."""
    h = hashlib.sha256()
    for index in sorted(indices):
        info = dataset.episode(index)
        h.update(f"{index}:{info.kind}:{info.length}:{dataset.path(index).stat().st_size};".encode())
    return h.hexdigest()[:16]


def still_frames(action: np.ndarray, chunk_size: int, threshold: float = STILL_THRESHOLD) -> np.ndarray:
    """(T,) bool: no joint of the action chunk t .. t+chunk-1 moves more than `threshold` from action[t]."""
    padded = np.concatenate([action, np.repeat(action[-1:], chunk_size - 1, axis=0)])  # the end holds still
    windows = np.lib.stride_tricks.sliding_window_view(padded, chunk_size, axis=0)  # (T, joints, chunk)
    return np.abs(windows - action[:, :, None]).max(axis=(1, 2)) <= threshold


def compute_stats(episodes: Sequence[EpisodeArrays], std_floor: float = 1e-2) -> NormStats:
    return NormStats.from_arrays(np.concatenate([e.qpos for e in episodes]),
                                 np.concatenate([e.action for e in episodes]), std_floor=std_floor)


class EpisodeDataset(TorchDataset):
    def __init__(self, dataset: Dataset, indices: Sequence[int], *, camera_names: Sequence[str],
                 image_size: tuple[int, int], chunk_size: int, stats: NormStats, cache_images: bool = False) -> None:
        self.dataset = dataset
        self.camera_names = tuple(camera_names)
        self.image_size = tuple(image_size)
        self.chunk_size = chunk_size
        self.stats = stats
        self.episodes = load_episodes(dataset, indices)
        if not self.episodes:
            raise ValueError(f"{dataset.root}: no episodes to train on")
        lengths = np.array([len(e.qpos) for e in self.episodes])
        self._starts = np.concatenate([[0], np.cumsum(lengths)])
        self._qpos = [stats.normalize_qpos(e.qpos).astype(np.float32) for e in self.episodes]
        self._action = [stats.normalize_action(e.action).astype(np.float32) for e in self.episodes]
        self._check_cameras()
        self._readers: dict[int, EpisodeReader] = {}
        self._reader_pid = os.getpid()
        self._cache: dict[int, np.ndarray] = {}
        if cache_images and self.camera_names:
            self._cache = {i: self._cached_images(i) for i in range(len(self.episodes))}

    def _check_cameras(self) -> None:
        for e in self.episodes:
            with EpisodeReader(e.path) as reader:
                missing = [c for c in self.camera_names if c not in reader.camera_names]
                if missing:
                    raise EpisodeFormatError(e.path, "/observations/images", f"has no {', '.join(missing)}; the "
                                             f"policy uses {', '.join(self.camera_names)} (--cameras chooses)")

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """Sample number -> (episode position, step)."""
        e = int(np.searchsorted(self._starts, i, side="right") - 1)
        return e, i - int(self._starts[e])

    def frame_weights(self, correction_weight: float = 1.0, still_weight: float = 1.0,
                      still: np.ndarray | None = None) -> np.ndarray:
        """Per-sample weights for a weighted sampler: correction episodes count `correction_weight` times, the
        samples marked in `still` (`still_mask`) `still_weight` times."""
        weights = np.concatenate([np.full(len(e.qpos), correction_weight if e.kind == "correction" else 1.0)
                                  for e in self.episodes])
        if still is not None:
            weights[still] *= still_weight
        return weights

    def still_mask(self, threshold: float = STILL_THRESHOLD) -> np.ndarray:
        """(samples,) bool: the demos' still frames (`still_frames`). A correction's still frames are not marked:
        an operator's hold there may be the lesson, and a correction often ends mid-motion, where the shortened
        last chunks would look still."""
        if self.chunk_size < 2:
            raise ValueError("still frames need a chunk of at least 2 actions (chunk_size is 1: every frame would "
                             "count as still)")
        return np.concatenate([still_frames(e.action, self.chunk_size, threshold) if e.kind == "demo"
                               else np.zeros(len(e.action), bool) for e in self.episodes])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e, t = self.locate(int(i))
        actions = self._action[e]
        chunk = actions[t:t + self.chunk_size]
        pad = self.chunk_size - len(chunk)
        is_pad = np.zeros(self.chunk_size, dtype=bool)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, actions.shape[1]), np.float32)])
            is_pad[-pad:] = True
        sample = {"qpos": torch.from_numpy(self._qpos[e][t]), "action": torch.from_numpy(chunk),
                  "is_pad": torch.from_numpy(is_pad)}
        if self.camera_names:
            if self._cache:
                images = np.array(self._cache[e][t])  # a copy: the memory-mapped cache is read-only
            else:
                images = np.stack([self._image(e, c, t) for c in self.camera_names])
            sample["images"] = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        return sample

    # -- images -------------------------------------------------------------------------------------
    def _reader(self, e: int) -> EpisodeReader:
        if self._reader_pid != os.getpid():  # a DataLoader worker: h5py handles do not survive fork
            self._readers, self._reader_pid = {}, os.getpid()
        if e not in self._readers:
            self._readers[e] = EpisodeReader(self.episodes[e].path)
        return self._readers[e]

    def _image(self, e: int, cam: str, t: int) -> np.ndarray:
        return resize_frame(self._reader(e).image(cam, t), self.image_size)

    def _cached_images(self, e: int) -> np.ndarray:
        """(T, n_cams, H, W, 3) uint8, memory-mapped from the cache file, built on first use."""
        episode = self.episodes[e]
        h, w = self.image_size
        stamp = f"{episode.path.stat().st_size}-{int(episode.path.stat().st_mtime)}"
        folder = self.dataset.root / ".cache" / f"{h}x{w}-{'-'.join(self.camera_names)}"
        path = folder / f"episode_{episode.index}-{stamp}.npy"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            frames = np.stack([np.stack([self._image(e, c, t) for c in self.camera_names])
                               for t in range(len(episode.qpos))])
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:  # np.save(path) would append its own ".npy" to the temporary name
                np.save(f, frames)
            os.replace(tmp, path)
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers = {}

    def __getstate__(self) -> dict:  # workers open their own files
        state = self.__dict__.copy()
        state["_readers"] = {}
        return state
