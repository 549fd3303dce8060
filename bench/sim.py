"""The simulated rig's figures: the scripted expert's success rate, its takeovers, and the cost of a step.

    python3 bench/sim.py                       # 50 seeds per task (about 15 minutes on 2 cores)
    python3 bench/sim.py --episodes 10 --tasks transfer_cube
    python3 bench/sim.py --tasks insertion --perturb 0.03   # also the expert with its followers pushed

1. Expert success over seeded episodes, through the whole stack: the expert
   moves the virtual leaders, the real driver reads them over the virtual buses,
   the teleop loop writes the followers, the world steps in lockstep (SimClock).
   With --perturb, the same again with the followers pushed off the expert's
   path while it moves freely (tandem-record --perturb: robot/sim/perturbation.py),
   and, in-process, on how many steps each arm moves freely and how many steps
   the push has to fade from the start of a descent to the lift.
2. Takeover: an episode where something else drives the followers first (the
   arms are sent to random poses for 0.6 s at a random step, dropping whatever is
   held), then the expert takes over from that state. Run in-process on the
   world, as the gate does.
3. Time per simulated control step: physics alone, and physics plus the four
   cameras at 480x640 and at the training size, in-process.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from calibration.connection import connect  # noqa: E402
from deploy.evaluate import wilson  # noqa: E402
from robot.commands import positive_float  # noqa: E402
from robot.rig import load_rig  # noqa: E402
from robot.sim.expert import Expert  # noqa: E402
from robot.sim.perturbation import Perturbation  # noqa: E402
from robot.sim.tasks import EPISODE_STEPS, TASK_NAMES  # noqa: E402
from robot.sim.world import CAMERAS, World, gripper_angle_from_normalized  # noqa: E402
from robot.sim.world_process import SimWorldProcess  # noqa: E402
from teleop.sim_episodes import run_episode  # noqa: E402


def rate_line(name: str, results: list[bool], extra: str = "") -> str:
    k, n = sum(results), len(results)
    lo, hi = wilson(k, n)
    return f"{name:<34} {k:>3}/{n:<3} = {100 * k / n:5.1f}%  (95% CI {100 * lo:.0f}-{100 * hi:.0f}%){extra}"


def stage_counts(rewards: list[int]) -> str:
    return "  [" + ", ".join(f"reward>={k}: {sum(r >= k for r in rewards)}" for k in (1, 2, 3, 4)) + "]"


def expert_through_stack(task: str, episodes: int, perturb: float = 0.0) -> tuple[list[bool], list[int], float]:
    world = SimWorldProcess(load_rig("sim"), task, cameras=False)
    wins, rewards, wall = [], [], 0.0
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        world.set_perturbation(perturb)
        for seed in range(episodes):
            r = run_episode(world, connected, seed, EPISODE_STEPS[task])
            wins.append(r.success)
            rewards.append(r.max_reward)
            wall += r.wall_s
            print(f"  {task} seed {seed}: max reward {r.max_reward}", file=sys.stderr, flush=True)
    return wins, rewards, wall / (episodes * EPISODE_STEPS[task])


def free_steps(task: str, episodes: int) -> tuple[list[int], list[int]]:
    """Per arm and episode: the steps the expert moves freely (pushed), and those from its first descent (no
    longer free) to the lift (free again), over which a push fades."""
    world = World(task)
    expert = Expert(world)
    free, fading = [], []
    for seed in range(episodes):
        world.reset(seed)
        expert.reset()
        seen = {side: [] for side in ("left", "right")}
        for _ in range(EPISODE_STEPS[task]):
            for side, (q, g) in expert.act().items():
                world.set_targets(side, q, gripper_angle_from_normalized(g))
                seen[side].append(expert.free[side])
            world.step()
        for flags in seen.values():
            free.append(sum(flags))
            runs = [(is_free, len(list(steps))) for is_free, steps in itertools.groupby(flags)]
            # the first held stretch between two free ones: from the first descent to the lift
            held = [n for i, (is_free, n) in enumerate(runs) if not is_free and 0 < i < len(runs) - 1]
            fading.extend(held[:1])
    world.close()
    return free, fading


def takeover(task: str, episodes: int) -> list[bool]:
    world = World(task)
    expert = Expert(world)
    rng = np.random.default_rng(1234)
    wins = []
    for seed in range(episodes):
        world.reset(1000 + seed)
        expert.reset()
        perturb_at = int(rng.integers(20, 200))
        for t in range(EPISODE_STEPS[task] + 150):  # the takeover gets the time it lost back
            if perturb_at <= t < perturb_at + 30:  # something else drives: random poses, gripper opens
                if t == perturb_at:
                    pose = {s: world.read_arm(s).position[:6] + rng.uniform(-0.4, 0.4, 6) for s in ("left", "right")}
                for side in ("left", "right"):
                    world.set_targets(side, pose[side], gripper_angle_from_normalized(1.0))
                if t == perturb_at + 29:
                    expert.reset()  # takes over from whatever state this left
                    world.max_reward = 0  # success counts only what happens after the takeover
            else:
                for side, (q, g) in expert.act().items():
                    world.set_targets(side, q, gripper_angle_from_normalized(g))
            world.step()
        wins.append(world.success)
    world.close()
    return wins


def step_cost(task: str, sizes: list[tuple[int, int]], steps: int = 100) -> list[tuple[str, float]]:
    out = []
    world = World(task)
    world.reset(0)
    start = time.perf_counter()
    for _ in range(steps):
        world.step()
    out.append(("physics only", (time.perf_counter() - start) / steps))
    world.close()
    for h, w in sizes:
        world = World(task, image_size=(h, w))
        world.reset(0)
        world.render("cam_high")  # renderer set-up outside the timing
        start = time.perf_counter()
        for _ in range(steps):
            world.step()
            for cam in CAMERAS:
                world.render(cam)
        out.append((f"physics + 4 cameras {h}x{w}", (time.perf_counter() - start) / steps))
        world.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", choices=TASK_NAMES, default=list(TASK_NAMES))
    parser.add_argument("--train-size", default="240x320", help="training image size HxW (default 240x320)")
    parser.add_argument("--perturb", type=positive_float, nargs="+", default=[], metavar="RAD",
                        help="also run the expert with its followers pushed by these spreads (rad; "
                             "tandem-record --perturb)")
    args = parser.parse_args()
    train = tuple(int(v) for v in args.train_size.split("x"))

    print("step cost (in-process, one control step = 10 physics steps of 2 ms):")
    for name, seconds in step_cost(args.tasks[0], [(480, 640), train]):
        print(f"  {name:<32} {seconds * 1e3:7.2f} ms/step  ({1 / seconds:6.1f} steps/s)")
    for task in args.tasks:
        wins, rewards, per_step = expert_through_stack(task, args.episodes)
        print(rate_line(f"{task}: expert, full stack", wins, stage_counts(rewards)))
        print(f"  full stack (4 virtual buses, real driver, teleop loop, no cameras): "
              f"{per_step * 1e3:.2f} ms per step wall")
        print(rate_line(f"{task}: takeover after perturbation", takeover(task, args.episodes)))
        for push in args.perturb:
            wins, rewards, _ = expert_through_stack(task, args.episodes, push)
            print(rate_line(f"{task}: expert, pushed by {push} rad", wins, stage_counts(rewards)))
        if args.perturb:
            free, fading = free_steps(task, args.episodes)
            print(f"  pushed on {min(free)}-{max(free)} of {EPISODE_STEPS[task]} steps per arm", end="")
            if fading:
                keep = Perturbation(0.0).keep  # per step, at the default time constant
                print(f"; from a descent to the lift {min(fading)}-{max(fading)} steps, so "
                      f"{keep ** max(fading):.2f}-{keep ** min(fading):.2f} of a push is left when the part is lifted",
                      end="")
            print()


if __name__ == "__main__":
    main()
