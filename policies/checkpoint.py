"""A checkpoint is a self-contained directory; the directory alone is enough to run the policy.

  model.safetensors  weights
  config.json        PolicyConfig.to_dict()
  stats.json         NormStats.to_dict()
  meta.json          cameras, image size, state/action layout, dataset digest, step, extra
  optimizer.pt       optimizer and scheduler state for resuming (optional)

It is written into a temporary directory next to the final one and renamed into place, so a crash leaves either
the previous checkpoint or the new one under the final name, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from policies.config import PolicyConfig
from policies.normalize import NormStats
from policies.registry import make_policy
from recording.layout import joint_layout

FORMAT = "tandem-policy"
FORMAT_VERSION = 1
MODEL_FILE, CONFIG_FILE, STATS_FILE, META_FILE, OPTIMIZER_FILE = (
    "model.safetensors", "config.json", "stats.json", "meta.json", "optimizer.pt")
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, STATS_FILE, META_FILE)


class CheckpointError(RuntimeError):
    pass


class CheckpointMismatchError(CheckpointError):
    """The checkpoint was trained for other cameras or another state/action size than it is asked to run with."""


@dataclass(frozen=True)
class CheckpointMeta:
    policy: str
    camera_names: tuple[str, ...]
    image_size: tuple[int, int]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    dataset_digest: str
    step: int
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "policy": self.policy,
                "camera_names": list(self.camera_names), "image_size": list(self.image_size),
                "state_names": list(self.state_names), "action_names": list(self.action_names),
                "dataset_digest": self.dataset_digest, "step": self.step, "created": self.created,
                "extra": self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> CheckpointMeta:
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{source} is not a {FORMAT} v{FORMAT_VERSION} meta file (format "
                                  f"{data.get('format')!r}, version {data.get('format_version')!r})")
        try:
            return cls(policy=data["policy"], camera_names=tuple(data["camera_names"]),
                       image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                       state_names=tuple(data["state_names"]), action_names=tuple(data["action_names"]),
                       dataset_digest=str(data["dataset_digest"]), step=int(data["step"]),
                       created=str(data.get("created", "")), extra=dict(data.get("extra") or {}))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f"{source}: missing or malformed field ({e!r})") from e


@dataclass
class Checkpoint:
    path: Path
    policy: nn.Module  # in eval mode
    config: PolicyConfig
    stats: NormStats
    meta: CheckpointMeta
    note: str | None = None  # set when a training run folder was given and its best/ or last/ was taken

    def optimizer_state(self) -> dict[str, Any] | None:
        """{"optimizer": ..., "scheduler": ... or None} for resuming; None when the checkpoint has none."""
        path = self.path / OPTIMIZER_FILE
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch.load raises many types
            raise CheckpointError(f"could not read optimizer state {path}: {e}; resume without it "
                                  f"or from another checkpoint") from e

    def check_compatible(self, camera_names: Sequence[str], state_dim: int, action_dim: int,
                         source: str = "the rig") -> None:
        check_compatible(self.meta, camera_names, state_dim, action_dim, source=source, checkpoint=str(self.path))


def resolve_checkpoint_dir(directory: str | Path) -> tuple[Path, str | None]:
    """The checkpoint folder to load and a note saying why, when it is not `directory` itself.

    tandem-train writes a run folder (best/, last/, metrics.jsonl); where a checkpoint is expected, such a folder
    stands for its best/ (the lowest validation loss), else its last/.
    """
    path = Path(directory)
    if not path.is_dir() or (path / MODEL_FILE).exists():
        return path, None
    for name, why in (("best", "the lowest validation loss"), ("last", "the latest step; the run has no best/")):
        if (path / name / MODEL_FILE).is_file():
            return path / name, f"{path} is a training run: using {path / name} ({why})"
    return path, None


def read_meta(directory: str | Path) -> CheckpointMeta:
    """A checkpoint's meta.json alone (its step, cameras, extra), without loading the weights."""
    path = Path(directory)
    return CheckpointMeta.from_dict(_read_json(path / META_FILE), source=str(path / META_FILE))


