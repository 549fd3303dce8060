"""What the simulated world renders for a policy run: which cameras, at what size, and why.

The policy needs its own cameras at any size (its preprocessing resizes). When
corrections join an existing dataset, the world must render what that dataset
was recorded with, or its episodes would not match; a new dataset gets every
camera of the rig. Without a size on the command line, the size the policy's
training dataset was recorded at keeps the images as the policy saw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recording.dataset import DatasetInfo
from robot.commands import UsageError


@dataclass(frozen=True)
class RenderSettings:
    cameras: tuple[str, ...]  # in the rig's order
    image_size: tuple[int, int]  # (height, width)
    size_from: str  # where the size came from, for the start-up line


def render_settings(policy_cameras: Sequence[str], policy_size: Sequence[int], rig_cameras: Sequence[str], *,
                    requested: tuple[int, int] | None = None, existing: DatasetInfo | None = None,
                    collecting: bool = False, trained_on: DatasetInfo | None = None,
                    dataset: str = "the dataset") -> RenderSettings:
    """Cameras and size to render. `existing`: the dataset corrections join (its cameras and size win);
    `collecting`: episodes go to a new dataset (every rig camera); `trained_on`: the policy's training dataset."""
    wanted = set(policy_cameras)
    size, size_from = requested, "--image-size"
    if existing is not None:
        wanted |= set(existing.cameras)
        sizes = {tuple(s) for s in existing.image_size.values()}
        if size is None and len(sizes) == 1:
            size, size_from = sizes.pop(), f"{dataset}'s recorded size"
        elif size is not None and sizes and sizes != {tuple(size)}:
            shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
            raise UsageError(f"--image-size {size[0]}x{size[1]}: {dataset} was recorded at {shown}; leave "
                             "--image-size out or use a new --dataset folder")
    elif collecting:
        wanted |= set(rig_cameras)
    if size is None and trained_on is not None and trained_on.image_size:
        size, size_from = tuple(next(iter(trained_on.image_size.values()))), "the training dataset's size"
    if size is None:
        size, size_from = tuple(policy_size), "the policy's input size"
    return RenderSettings(tuple(c for c in rig_cameras if c in wanted), (int(size[0]), int(size[1])), size_from)
