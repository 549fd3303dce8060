"""Normalization statistics of qpos and action, computed from the dataset and saved with every checkpoint.

The policy sees (x - mean) / std. The std is floored (default 1e-2) so a joint that never moved in the data
does not turn sensor noise into huge inputs, nor small predicted values into huge commands.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

ArrayLike = TypeVar("ArrayLike", np.ndarray, Tensor)


@dataclass(frozen=True)
class NormStats:
    qpos_mean: np.ndarray
    qpos_std: np.ndarray
    qpos_min: np.ndarray
    qpos_max: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    action_min: np.ndarray
    action_max: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            value = np.asarray(getattr(self, f.name), dtype=np.float32)
            if value.ndim != 1 or not np.all(np.isfinite(value)):
                raise ValueError(f"normalization stats: {f.name} must be a 1-D finite vector, got {value!r}")
            object.__setattr__(self, f.name, value)
        for prefix in ("qpos", "action"):
            sizes = {len(getattr(self, f"{prefix}_{k}")) for k in ("mean", "std", "min", "max")}
            if len(sizes) != 1:
                raise ValueError(f"normalization stats: {prefix} mean/std/min/max differ in length: {sorted(sizes)}")
            if np.any(getattr(self, f"{prefix}_std") <= 0):
                raise ValueError(f"normalization stats: {prefix}_std must be > 0, got {getattr(self, f'{prefix}_std')}")

    @classmethod
    def from_arrays(cls, qpos: np.ndarray, action: np.ndarray, std_floor: float = 1e-2) -> NormStats:
        """Statistics over every step of every episode: qpos and action as (N, dim) arrays."""
        values: dict[str, np.ndarray] = {}
        for name, data in (("qpos", qpos), ("action", action)):
            data = np.asarray(data, dtype=np.float64)
            if data.ndim != 2 or data.shape[0] == 0:
                raise ValueError(f"{name} must be a non-empty (steps, dim) array, got shape {data.shape}")
            if not np.all(np.isfinite(data)):
                rows = np.unique(np.where(~np.isfinite(data))[0])
                raise ValueError(f"{name} contains NaN or inf, first at rows {rows[:10].tolist()}")
            values[f"{name}_mean"] = data.mean(axis=0)
            values[f"{name}_std"] = np.maximum(data.std(axis=0), std_floor)
            values[f"{name}_min"] = data.min(axis=0)
            values[f"{name}_max"] = data.max(axis=0)
        return cls(**values)

    def normalize_qpos(self, qpos: ArrayLike) -> ArrayLike:
        return (qpos - _like(self.qpos_mean, qpos)) / _like(self.qpos_std, qpos)

    def unnormalize_qpos(self, qpos: ArrayLike) -> ArrayLike:
        return qpos * _like(self.qpos_std, qpos) + _like(self.qpos_mean, qpos)

    def normalize_action(self, action: ArrayLike) -> ArrayLike:
        return (action - _like(self.action_mean, action)) / _like(self.action_std, action)

    def unnormalize_action(self, action: ArrayLike) -> ArrayLike:
        return action * _like(self.action_std, action) + _like(self.action_mean, action)

    def to_dict(self) -> dict[str, list[float]]:
        return {f.name: getattr(self, f.name).tolist() for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "normalization stats") -> NormStats:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(f"{source}: missing field(s) {missing or 'none'}, unknown field(s) {unknown or 'none'}; "
                             f"expected exactly {', '.join(names)}")
        return cls(**{n: np.asarray(data[n], dtype=np.float32) for n in names})


def _like(stat: np.ndarray, x: ArrayLike) -> ArrayLike:
    """The statistic as the same kind of array as x (numpy, or a torch tensor on x's device and dtype)."""
    if isinstance(x, Tensor):
        return torch.as_tensor(stat, device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    return stat.astype(x.dtype, copy=False) if np.issubdtype(np.asarray(x).dtype, np.floating) else stat