def save_checkpoint(directory: str | Path, policy: nn.Module, config: PolicyConfig, stats: NormStats, *,
                    step: int, dataset_digest: str, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any | None = None, extra: dict[str, Any] | None = None,
                    state_names: Sequence[str] | None = None, action_names: Sequence[str] | None = None) -> Path:
    """Write the checkpoint directory (replacing one already there) and return its path.

    `state_names`/`action_names`: the dataset's columns (its episodes' state_names), which deploy compares with
    the rig's joints; unset: joint_layout's, ALOHA's for 14 columns (datasets recorded without names)."""
    final = Path(directory)
    policy_config = getattr(policy, "config", config)
    if policy_config != config:
        raise ValueError(f"the config passed to save_checkpoint differs from the policy's own config: "
                         f"{_config_diff(policy_config, config)}; pass policy.config")
    state_names = tuple(state_names) if state_names is not None else joint_layout(config.state_dim)
    action_names = tuple(action_names) if action_names is not None else joint_layout(config.action_dim)
    for what, names, dim in (("state", state_names, config.state_dim), ("action", action_names, config.action_dim)):
        if len(names) != dim:
            raise ValueError(f"{len(names)} {what} names ({', '.join(names)}) for the policy's {what} dimension {dim}")
    meta = CheckpointMeta(policy=config.policy, camera_names=config.camera_names, image_size=config.image_size,
                          state_names=state_names, action_names=action_names,
                          dataset_digest=dataset_digest, step=step,
                          created=datetime.now(UTC).isoformat(timespec="seconds"), extra=dict(extra or {}))
    texts = {CONFIG_FILE: config.to_dict(), STATS_FILE: stats.to_dict(), META_FILE: meta.to_dict()}
    try:
        encoded = {name: json.dumps(value, indent=2) + "\n" for name, value in texts.items()}
    except TypeError as e:
        raise ValueError(f"checkpoint extra must be JSON-serializable: {e}") from e

    # Fresh contiguous CPU copies: safetensors refuses views and tensors sharing storage (tied weights).
    weights = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
               for k, v in policy.state_dict().items()}
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # under the umask, unlike mkdtemp's 0700
    try:
        _write(tmp / MODEL_FILE, safetensors.torch.save(weights, metadata={"format": "pt"}))
        for name, text in encoded.items():
            _write(tmp / name, text.encode())
        if optimizer is not None or scheduler is not None:  # only for resuming: best/ is saved without
            with open(tmp / OPTIMIZER_FILE, "wb") as f:
                torch.save({"optimizer": optimizer.state_dict() if optimizer is not None else None,
                            "scheduler": scheduler.state_dict() if scheduler is not None else None}, f)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """The policy (eval mode, on `device`), its config, normalization stats and meta; optimizer state on demand.

    A training run folder is accepted too: its best/ (else last/) is loaded and `Checkpoint.note` says so. A LeRobot
    ACT folder (lerobot-train's pretrained_model, or its run folder) runs through policies/lerobot_act.py.
    """
    from policies.lerobot_act import lerobot_policy_type, load_lerobot_act  # here: it imports this module

    if lerobot_policy_type(directory) is not None:
        return load_lerobot_act(directory, device)
    path, note = resolve_checkpoint_dir(directory)
    if not path.is_dir():
        leftovers = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []
        hint = f"; a save was interrupted while replacing it: the previous one is at {leftovers[-1]}" \
            if leftovers else ""
        raise CheckpointError(f"no checkpoint directory at {path}{hint}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if len(missing) == len(REQUIRED_FILES):
        raise CheckpointError(f"{path} is not a checkpoint (no {', '.join(REQUIRED_FILES)}) and not a training "
                              f"run (no best/ or last/ checkpoint in it); pass a checkpoint folder, e.g. OUT/best "
                              "of tandem-train, or the run folder OUT")
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)} "
                              f"(a checkpoint needs {', '.join(REQUIRED_FILES)})")
    try:
        config = PolicyConfig.from_dict(_read_json(path / CONFIG_FILE), source=str(path / CONFIG_FILE))
        stats = NormStats.from_dict(_read_json(path / STATS_FILE), source=str(path / STATS_FILE))
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    meta = CheckpointMeta.from_dict(_read_json(path / META_FILE), source=str(path / META_FILE))
    if meta.camera_names != config.camera_names or meta.policy != config.policy:
        raise CheckpointError(f"checkpoint {path}: {META_FILE} (policy {meta.policy}, cameras "
                              f"{list(meta.camera_names)}) disagrees with {CONFIG_FILE} (policy {config.policy}, "
                              f"cameras {list(config.camera_names)}); was one of them edited by hand?")
    try:
        weights = safetensors.torch.load_file(str(path / MODEL_FILE), device="cpu")
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise CheckpointError(f"could not read weights {path / MODEL_FILE}: {e}") from e
    bad = [name for name, tensor in weights.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(f"weights {path / MODEL_FILE} hold NaN or infinite values in {len(bad)} tensor(s): "
                              f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; the training run that wrote "
                              "them diverged: use an earlier checkpoint")
    policy = make_policy(config)
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights {path / MODEL_FILE} do not fit the {config.policy} policy described by "
                              f"{path / CONFIG_FILE}: {e}") from e
    policy.to(device).eval()
    checkpoint = Checkpoint(path, policy, config, stats, meta, note)
    check_neutral_output(checkpoint, device)
    return checkpoint


