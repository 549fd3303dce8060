"""What the scripted insertion demos teach: stage timing, grasps relative to the parts, and what the camera resolves.

    python3 bench/insertion_demos.py                  # seeds 0..49, the demo seeds of bench/sim_results.py (~1 min)
    python3 bench/insertion_demos.py --seeds 5 --first-seed 50 --check-projection --through-stack 2

The scripted expert (robot/sim/expert.py) drives the world in-process, physics only, as bench/sim.py's takeover
runs do. The recorded demos go through the leaders, virtual buses and teleop loop: same plan, reached some 15 steps
later, and what follows the first success differs in detail (--through-stack N runs N seeds that way too, ~5 s each).
Per seed it prints the success, the step each reward stage (robot/sim/tasks.py) is first reached and, per arm:

  close   the step the expert commands its gripper shut on its part
  lift    the step the part is gripped (fingers touch it, opening under the expert's HOLDING_BELOW) and off the table
  offset  the part's centre in the gripper's frame at `lift`, mm: x along the fingers, y along the jaws' closing
          axis, z the third axis (the expert aims at a point 3 cm from the centre along the part's long axis)
  yaw     the part's heading at `lift` (deg; every seed starts at 0) and relative to the gripper's heading
  pushed  how far (mm, on the table) the part moved from its settled start until the close command
  moved   how far it moved between the close command and `lift`: the jaws shoving it while they close
  along   where on the part the grasp point is at `lift`: mm along its long axis from its centre
  slip    how far the grasp point moved on the part between `lift` and the start of the expert's "insert" phase (mm),
          and how far the part turned in the gripper (deg)

and what follows the first success: the step the peg is let go, and how many steps of the episode come after it.
The summary adds the spread of each quantity across seeds, where the parts start in pixels of the policy's top
camera (the `cpu` preset's 120x160 cam_high, projected with the camera's pose and fovy from the model), how many
pixels separate the start positions of different seeds, and how much of the commanded joints' spread across seeds,
window by window, a linear function of the parts' start positions does not explain (behaviour the policy would have
to infer from something other than where the parts are).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robot.commands import non_negative_int, positive_int  # noqa: E402
from robot.sim.expert import CLOSED, HOLDING_BELOW, Contacts, Expert, quat_yaw  # noqa: E402
from robot.sim.tasks import EPISODE_STEPS, REWARD_STAGES  # noqa: E402
from robot.sim.world import SIDES, World, gripper_angle_from_normalized, gripper_normalized_from_angle  # noqa: E402

TASK = "insertion"
PARTS = {"right": ("peg", ("red_peg",)), "left": ("socket", Expert.SOCKET_WALLS)}  # arm -> its part, its geoms
TOP_CAMERA, POLICY_IMAGE = "top", (120, 160)  # cam_high at the `cpu` preset's input size (H, W)
SETTLED_STEP = 10  # the parts, dropped from 5 cm at reset, rest on the table by then (0.2 s)
WINDOW = 40  # steps per window of the action-spread table
LOOSE = 0.45  # right gripper opening over which the jaws no longer squeeze the peg (they hold it at ~0.35)


@dataclass
class Grasp:
    """One arm's first grasp of its part; None where the episode never got there."""
    close: int | None = None
    lift: int | None = None
    offset: np.ndarray | None = None  # mm, the part's centre in the gripper's frame
    along: float | None = None  # mm, the grasp point along the part's long axis from its centre
    yaw: float | None = None  # deg, world
    rel_yaw: float | None = None  # deg, part axis against the fingers' heading, wrapped to [-90, 90)
    pushed: float | None = None  # mm
    moved: float | None = None  # mm
    slip: float | None = None  # mm, the grasp point's move on the part between lift and insert
    turn: float | None = None  # deg, the part's turn in the gripper between lift and insert
    regrasps: int = 0  # close commands after the first one, before the first success
    after_success: int = 0  # close commands after the first success (picking a part up again)


