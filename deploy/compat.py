"""Checkpoint and dataset against the rig, from files alone: refused before a bus opens or a world starts.

Everything compared here is in the rig file, the checkpoint's meta.json and the
dataset's dataset.json, so a mismatch costs no start-up and leaves no arm moved.
A checkpoint trained on cameras with other names (ACT's and gym-aloha's `top`
is tandem's `cam_high`) runs through a camera map: `camera_sources` says which
rig camera feeds each of the policy's, for this check and for the runner alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from policies.checkpoint import Checkpoint, CheckpointMismatchError
from recording.dataset import Dataset, DatasetError, DatasetInfo
from recording.layout import rig_state_names
from robot.commands import UsageError
from robot.rig import Rig


def camera_sources(policy_cameras: Sequence[str], camera_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each of the policy's cameras and the rig camera that feeds it: the map's, else the one of the same name."""
    camera_map = camera_map or {}
    return {name: camera_map.get(name, name) for name in policy_cameras}


def check_camera_map(camera_map: Mapping[str, str], checkpoint: Checkpoint, rig: Rig) -> None:
    """Every name in a --camera-map must be one of the checkpoint's cameras (left) and one of the rig's (right)."""
    policy, ours = checkpoint.meta.camera_names, [c.name for c in rig.cameras]
    for name, source in camera_map.items():
        if name not in policy:
            raise UsageError(f"--camera-map {name}={source}: checkpoint {checkpoint.path} has no camera {name!r} "
                             f"(its cameras: {', '.join(policy) or 'none'})")
        if source not in ours:
            raise UsageError(f"--camera-map {name}={source}: rig {rig.source} has no camera {source!r} (its "
                             f"cameras: {', '.join(ours) or 'none'})")


def check_rig(checkpoint: Checkpoint, rig: Rig, camera_map: Mapping[str, str] | None = None) -> None:
    """The checkpoint's cameras (through `camera_map`) and joints against the rig's (CheckpointError names both
    sides; a map naming a camera neither has is a UsageError)."""
    check_camera_map(camera_map or {}, checkpoint, rig)
    names = rig_state_names(rig)
    if checkpoint.meta.state_names != names:  # before the sizes: a Koch policy on an ALOHA rig is other joints
        raise CheckpointMismatchError(_joints_differ(checkpoint, names, rig))
    ours = [c.name for c in rig.cameras]
    fed = [name for name, source in camera_sources(checkpoint.meta.camera_names, camera_map).items()
           if source in ours]
    try:
        checkpoint.check_compatible([*ours, *(name for name in fed if name not in ours)], len(names), len(names),
                                    source=f"rig {rig.source}")
    except CheckpointMismatchError as exc:
        missing = [name for name in checkpoint.meta.camera_names if name not in fed]
        if not missing:
            raise
        hint = ",".join(f"{name}=<rig camera>" for name in missing)
        raise CheckpointMismatchError(f"{exc}; if the rig has these cameras under other names, map them: "
                                      f"--camera-map {hint} (the rig's cameras: {', '.join(ours) or 'none'})"
                                      ) from None


def _joints_differ(checkpoint: Checkpoint, names: Sequence[str], rig: Rig) -> str:
    """The joints a checkpoint was trained on against the rig's: those only one side has, then both lists."""
    trained = checkpoint.meta.state_names
    only_trained, only_rig = [n for n in trained if n not in names], [n for n in names if n not in trained]
    differ = (f"only the checkpoint has {', '.join(only_trained) or 'none'}; only the rig has "
              f"{', '.join(only_rig) or 'none'}" if only_trained or only_rig else "the same joints in another order")
    return (f"checkpoint {checkpoint.path} was trained on other joints than rig {rig.source} has ({differ}); "
            f"checkpoint: {', '.join(trained)}; rig: {', '.join(names)}")


def existing_dataset(path: str | None) -> DatasetInfo | None:
    """The index of a dataset folder that already holds one (corrections join it), None for a new folder."""
    if not path:
        return None
    try:
        return Dataset.open(path).info
    except DatasetError:
        return None  # no folder or no index yet: it is created; an unreadable one is refused when opened


def check_dataset(path: str, existing: DatasetInfo | None, rig: Rig, cameras: Mapping[str, Sequence[int]],
                  compress: bool, task: str = "", render: str = "") -> None:
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
                          task=task, render=render)
    Dataset(Path(path), existing).check_matches(planned)
