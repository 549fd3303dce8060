"""tandem-record: episodes of teleoperation (or, on the simulated rig, of the scripted operator) into a dataset."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from calibration.connection import connect
from recording.keyed import START_KEYS, KeyedRecording, leader_grippers
from recording.layout import StateLayout
from recording.session import (
    EpisodeSlot,
    ProgressLine,
    RecordOptions,
    dataset_info,
    open_dataset,
    warn_if_low_space,
)
from robot.cameras import Camera
from robot.clock import RealClock
from robot.commands import (
    Motion,
    UsageError,
    add_display_argument,
    add_keys_argument,
    add_motion_arguments,
    add_render_argument,
    add_rig_argument,
    add_task_description_argument,
    add_verbose_argument,
    command_parser,
    describe,
    image_size,
    interrupts_deferred,
    is_sim_world,
    jpeg_quality,
    keys_line,
    non_negative_float,
    open_rig_arms,
    positive_float,
    positive_int,
    rig_from_args,
    run_command,
    setup_process,
)
from robot.display import live_view
from robot.loop import ControlLoop
from robot.rig import Rig
from robot.sim.render_style import DEFAULT_RENDER
from robot.sim.tasks import EPISODE_STEPS, TASK_NAMES, task_description
from teleop.controller import TeleopController
from teleop.keys import NoKeys, open_keys

PROG = "tandem-record"
HARDWARE_EPISODE_S = 20.0


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Record episodes into a dataset folder (ALOHA-layout HDF5 files plus dataset.json).",
        "On a hardware rig the leaders drive the followers as in tandem-teleop; each episode starts on space or "
        "when every leader gripper is closed, runs for --seconds (s stops early) and is written while it is "
        "recorded, so the next one can start at once. r re-records the last episode, d discards it, q quits. "
        "An episode whose loop rate fell too low is flagged and you are asked whether to keep it. Where no key "
        "backend is available, episodes start by the grippers only and Ctrl-C ends the session.",
        "With --rig sim (the default) the scripted operator performs seeded episodes of --task in the MuJoCo "
        "world. Ctrl-C stops at once: finished episodes are kept, the one being recorded is discarded."))
    add_rig_argument(parser)
    parser.add_argument("--dataset", required=True, help="dataset folder (created if missing; appended to if it "
                        "was recorded with the same rig, cameras and rate)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes to record")
    parser.add_argument("--seconds", type=positive_float, metavar="S",
                        help=f"length of an episode; unset: {HARDWARE_EPISODE_S:g} s on hardware, the task's 8 s "
                        "in sim")
    parser.add_argument("--raw", action="store_true",
                        help="store raw frames (T, H, W, 3) instead of JPEG rows (ALOHA's compressed layout)")
    parser.add_argument("--jpeg-quality", type=jpeg_quality, default=50, metavar="Q",
                        help="JPEG quality 1..100 (50 as ALOHA)")
    parser.add_argument("--min-rate", type=positive_float, default=0.95, metavar="SHARE",
                        help="flag an episode whose loop rate fell below this share of the rig's")
    parser.add_argument("--start", choices=("any", "key", "gesture"), default="any",
                        help="hardware: what starts an episode: space, closing every leader gripper, or either")
    add_task_description_argument(parser)
    add_keys_argument(parser)
    add_display_argument(parser)
    add_motion_arguments(parser)
    sim = parser.add_argument_group("simulated rig (--rig sim)")
    sim.add_argument("--task", choices=TASK_NAMES, default="transfer_cube", help="the simulated task")
    sim.add_argument("--seed", type=int, default=0, help="seed of the first episode; the next ones count up")
    sim.add_argument("--image-size", type=image_size, metavar="HxW",
                     help="rendered camera size; unset: the rig file's, 480x640")
    add_render_argument(sim, default=DEFAULT_RENDER)
    sim.add_argument("--realtime", action="store_true", help="pace the simulation at wall-clock speed")
    sim.add_argument("--perturb", type=non_negative_float, default=0.0, metavar="RAD",
                     help="push the followers off the scripted operator's path by a smooth random joint offset of "
                          "this spread (rad; ~0.02 moves a gripper about a centimetre) while it moves freely (reach, "
                          "lift, carry); the recorded actions stay its targets, so the demos show states off its "
                          "path (as DART's do); each episode's pushes follow from its seed; 0: none")
    add_verbose_argument(parser)
    return parser


def record_sim(args: argparse.Namespace, rig: Rig, options: RecordOptions) -> int:
    from robot.sim.world_process import SimWorldProcess  # MuJoCo only for the simulated rig
    from teleop.sim_episodes import reward_text, run_episode

    steps = round(args.seconds * rig.control_hz) if args.seconds else EPISODE_STEPS[args.task]
    world = SimWorldProcess(rig, args.task, image_size=args.image_size, render=args.render)
    saved = 0
    perturb_attrs = {"perturb_rad": args.perturb} if args.perturb else {}  # kept with each episode it shaped
    with world as live, connect(live, **world.bus_options) as connected, ExitStack() as stack:
        world.set_perturbation(args.perturb)
        sizes = {name: world.image_size for name in world.cameras}
        dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, options.compress, args.task,
                                                          args.render))
        stack.callback(dataset.close)
        warn_if_low_space(dataset, steps, args.episodes)
        view = stack.enter_context(live_view(args.display, connected, world.cameras, prog=PROG, near=dataset.root))
        layout = StateLayout.from_connected(connected)
        print(f"recording {args.episodes} episode(s) of {args.task} ({steps} steps each) into {dataset.root}; "
              f"cameras {', '.join(sizes) or 'none'} at {world.image_size[0]}x{world.image_size[1]}, render "
              f"{args.render}{f'; followers pushed by {args.perturb} rad' if args.perturb else ''}")
        for i in range(args.episodes):
            seed = args.seed + i
            slot = progress = None
            try:
                with interrupts_deferred():  # an interrupt inside the constructor would leave its writer running
                    slot = EpisodeSlot(dataset, layout, world.cameras, options, attrs={"seed": seed, **perturb_attrs},
                                       task_description=task_description(args.task, args.task_description))
                    progress = ProgressLine(slot, steps)
                result = run_episode(world, connected, seed, steps, max_step_rad=args.max_step,
                                     observers=[slot.recorder, progress, *([view] if view else [])],
                                     realtime=args.realtime)
            except BaseException:
                if progress is not None:
                    progress.end()
                if slot is not None:
                    slot.discard()
                raise
            progress.end()
            episode, summary = slot.finish(rate_hz=rig.control_hz, options=options, stop_reason="time",
                                           success=result.success, seed=seed, attrs={"max_reward": result.max_reward})
            saved += 1
            print(f"episode {episode.index} (seed {seed}): {reward_text(result.max_reward, result.success)}; "
                  f"{summary.steps} steps in {result.wall_s:.1f} s, {summary.bytes / 1e6:.1f} MB, "
                  f"{summary.dropped} dropped, closed in {summary.close_s:.2f} s", flush=True)
    print(f"{saved} episode(s) recorded into {args.dataset}")
    return 0


def record_hardware(args: argparse.Namespace, rig: Rig, options: RecordOptions) -> int:
    from robot.cameras import open_cameras, opened_by_world

    motion = Motion.from_args(args)
    steps = round((args.seconds or HARDWARE_EPISODE_S) * rig.control_hz)
    with ExitStack() as stack:
        keys = open_keys(args.keys)
        stack.callback(keys.close)
        listening = not isinstance(keys, NoKeys)
        if not listening and args.start == "key":
            raise UsageError(f"--start key needs a key backend, and none is available ({keys.backend}); "
                             "use --start gesture, or run in a terminal or with a display")
        rig = open_rig_arms(rig, stack, leader_motion="sine")  # virtual arms on a kinematic bench, no cameras
        connected = stack.enter_context(connect(rig))
        cameras: dict[str, Camera] = open_cameras([c for c in rig.cameras if not opened_by_world(c)])
        stack.callback(lambda: [c.close() for c in cameras.values()])
        sizes = {c.name: (c.height, c.width) for c in rig.cameras if c.name in cameras}
        dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, options.compress))
        stack.callback(dataset.close)
        warn_if_low_space(dataset, steps, args.episodes)
        print(keys_line(keys.backend, listening))
        view = stack.enter_context(live_view(args.display, connected, cameras, prog=PROG, near=dataset.root))
        loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                           RealClock(), rate_hz=rig.control_hz, max_step_rad=motion.max_step,
                           observers=[view] if view else [])
        stack.callback(loop.close)
        loop.approach(motion.approach_speed, motion.refuse_above)
        loop.reset_stats()
        session = KeyedRecording(dataset, StateLayout.from_connected(connected), cameras, options,
                                 episodes=args.episodes, steps=steps, rate_hz=rig.control_hz, keys=keys.events,
                                 leader_grippers=None if args.start == "key" else leader_grippers(connected),
                                 start_keys=START_KEYS if listening and args.start != "gesture" else (),
                                 listening=listening,
                                 task_description=task_description(dataset.info.task, args.task_description))
        loop.observers.append(session)
        try:
            loop.run(session.until)
        finally:
            session.close()
        print(f"{len(session.saved)} episode(s) recorded into {dataset.root}")
    return 0


def run(args: argparse.Namespace) -> int:
    options = RecordOptions(compress=not args.raw, jpeg_quality=args.jpeg_quality, min_rate_ratio=args.min_rate)
    rig = rig_from_args(args)
    if is_sim_world(rig):
        return record_sim(args, rig, options)
    if args.perturb:  # never let a flag meant for the simulation look as if it did something to real arms
        raise UsageError(f"--perturb pushes the simulated rig's followers; {rig.source} has no simulated world: "
                         "record it without --perturb, or use --rig sim")
    return record_hardware(args, rig, options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args), interrupted="interrupted; finished episodes are kept, arms released")


if __name__ == "__main__":
    sys.exit(main())
