"""Temporal ensembling of action chunks, with a ring of the last chunks instead of ACT's T x T buffer.

A chunk conditioned on the observation of step s holds the actions for steps
s, s+1, ..., s+chunk-1. The action for step t averages every stored chunk that
covers t, weighted exp(-m * i) with i = 0 for the oldest (Zhao et al. 2023):
older predictions are trusted a little more, which smooths the motion. Only
chunks started within the last `chunk` steps can cover t, so a ring of `chunk`
slots holds everything that matters, whatever the episode length.

`ensemble=False` is plain open-loop chunking: the newest chunk that covers t
alone decides (query every k steps, play its actions).
"""

from __future__ import annotations

import numpy as np


class ActionEnsembler:
    def __init__(self, chunk_size: int, action_dim: int, *, m: float = 0.01, ensemble: bool = True) -> None:
        if chunk_size < 1 or action_dim < 1:
            raise ValueError(f"chunk_size and action_dim must be >= 1, got {chunk_size}, {action_dim}")
        if m < 0:
            raise ValueError(f"the ensembling weight m must be >= 0, got {m}")
        self.chunk_size = chunk_size
        self.m = m
        self.ensemble = ensemble
        self._chunks = np.zeros((chunk_size, chunk_size, action_dim), dtype=np.float64)
        self._starts = np.full(chunk_size, np.iinfo(np.int64).min // 2, dtype=np.int64)  # empty slots cover nothing
        self._added = 0

    def clear(self) -> None:
        """Forget every chunk (the policy resumes from a new state after a takeover)."""
        self._starts[:] = np.iinfo(np.int64).min // 2
        self._added = 0

    def add(self, start_step: int, chunk: np.ndarray) -> None:
        """Store a chunk whose first action is for `start_step` (the step its observation was taken at)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.shape != self._chunks.shape[1:]:
            raise ValueError(f"a chunk must have shape {self._chunks.shape[1:]}, got {chunk.shape}")
        slot = self._added % self.chunk_size
        self._chunks[slot] = chunk
        self._starts[slot] = start_step
        self._added += 1

    def action(self, step: int) -> np.ndarray | None:
        """The action for `step`, or None when no stored chunk covers it."""
        offsets = step - self._starts
        live = np.flatnonzero((offsets >= 0) & (offsets < self.chunk_size))
        if live.size == 0:
            return None
        live = live[np.argsort(self._starts[live], kind="stable")]  # oldest first
        predictions = self._chunks[live, offsets[live]]
        if not self.ensemble:
            return predictions[-1].copy()
        weights = np.exp(-self.m * np.arange(live.size))
        return weights @ predictions / weights.sum()
