"""tandem's simulated cameras against gym-aloha's own frames of the same state, and the time per frame.

    python3 bench/render_match.py                     # both tasks, 3 seeds, 480x640 (a minute or two)
    python3 bench/render_match.py --tasks transfer_cube --seeds 1 --size 240x320

For each task and seed the scripted expert drives the world part way into the
episode (arms moved, objects grasped or lifted); at a few points on the way the
state is copied into gym-aloha's environment of the same task, and every camera
is rendered by gym-aloha (dm_control's Physics.render, as ACT and LeRobot's
simulated ALOHA datasets were made) and by tandem in each render style. Printed
per style: the time per frame, the mean absolute difference in grey levels and
the share of pixels with a channel off by more than 20, over all cameras and
states (same size, same machine, one renderer after the other in this process).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from robot.sim.expert import Expert  # noqa: E402
from robot.sim.gym_aloha_frames import OFF_BY, State, frame_difference, gym_aloha_frames  # noqa: E402
from robot.sim.render_style import RENDER_NAMES  # noqa: E402
from robot.sim.tasks import TASK_NAMES  # noqa: E402
from robot.sim.world import CAMERAS, World, gripper_angle_from_normalized  # noqa: E402

SNAPSHOTS = (0, 60, 120, 180)  # control steps into the episode at which the frames are compared


def expert_states(task: str, seeds: list[int]) -> list[State]:
    """(qpos, qvel) at each of SNAPSHOTS of each seed's episode, the scripted expert driving in between."""
    world = World(task, image_size=(48, 64))
    out = []
    for seed in seeds:
        world.reset(seed)
        expert = Expert(world)
        step = 0
        for at in SNAPSHOTS:
            while step < at:
                for side, (q, g) in expert.act().items():
                    world.set_targets(side, q, gripper_angle_from_normalized(g))
                world.step()
                step += 1
            out.append((world.data.qpos.copy(), world.data.qvel.copy()))
    world.close()
    return out


Result = tuple[list[tuple[float, float]], float]  # each frame's (mean |diff|, share off by > OFF_BY); s per frame


def compare(task: str, states: list[State], size: tuple[int, int]) -> dict[str, Result]:
    """Per render style (and gym-aloha): each frame's difference from gym-aloha's, and seconds per frame."""
    reference, reference_s = gym_aloha_frames(task, states, list(CAMERAS), size)
    out = {"gym-aloha": ([], reference_s)}
    for name in RENDER_NAMES:
        world = World(task, image_size=size, render=name)
        world.render("cam_high")  # the renderer's set-up outside the timing
        diffs, spent = [], 0.0
        for (qpos, qvel), theirs in zip(states, reference, strict=True):
            world.data.qpos[:], world.data.qvel[:] = qpos, qvel
            for cam in CAMERAS:
                start = time.perf_counter()
                ours = world.render(cam)
                spent += time.perf_counter() - start
                diffs.append(frame_difference(ours, theirs[cam]))
        world.close()
        out[name] = (diffs, spent / (len(states) * len(CAMERAS)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=TASK_NAMES, default=list(TASK_NAMES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task (0 up)")
    parser.add_argument("--size", default="480x640", help="image size HxW")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    print(f"tandem's frames against gym-aloha's of the same state: {args.seeds} seed(s) x {len(SNAPSHOTS)} states x "
          f"{len(CAMERAS)} cameras per task, {size[0]}x{size[1]}")
    for task in args.tasks:
        results = compare(task, expert_states(task, list(range(args.seeds))), size)
        for name, (diffs, seconds) in results.items():
            if not diffs:
                print(f"  {task:<14} {name:<9} {seconds * 1e3:6.1f} ms per frame (the reference)")
                continue
            mean = np.array([d[0] for d in diffs])
            share = np.array([d[1] for d in diffs])
            print(f"  {task:<14} {name:<9} {seconds * 1e3:6.1f} ms per frame; mean |diff| {mean.mean():.3f} grey "
                  f"levels (worst frame {mean.max():.3f}), pixels off by >{OFF_BY}: {100 * share.mean():.3f}% "
                  f"(worst frame {100 * share.max():.3f}%); identical frames {int(np.sum(mean == 0))}/{len(diffs)}")


if __name__ == "__main__":
    main()