@dataclass
class Episode:
    seed: int
    success: bool
    max_reward: int
    stage_steps: list[int | None]  # first step whose reward reaches stage 1..4
    grasps: dict[str, Grasp]
    first_success: int | None
    peg_released: int | None  # first step after the first success at which the right gripper is commanded open
    final_reward: int
    starts: dict[str, np.ndarray]  # part -> settled centre (x, y, z) in the world
    phases: list[str] = field(repr=False)  # the expert's phase at each step
    actions: np.ndarray = field(repr=False)  # (T, 14) commanded joints and grippers, [left 7, right 7]


def wrap_deg(angle: float, period: float = 180.0) -> float:
    return float((angle + period / 2) % period - period / 2)


def rotation_of(quat: np.ndarray) -> np.ndarray:
    out = np.zeros(9)
    mujoco.mju_quat2Mat(out, quat)
    return out.reshape(3, 3)


@dataclass(frozen=True)
class GripPose:
    """How a gripper holds a part now."""
    offset: np.ndarray  # mm, the part's centre in the gripper's frame (x fingers, y jaw axis)
    on_part: np.ndarray  # mm, the grasp point between the pads in the part's frame (x its long axis)
    relative: np.ndarray  # the part's rotation in the gripper's frame
    heading: float  # deg, the fingers' direction in the horizontal plane


def grip_pose(world: World, expert: Expert, side: str, pose: np.ndarray) -> GripPose:
    point, gripper = expert.ik[side].pose(world.data.qpos)
    part = rotation_of(pose[3:])
    fingers = gripper[:, 0]
    return GripPose(1000 * gripper.T @ (pose[:3] - point), 1000 * part.T @ (point - pose[:3]), gripper.T @ part,
                    float(np.degrees(np.arctan2(fingers[1], fingers[0]))))


