"""What the simulated world renders for a policy run: which cameras, at what size, and why.

The policy needs its own cameras at any size (its preprocessing resizes). When
corrections join an existing dataset, the world must render what that dataset
was recorded with, or its episodes would not match; a new dataset gets every
camera of the rig. Without a size on the command line, the size the policy's
training dataset was recorded at keeps the images as the policy saw them. The
render style (robot/sim/render_style.py) follows the same order: the dataset
corrections join, else what the policy was trained on, else the default; a
style other than the policy's training images' is run, but with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recording.dataset import DatasetInfo
from robot.commands import UsageError
from robot.sim.render_style import DEFAULT_RENDER


@dataclass(frozen=True)
class RenderSettings:
    cameras: tuple[str, ...]  # in the rig's order
    image_size: tuple[int, int]  # (height, width)
    size_from: str  # where the size came from, for the start-up line
    render: str = DEFAULT_RENDER  # render style
    render_from: str = "the default"  # where the style came from
    warning: str = ""  # the style differs from the one the policy's training images were rendered with


def render_settings(policy_cameras: Sequence[str], policy_size: Sequence[int], rig_cameras: Sequence[str], *,
                    requested: tuple[int, int] | None = None, existing: DatasetInfo | None = None,
                    collecting: bool = False, trained_on: DatasetInfo | None = None,
                    dataset: str = "the dataset", requested_render: str | None = None,
                    policy_render: str = "") -> RenderSettings:
    """Cameras, size and style to render. `existing`: the dataset corrections join (its cameras, size and style
    win); `collecting`: episodes go to a new dataset (every rig camera); `trained_on`: the policy's training
    dataset; `policy_render`: the style its checkpoint says it was trained on ("" unknown)."""
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
    trained = policy_render or (trained_on.render if trained_on is not None else "")
    render, render_from = _render_style(requested_render, existing, trained, dataset)
    warning = (f"the policy was trained on images rendered '{trained}', this run renders '{render}' "
               f"({render_from}): expect it to do worse than on its own images" if trained and trained != render
               else "")
    return RenderSettings(tuple(c for c in rig_cameras if c in wanted), (int(size[0]), int(size[1])), size_from,
                          render, render_from, warning)


def _render_style(requested: str | None, existing: DatasetInfo | None, trained: str,
                  dataset: str) -> tuple[str, str]:
    if existing is not None and existing.render:
        if requested is not None and requested != existing.render:
            raise UsageError(f"--render {requested}: {dataset} was rendered '{existing.render}'; leave --render out "
                             "or use a new --dataset folder")
        return existing.render, f"{dataset}'s render"
    if requested is not None:
        return requested, "--render"
    if trained:
        return trained, "the policy's training images"
    return DEFAULT_RENDER, "the default"
