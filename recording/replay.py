"""tandem-replay: a recorded episode's actions sent to the followers again, at the recorded rate.

The followers first move slowly to the episode's first action (or the replay is
refused when a joint is too far away), then the loop sends one recorded row per
step, through the same limits and per-step clamp as teleop. On the simulated rig
the world is reset to the episode's seed first, so a demonstration replays into
the same scene and its reward is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np

from calibration.connection import ConnectedRig, connect
from recording.dataset import Dataset
from recording.layout import StateLayout
from recording.playback import ReplayController
from recording.reader import EpisodeFormatError, EpisodeReader
from robot.clock import RealClock
from robot.commands import (
    Motion,
    add_display_argument,
    add_motion_arguments,
    add_rig_argument,
    add_verbose_argument,
    command_parser,
    dataset_folder,
    describe,
    is_sim_world,
    open_rig_arms,
    rig_from_args,
    run_command,
    setup_process,
)
from robot.display import hardware_cameras, live_view
from robot.loop import ControlLoop, Observer
from robot.rig import Rig

PROG = "tandem-replay"
REPLAY = "replay"  # who drives, in the live view


def check_layout(reader: EpisodeReader, layout: StateLayout) -> None:
    names = reader.attrs.get("state_names")
    # the names before the sizes: a Koch episode on an ALOHA rig is other joints, not only fewer
    if names is not None and tuple(map(str, names)) != layout.names:
        raise EpisodeFormatError(reader.path, "state_names", f"recorded as {', '.join(map(str, names))}; this "
                                 f"rig has {', '.join(layout.names)}")
    if reader.action_dim != layout.dim:
        raise EpisodeFormatError(reader.path, "/action", f"rows have {reader.action_dim} values; this rig's "
                                 f"followers take {layout.dim} ({', '.join(layout.names)})")


def replay(connected: ConnectedRig, actions: np.ndarray, clock: object, *, rate_hz: float, max_step_rad: float,
           approach_speed: float, refuse_above: float, observers: Sequence[Observer] = ()) -> ControlLoop:
    layout = StateLayout.from_connected(connected)
    controller = ReplayController(layout, actions)
    loop = ControlLoop(connected.follower_arms(), controller, connected.limits(), clock, rate_hz=rate_hz,
                       max_step_rad=max_step_rad, observers=observers)
    try:
        loop.approach(approach_speed, refuse_above)
        loop.reset_stats()
        controller.play()
        loop.run(lambda step: controller.finished)
    finally:
        loop.close()
    return loop


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Replay a recorded episode's actions on the followers at the recorded rate, after a slow move to its "
        "first pose. Ctrl-C stops with the followers holding, then released.",
        "With --rig sim the world is reset to the episode's seed and the task's reward is printed at the end."))
    parser.add_argument("--dataset", required=True, type=dataset_folder, help="dataset folder")
    parser.add_argument("--episode", type=int, required=True, help="episode number")
    add_rig_argument(parser)
    add_motion_arguments(parser)
    parser.add_argument("--realtime", action="store_true", help="sim: pace the simulation at wall-clock speed")
    add_display_argument(parser)
    add_verbose_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    dataset = Dataset.open(args.dataset)
    motion = Motion.from_args(args)
    with EpisodeReader(dataset.path(dataset.episode(args.episode).index)) as reader:
        actions = reader.array("/action", finite=True).astype(np.float64)
        rig = rig_from_args(args)
        rate = float(reader.attrs.get("fps", rig.control_hz))
        options = dict(rate_hz=rate, max_step_rad=motion.max_step, approach_speed=motion.approach_speed,
                       refuse_above=motion.refuse_above)
        if is_sim_world(rig):
            return _replay_sim(args, rig, reader, actions, dataset.info.task, options)
        with ExitStack() as stack:
            connected = stack.enter_context(connect(open_rig_arms(rig, stack)))  # virtual arms start first
            check_layout(reader, StateLayout.from_connected(connected))
            view = stack.enter_context(live_view(args.display, connected, hardware_cameras(rig, args.display, stack),
                                                 prog=PROG, near=args.dataset, control=REPLAY))
            print(f"replaying episode {args.episode} ({len(actions)} steps at {rate:g} Hz)")
            loop = replay(connected, actions, RealClock(), observers=[view] if view else [], **options)
            print(f"done: {loop.summary().line()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args), interrupted="interrupted; followers held, then released")


def _replay_sim(args: argparse.Namespace, rig: Rig, reader: EpisodeReader, actions: np.ndarray, task: str | None,
                options: dict) -> int:
    from robot.sim.sim_clock import SimClock
    from robot.sim.tasks import TASK_NAMES
    from robot.sim.world_process import SimWorldProcess
    from teleop.sim_episodes import reward_text

    attrs = reader.attrs
    task = str(attrs.get("task", task))
    if task not in TASK_NAMES:
        raise ValueError(f"{reader.path}: task {task!r} is not a simulated task ({', '.join(TASK_NAMES)})")
    seed = int(attrs.get("seed", -1))
    world = SimWorldProcess(rig, task, cameras=bool(args.display), operator="off")  # rendered only to be shown
    with world as live, connect(live, **world.bus_options) as connected, \
            live_view(args.display, connected, world.cameras, prog=PROG, near=args.dataset, control=REPLAY) as view:
        check_layout(reader, StateLayout.from_connected(connected))
        status = world.reset(max(seed, 0))
        print(f"replaying episode {args.episode} ({len(actions)} steps) in {task}, seed {max(seed, 0)}")
        replay(connected, actions, SimClock(world, status.time, realtime=args.realtime),
               observers=[view] if view else [], **options)
        status = world.status()
    print(f"done: {reward_text(status.max_reward, status.success)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