def turn_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation between two orientations."""
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1.0, 1.0))))


def run_seed(world: World, expert: Expert, seed: int, steps: int) -> Episode:
    world.reset(seed)
    expert.reset()
    grasps = {side: Grasp() for side in SIDES}
    stage_steps: list[int | None] = [None] * 4
    starts: dict[str, np.ndarray] = {}
    close_at: dict[str, np.ndarray] = {}  # part centre when the close command came
    at_lift: dict[str, GripPose] = {}
    was_closing = {side: False for side in SIDES}
    first_success = peg_released = None
    reward = 0
    phases = []
    actions = np.zeros((steps, 14))
    for t in range(steps):
        poses = world.object_poses()
        if t == SETTLED_STEP:
            starts = {name: poses[name][:3].copy() for name, _ in PARTS.values()}
        contacts = Contacts(world)
        commands = expert.act()
        phases.append(expert.phase)
        for side, (joints, gripper) in commands.items():
            world.set_targets(side, joints, gripper_angle_from_normalized(gripper))
            actions[t, 7 * SIDES.index(side): 7 * SIDES.index(side) + 7] = [*joints, gripper]
        for side, (name, geoms) in PARTS.items():
            g, centre, closing = grasps[side], poses[name][:3], commands[side][1] == CLOSED
            if closing and not was_closing[side]:
                if first_success is not None:
                    g.after_success += 1
                elif g.close is None:
                    g.close, close_at[side] = t, centre.copy()
                    if starts:
                        g.pushed = 1000 * float(np.linalg.norm((centre - starts[name])[:2]))
                else:
                    g.regrasps += 1
            was_closing[side] = closing
            gripped = (any(contacts.fingers_touch(side, geom) for geom in geoms)
                       and expert.gripper_opening(side) < HOLDING_BELOW)
            lifted = not any(contacts.touching(geom, "table") for geom in geoms)
            if g.lift is None and g.close is not None and gripped and lifted:
                g.lift, at_lift[side] = t, grip_pose(world, expert, side, poses[name])
                g.offset, g.along = at_lift[side].offset, float(at_lift[side].on_part[0])
                g.yaw = wrap_deg(np.degrees(quat_yaw(poses[name][3:])), 360)
                g.rel_yaw = wrap_deg(g.yaw - at_lift[side].heading)
                g.moved = 1000 * float(np.linalg.norm((centre - close_at[side])[:2]))
            if expert.phase == "insert" and g.slip is None and side in at_lift and gripped:
                now = grip_pose(world, expert, side, poses[name])
                g.slip = float(np.linalg.norm(now.on_part - at_lift[side].on_part))
                g.turn = turn_deg(at_lift[side].relative, now.relative)
        if first_success is not None and peg_released is None and commands["right"][1] != CLOSED:
            peg_released = t
        reward = world.step()
        for k in range(reward):
            if stage_steps[k] is None:
                stage_steps[k] = t
        if reward >= 4 and first_success is None:
            first_success = t
    return Episode(seed, world.success, world.max_reward, stage_steps, grasps, first_success, peg_released, reward,
                   starts, phases, actions)


# -- the top camera ----------------------------------------------------------------------------------------------
def project(model: mujoco.MjModel, data: mujoco.MjData, camera: str, point: np.ndarray,
            size: tuple[int, int]) -> np.ndarray:
    """Pixel (u right, v down, from the image's top-left corner) where a world point appears in a camera image of
    `size` (H, W): MuJoCo's pinhole, looking along the camera's -z with y up, fovy the vertical field of view."""
    cam = model.camera(camera).id
    h, w = size
    local = data.cam_xmat[cam].reshape(3, 3).T @ (point - data.cam_xpos[cam])
    focal = (h / 2) / np.tan(np.radians(model.cam_fovy[cam]) / 2)
    return np.array([w / 2 + focal * local[0] / -local[2], h / 2 - focal * local[1] / -local[2]])


def mm_per_pixel(model: mujoco.MjModel, data: mujoco.MjData, camera: str, at: np.ndarray,
                 size: tuple[int, int]) -> float:
    """Table distance one pixel spans around `at` (horizontal, along x)."""
    step = np.array([0.01, 0.0, 0.0])
    return 10.0 / float(np.linalg.norm(project(model, data, camera, at + step, size)
                                       - project(model, data, camera, at, size)))


def check_projection(seed: int) -> None:
    """Renders cam_high at the policy's size and compares where the red peg and blue socket show with the
    projection of their top faces."""
    world = World(TASK, image_size=POLICY_IMAGE)
    world.reset(seed)
    for _ in range(SETTLED_STEP):
        world.step()
    image = world.render("cam_high").astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    masks = {"peg": (r > 120) & (g < 60) & (b < 60), "socket": (b > 120) & (r < 60) & (g < 60)}
    tops = {"peg": 0.01, "socket": 0.022}  # half heights: the peg's box, the socket's top plate
    poses = world.object_poses()
    print(f"projection check, seed {seed}, cam_high rendered at {POLICY_IMAGE[0]}x{POLICY_IMAGE[1]}:")
    for name, mask in masks.items():
        vs, us = np.nonzero(mask)
        seen = np.array([us.mean() + 0.5, vs.mean() + 0.5])  # pixel centres
        top = poses[name][:3] + np.array([0, 0, tops[name]])
        where = project(world.model, world.data, TOP_CAMERA, top, POLICY_IMAGE)
        print(f"  {name:<6} {len(us):3d} px seen at u {seen[0]:6.2f} v {seen[1]:6.2f}; projected u {where[0]:6.2f} "
              f"v {where[1]:6.2f}; off by {np.linalg.norm(seen - where):.2f} px")
    world.close()


# -- printing ----------------------------------------------------------------------------------------------------
def fmt(value: float | None, spec: str = "5.1f") -> str:
    return "-" if value is None else format(value, spec)


def spread(values: list[float | None], unit: str = "", spec: str = ".1f") -> str:
    got = np.array([v for v in values if v is not None], dtype=float)
    if len(got) == 0:
        return "none"
    return (f"mean {got.mean():{spec}}{unit} sd {got.std():{spec}} median {np.median(got):{spec}} "
            f"range {got.min():{spec}}..{got.max():{spec}}  (n={len(got)})")


def print_episode(e: Episode) -> None:
    stages = " ".join(f"{fmt(s, '3d'):>3}" for s in e.stage_steps)
    parts = []
    for side, (name, _) in PARTS.items():
        g = e.grasps[side]
        off = "   -     -     -  " if g.offset is None else " ".join(f"{v:5.1f}" for v in g.offset)
        parts.append(f"{name:<6} {fmt(g.close, '3d'):>3} {fmt(g.lift, '3d'):>3} {off} {fmt(g.along)} {fmt(g.yaw)} "
                     f"{fmt(g.rel_yaw)} {fmt(g.pushed, '4.1f')} {fmt(g.moved, '4.1f')} {fmt(g.slip, '4.1f')} "
                     f"{fmt(g.turn, '4.1f')} {g.regrasps} {g.after_success}")
    after = "-" if e.first_success is None else f"{fmt(e.peg_released, '3d')} {e.final_reward}"
    print(f"{e.seed:4d} {'yes' if e.success else 'no ':3} {e.max_reward} {stages} | {' | '.join(parts)} | {after}")


def print_summary(episodes: list[Episode], world: World, steps: int) -> None:
    n = len(episodes)
    print(f"\nsummary over {n} seeds ({episodes[0].seed}..{episodes[-1].seed}), {steps} steps each")
    print(f"  success {sum(e.success for e in episodes)}/{n}; reaching each stage: " + ", ".join(
        f"{name} {sum(e.max_reward >= k + 1 for e in episodes)}" for k, name in enumerate(REWARD_STAGES[TASK])))
    for k, name in enumerate(REWARD_STAGES[TASK]):
        print(f"  step first reaching {name:<19} {spread([e.stage_steps[k] for e in episodes], spec='.0f')}")
    for side, (name, _) in PARTS.items():
        gs = [e.grasps[side] for e in episodes]
        print(f"  {name} ({side} arm):")
        print(f"    close command step     {spread([g.close for g in gs], spec='.0f')}")
        print(f"    gripped and lifted     {spread([g.lift for g in gs], spec='.0f')}")
        for axis, label in enumerate(("x (fingers)", "y (jaw axis)", "z")):
            print(f"    offset {label:<15} {spread([None if g.offset is None else g.offset[axis] for g in gs], ' mm')}")
        print(f"    grasp along the part   {spread([g.along for g in gs], ' mm')}")
        print(f"    yaw at lift            {spread([g.yaw for g in gs], ' deg')}")
        print(f"    yaw against fingers    {spread([g.rel_yaw for g in gs], ' deg')}")
        print(f"    pushed before closing  {spread([g.pushed for g in gs], ' mm')}")
        print(f"    moved while closing    {spread([g.moved for g in gs], ' mm')}")
        print(f"    slip, lift -> insert   {spread([g.slip for g in gs], ' mm')}")
        print(f"    turn, lift -> insert   {spread([g.turn for g in gs], ' deg')}")
        print(f"    re-grasps before success: {sum(g.regrasps > 0 for g in gs)} seeds, {sum(g.regrasps for g in gs)} "
              f"in all; picked up again after success: {sum(g.after_success > 0 for g in gs)} seeds, "
              f"{sum(g.after_success for g in gs)} in all")
    won = [e for e in episodes if e.first_success is not None]
    if won:
        after = [steps - 1 - e.first_success for e in won]
        released = [e for e in won if e.peg_released is not None]
        print(f"  after the first success ({len(won)} seeds): {spread(after, ' steps', '.0f')}, "
              f"{100 * sum(after) / (n * steps):.0f}% of all demo steps")
        print(f"    peg let go after success: {len(released)} seeds, "
              f"{spread([e.peg_released - e.first_success for e in released], ' steps later', '.0f')}")
        print("    reward at the last step: " + ", ".join(
            f"{r}: {sum(e.final_reward == r for e in won)}" for r in range(5)))
        phases = Counter(p for e in won for p in e.phases[e.first_success + 1:])
        print("    the expert's phase in those steps: " + ", ".join(
            f"{p} {100 * c / max(1, sum(phases.values())):.0f}%" for p, c in phases.most_common()))
    print_pixels(episodes, world)
    print_action_spread(episodes, steps)


def print_pixels(episodes: list[Episode], world: World) -> None:
    model, data = world.model, world.data
    h, w = POLICY_IMAGE
    cam = model.camera(TOP_CAMERA).id
    print(f"  start positions in the top camera at {h}x{w} (cam_high, fovy {model.cam_fovy[cam]:.0f} deg, at "
          f"{np.round(data.cam_xpos[cam], 3).tolist()} m):")
    pixels = {}
    for name, _ in PARTS.values():
        starts = np.array([e.starts[name] for e in episodes])
        pixels[name] = np.array([project(model, data, TOP_CAMERA, p, POLICY_IMAGE) for p in starts])
        scale = mm_per_pixel(model, data, TOP_CAMERA, starts.mean(axis=0), POLICY_IMAGE)
        u, v = pixels[name][:, 0], pixels[name][:, 1]
        near = nearest(pixels[name])
        print(f"    {name:<6} u {u.min():5.1f}..{u.max():5.1f} (sd {u.std():.1f}), v {v.min():5.1f}..{v.max():5.1f} "
              f"(sd {v.std():.1f}) px; {scale:.1f} mm per px at its height; nearest other seed: median "
              f"{np.median(near):.1f} px, min {near.min():.1f} px")
    both = nearest(np.hstack([pixels[name] for name, _ in PARTS.values()]))
    print(f"    peg and socket together (4 numbers per seed): nearest other seed median {np.median(both):.1f} px, "
          f"min {both.min():.1f} px")


def nearest(points: np.ndarray) -> np.ndarray:
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return gaps.min(axis=1)


def print_action_spread(episodes: list[Episode], steps: int) -> None:
    """Per window: the commanded joints' spread across seeds, and what a linear fit on the parts' start xy leaves."""
    actions = np.stack([e.actions for e in episodes])  # (seeds, T, 14)
    starts = np.array([[*e.starts["peg"][:2], *e.starts["socket"][:2]] for e in episodes])
    design = np.hstack([np.ones((len(episodes), 1)), starts])
    arm = [i for i in range(14) if i % 7 != 6]
    grippers = [6, 13]
    print(f"  commanded joints across seeds, per {WINDOW}-step window: sd (arm joints in rad, grippers 0..1) and the "
          "part a linear fit on the parts' start x, y leaves:")
    print(f"    {'steps':>9} {'arm sd':>7} {'resid':>6} {'grip sd':>7} {'resid':>6}  seeds past their first success")
    for start in range(0, steps, WINDOW):
        window = actions[:, start:start + WINDOW]  # (seeds, w, 14)
        flat = window.reshape(len(episodes), -1)
        fit, *_ = np.linalg.lstsq(design, flat, rcond=None)
        resid = (flat - design @ fit).reshape(window.shape)
        sd, rs = window.std(axis=0), resid.std(axis=0)
        done = sum(e.first_success is not None and e.first_success < start for e in episodes)
        print(f"    {start:>4}-{start + window.shape[1] - 1:<4} {sd[..., arm].mean():7.3f} {rs[..., arm].mean():6.3f} "
              f"{sd[..., grippers].mean():7.3f} {rs[..., grippers].mean():6.3f}  {done:>4}")


def through_stack(first_seed: int, seeds: int, steps: int) -> None:
    """The same expert as tandem-record drives it (leaders, virtual buses, real driver, teleop loop): what follows
    the first success, from the world's status after every step."""
    from calibration.connection import connect
    from robot.rig import load_rig
    from robot.sim.world_process import SimWorldProcess
    from teleop.sim_episodes import run_episode

    print(f"\nthrough the whole stack, as the demos are recorded (seeds {first_seed}..{first_seed + seeds - 1}):")
    wins, picks, opens, finals, phases = [], [], [], Counter(), Counter()
    world = SimWorldProcess(load_rig("sim"), TASK, cameras=False)
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        for seed in range(first_seed, first_seed + seeds):
            log: list = []
            result = run_episode(world, connected, seed, steps, observers=[lambda step, log=log: log.append(
                world.status())])
            won = next((t for t, s in enumerate(log) if s.reward >= 4), None)
            if won is None:
                print(f"  seed {seed}: max reward {result.max_reward}, no success")
                continue
            after = log[won + 1:]
            pick = next((t for t in range(won, len(log)) if log[t].phase == "pick"), None)
            opening = [gripper_normalized_from_angle(s.joints["right"][6]) for s in after]
            loose = sum(o > LOOSE for o in opening)
            wins.append(won)
            picks.append(None if pick is None else pick - won)
            opens.append((loose, sum(o > HOLDING_BELOW for o in opening), max(opening, default=0.0)))
            finals[log[-1].reward] += 1
            phases.update(s.phase for s in after)
            print(f"  seed {seed}: first success at step {won}; the expert plans a new pick {fmt(picks[-1], 'd')} "
                  f"steps later; of the {len(after)} steps after success the peg's jaws are loose in {loose}, open in "
                  f"{opens[-1][1]} (widest {opens[-1][2]:.2f}); reward at the last step {log[-1].reward}; phases: "
                  + ", ".join(f"{p} {c}" for p, c in Counter(s.phase for s in after).most_common()))
    n = seeds
    print(f"  summary: success {len(wins)}/{n}; first success at {spread(wins, spec='.0f')}")
    if wins:
        after = [steps - 1 - w for w in wins]
        print(f"    after the first success: {spread(after, ' steps', '.0f')}, {100 * sum(after) / (n * steps):.0f}% "
              "of all demo steps")
        print(f"    the expert plans a new pick (no longer sees the peg held) in {sum(p is not None for p in picks)} "
              f"seeds, {spread(picks, ' steps after success', '.0f')}")
        for k, what in ((0, f"loose (opening over {LOOSE})"), (1, f"open (over {HOLDING_BELOW})")):
            print(f"    the peg's jaws {what} after success in {sum(o[k] > 0 for o in opens)} seeds, "
                  f"{100 * sum(o[k] for o in opens) / max(1, sum(after)):.0f}% of the steps after success")
        print("    reward at the last step: " + ", ".join(f"{r}: {finals[r]}" for r in range(5)))
        print("    the expert's phase after success: " + ", ".join(
            f"{p} {100 * c / max(1, sum(phases.values())):.0f}%" for p, c in phases.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=positive_int, default=50, help="how many seeds (default 50)")
    parser.add_argument("--first-seed", type=non_negative_int, default=0, help="first seed (default 0)")
    parser.add_argument("--steps", type=positive_int, default=EPISODE_STEPS[TASK], help="steps per episode")
    parser.add_argument("--check-projection", action="store_true",
                        help="also render cam_high once and compare where the parts show with the projection")
    parser.add_argument("--through-stack", type=non_negative_int, default=0, metavar="N",
                        help="also run the first N seeds through the whole stack, as tandem-record does (~5 s each)")
    args = parser.parse_args()
    if args.steps <= SETTLED_STEP:
        parser.error(f"--steps must be over {SETTLED_STEP}: the parts' start positions are read at that step")
    if args.check_projection:
        check_projection(args.first_seed)
    world = World(TASK)
    expert = Expert(world)
    print("seed ok  max  stage steps 1-4 | per part: close lift  offset x y z (mm)  along (mm)  yaw rel-yaw (deg)  "
          "pushed moved slip (mm)  turn (deg)  re-grasps, picks after success | after success: peg let go at, "
          "final reward")
    episodes = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        episodes.append(run_seed(world, expert, seed, args.steps))
        print_episode(episodes[-1])
    world.reset(args.first_seed)  # the camera's pose as at an episode's start
    print_summary(episodes, world, args.steps)
    world.close()
    if args.through_stack:
        through_stack(args.first_seed, min(args.through_stack, args.seeds), args.steps)


if __name__ == "__main__":
    main()
