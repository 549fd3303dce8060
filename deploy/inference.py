"""A checkpoint's policy as a chunk predictor, run in the control loop (sync) or beside it (async).

`ChunkPredictor` turns an observation (joint state in the rig's units, the
newest frame of each camera) into an action chunk in the rig's units: it
resizes frames to the training size as the episode loader does, normalizes
with the checkpoint's statistics and un-normalizes the prediction.

`SyncInference` runs the network inside the step that asks (every k steps).
`AsyncInference` runs it on its own thread on the newest observation posted:
the loop posts and collects, never waits; each chunk comes back tagged with
the step its observation was taken at, so the ensembler aligns it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from deploy.compat import camera_sources
from policies.checkpoint import Checkpoint
from recording.frames import resize_frame


@dataclass(frozen=True)
class Observation:
    step: int  # control step the observation was taken at: the first action of its chunk is for this step
    qpos: np.ndarray  # (state_dim,) rig units (rad, grippers 0..1)
    images: np.ndarray | None  # (n_cams, H, W, 3) uint8 at the policy's image size; None for a state-only policy


def inference_threads() -> int:
    """All cores but one: the control loop, the bus I/O and the camera readers keep a core."""
    return max(1, (os.cpu_count() or 2) - 1)


class ChunkPredictor:
    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "cpu", *,
                 camera_map: Mapping[str, str] | None = None) -> None:
        """`camera_map`: policy camera -> the rig camera that feeds it, where their names differ (--camera-map)."""
        self.checkpoint = checkpoint
        self.policy = checkpoint.policy.to(device).eval()
        self.config = checkpoint.config
        self.stats = checkpoint.stats
        self.device = torch.device(device)
        self.camera_names = self.config.camera_names
        self.camera_sources = camera_sources(self.camera_names, camera_map)  # policy camera -> rig camera
        self.chunk_size = self.config.chunk_size

    def images(self, frames: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The policy's cameras, in its order, resized to its image size (INTER_AREA, as in training)."""
        if not self.camera_names:
            return None
        h, w = self.config.image_size
        out = np.empty((len(self.camera_names), h, w, 3), dtype=np.uint8)
        for i, name in enumerate(self.camera_names):
            out[i] = resize_frame(frames[name], (h, w))
        return out

    def inputs(self, obs: Observation) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The policy's inputs for one observation: normalized qpos (1, D) and images (1, cams, 3, H, W) in 0..1."""
        qpos = torch.as_tensor(self.stats.normalize_qpos(obs.qpos.astype(np.float32)), device=self.device)[None]
        images = None
        if obs.images is not None:
            images = torch.as_tensor(obs.images, device=self.device).permute(0, 3, 1, 2)[None].float().div_(255.0)
        return qpos, images

    @torch.inference_mode()
    def __call__(self, obs: Observation) -> np.ndarray:
        """(chunk_size, action_dim) float64 actions in rig units."""
        chunk = self.policy.predict(*self.inputs(obs))[0].float().cpu().numpy()
        return self.stats.unnormalize_action(chunk).astype(np.float64)


class SyncInference:
    """Inference inside the step: a new chunk when `every` steps have passed since the last one."""

    mode = "sync"

    def __init__(self, predictor: ChunkPredictor, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"query every k >= 1 steps, got {every}")
        self.predictor = predictor
        self.every = every
        self.latencies: list[float] = []
        self._last: int | None = None
        self._ready: list[tuple[int, np.ndarray]] = []

    def wants(self, step: int) -> bool:
        return self._last is None or step - self._last >= self.every

    def post(self, obs: Observation) -> None:
        start = time.perf_counter()
        self._ready.append((obs.step, self.predictor(obs)))
        self.latencies.append(time.perf_counter() - start)
        self._last = obs.step

    def collect(self) -> list[tuple[int, np.ndarray]]:
        ready, self._ready = self._ready, []
        return ready

    def restart(self) -> None:
        """Query at the next step whatever the schedule (the policy resumes after a takeover)."""
        self._last = None
        self._ready = []

    def close(self) -> None:
        pass


class AsyncInference:
    """Inference on its own thread, always on the newest posted observation; the loop never waits for it."""

    mode = "async"

    def __init__(self, predictor: ChunkPredictor) -> None:
        self.predictor = predictor
        self.latencies: list[float] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: Observation | None = None
        self._ready: list[tuple[int, np.ndarray]] = []
        self._generation = 0  # bumped by restart(): chunks from before it are dropped
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def wants(self, step: int) -> bool:
        return True  # the newest observation replaces an older one still waiting

    def post(self, obs: Observation) -> None:
        with self._lock:
            self._pending = obs
            self._wake.notify()

    def collect(self) -> list[tuple[int, np.ndarray]]:
        if self.error is not None:
            raise RuntimeError(f"policy inference failed: {self.error}") from self.error
        with self._lock:
            ready, self._ready = self._ready, []
        return ready

    def restart(self) -> None:
        with self._lock:
            self._pending = None
            self._ready = []
            self._generation += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                obs, self._pending, generation = self._pending, None, self._generation
            start = time.perf_counter()
            try:
                chunk = self.predictor(obs)
            except BaseException as exc:  # raised in the loop's thread by collect()
                self.error = exc
                return
            with self._lock:
                self.latencies.append(time.perf_counter() - start)
                if generation == self._generation:
                    self._ready.append((obs.step, chunk))