@torch.inference_mode()
def check_neutral_output(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> None:
    """One forward pass on a neutral observation (the mean state, mid-grey images) must give finite actions:
    finite weights and statistics can still overflow together, and such a policy must never reach a motor."""
    config, stats = checkpoint.config, checkpoint.stats
    qpos = torch.as_tensor(stats.normalize_qpos(stats.qpos_mean.copy()), device=device)[None]
    images = None
    if config.camera_names:
        h, w = config.image_size
        images = torch.full((1, len(config.camera_names), 3, h, w), 0.5, device=device)
    chunk = stats.unnormalize_action(checkpoint.policy.predict(qpos, images)[0].float().cpu().numpy())
    if not np.all(np.isfinite(chunk)):
        raise CheckpointError(f"checkpoint {checkpoint.path}: a forward pass on a neutral observation gives "
                              "non-finite actions; the weights or the statistics in "
                              f"{checkpoint.path / STATS_FILE} are broken: use an earlier checkpoint")


def check_compatible(meta: CheckpointMeta, camera_names: Sequence[str], state_dim: int, action_dim: int, *,
                     source: str = "the rig", checkpoint: str = "the checkpoint") -> None:
    """Raise CheckpointMismatchError saying every difference. Extra cameras on `source` are fine (left unused)."""
    problems = []
    absent = [name for name in meta.camera_names if name not in camera_names]
    if absent:
        problems.append(f"was trained with cameras [{', '.join(meta.camera_names)}]; {source} has "
                        f"[{', '.join(camera_names)}] (missing: {', '.join(absent)})")
    for what, trained, given in (("state", len(meta.state_names), state_dim),
                                 ("action", len(meta.action_names), action_dim)):
        if trained != given:
            problems.append(f"was trained with {what} dimension {trained}; {source} has {given}")
    if problems:
        raise CheckpointMismatchError(f"checkpoint {checkpoint} " + "; it ".join(problems))


def _config_diff(a: PolicyConfig, b: PolicyConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}: {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db[k])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"could not read {path}: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename tmp to final. A directory cannot be renamed over a non-empty one, so an old checkpoint is moved
    aside first and deleted after; in between, the old and the new one are both complete on disk."""
    if final.exists() and not final.is_dir():
        raise CheckpointError(f"cannot write checkpoint to {final}: a file (not a directory) is there")
    if not final.exists():
        os.rename(tmp, final)
    else:
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old, final)  # put the previous checkpoint back under its name
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(final.parent)
