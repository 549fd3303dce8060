"""Checkpoint and dataset against the rig, from files alone: refused before a bus opens or a world starts.

Everything compared here is in the rig file, the checkpoint's meta.json and the
dataset's dataset.json, so a mismatch costs no start-up and leaves no arm moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from policies.checkpoint import Checkpoint, CheckpointError
from recording.dataset import Dataset, DatasetError, DatasetInfo
from recording.layout import SIDES
from robot.rig import Rig


def rig_state_names(rig: Rig) -> tuple[str, ...]:
    """The rig's qpos/action names as StateLayout orders them once connected: left follower, then right."""
    followers = sorted(rig.followers, key=lambda a: SIDES.index(a.side) if a.side in SIDES else len(SIDES))
    return tuple(f"{a.side}_{joint}" for a in followers for joint in a.spec.joint_names)


def check_rig(checkpoint: Checkpoint, rig: Rig) -> None:
    """The checkpoint's cameras and joints against the rig's (CheckpointError names both sides)."""
    names = rig_state_names(rig)
    checkpoint.check_compatible([c.name for c in rig.cameras], len(names), len(names),
                                source=f"rig {rig.source}")
    if checkpoint.meta.state_names != names:
        raise CheckpointError(f"checkpoint {checkpoint.path} was trained on joints "
                              f"{', '.join(checkpoint.meta.state_names)}; rig {rig.source} has {', '.join(names)}")


def existing_dataset(path: str | None) -> DatasetInfo | None:
    """The index of a dataset folder that already holds one (corrections join it), None for a new folder."""
    if not path:
        return None
    try:
        return Dataset.open(path).info
    except DatasetError:
        return None  # no folder or no index yet: it is created; an unreadable one is refused when opened


def check_dataset(path: str, existing: DatasetInfo | None, rig: Rig, cameras: Mapping[str, Sequence[int]],
                  compress: bool, task: str = "") -> None:
    """An existing dataset must have been recorded as this run would record: refused now, not after start-up."""
    if existing is None:
        return
    missing = [name for name in existing.cameras if name not in {c.name for c in rig.cameras}]
    if missing:
        raise DatasetError(f"{path} was recorded with cameras [{', '.join(existing.cameras)}]; rig {rig.source} has "
                           f"[{', '.join(c.name for c in rig.cameras)}] (missing: {', '.join(missing)}); use a new "
                           "--dataset folder for this rig")
    planned = DatasetInfo(rig=rig.name, fps=rig.control_hz, cameras=list(cameras),
                          image_size={name: list(size) for name, size in cameras.items()}, compress=compress,
                          task=task)
    Dataset(Path(path), existing).check_matches(planned)
