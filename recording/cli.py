"""tandem-record: episodes of teleoperation (or, on the simulated rig, of the scripted operator) into a dataset."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import ExitStack

from calibration.connection import ConnectedRig, connect
from calibration.file import CalibrationError
from calibration.poses import GRIPPER
from recording.dataset import DatasetError
from recording.keyed import START_KEYS, KeyedRecording
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
from robot.commands import image_size, raise_interrupt
from robot.dynamixel.errors import DynamixelError
from robot.loop import ControlLoop, Step, TooFarError
from robot.rig import Rig, load_rig
from robot.sim.child_process import ChildStartError
from robot.sim.tasks import EPISODE_STEPS, TASK_NAMES
from teleop.controller import TeleopController
from teleop.keys import open_keys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem-record",
        description="Record episodes into a dataset folder (ALOHA-layout HDF5 files plus dataset.json). On a "
        "hardware rig the leaders drive the followers as in tandem-teleop; each episode starts on space or when "
        "both leader grippers are closed, runs for --seconds (s stops early) and is written while it is "
        "recorded, so the next one can start at once. r re-records the last episode, d discards it, q quits. "
        "An episode whose loop rate fell too low is flagged and you are asked whether to keep it. With --rig sim "
        "(the default) the scripted operator performs seeded episodes of --task in the MuJoCo world.",
    )
    parser.add_argument("--rig", default="sim", help="rig YAML file, or a preset: aloha, sim (default: sim)")
    parser.add_argument("--dataset", required=True, help="dataset folder (created if missing; appended to if it "
                        "was recorded with the same rig, cameras and rate)")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to record (default 1)")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="length of an episode (default: 20 s on hardware, the task's 8 s in sim)")
    parser.add_argument("--raw", action="store_true",
                        help="store raw frames (T, H, W, 3) instead of JPEG rows (ALOHA's compressed layout)")
    parser.add_argument("--jpeg-quality", type=int, default=50, metavar="Q", help="JPEG quality 1..100 (default "
                        "50, as ALOHA)")
    parser.add_argument("--min-rate", type=float, default=0.95, metavar="SHARE",
                        help="flag an episode whose loop rate fell below this share of the rig's (default 0.95)")
    parser.add_argument("--start", choices=("any", "key", "gesture"), default="any",
                        help="hardware: what starts an episode: space, closing both leader grippers, or either")
    parser.add_argument("--keys", choices=("auto", "pynput", "terminal", "none"), default="auto",
                        help="operator key backend (auto: pynput with a display, else this terminal)")
    parser.add_argument("--max-step", type=float, default=0.1, metavar="RAD",
                        help="largest change of a follower joint per step, rad (default 0.1)")
    parser.add_argument("--approach-speed", type=float, default=0.5, metavar="RAD_S",
                        help="joint speed of the slow move to the leaders' pose at start, rad/s (default 0.5)")
    sim = parser.add_argument_group("simulated rig (--rig sim)")
    sim.add_argument("--task", choices=TASK_NAMES, default="transfer_cube", help="default transfer_cube")
    sim.add_argument("--seed", type=int, default=0, help="seed of the first episode; the next ones count up")
    sim.add_argument("--image-size", type=image_size, metavar="HxW",
                     help="rendered camera size (default: the rig file's, 480x640)")
    sim.add_argument("--realtime", action="store_true", help="pace the simulation at wall-clock speed")
    parser.add_argument("-v", "--verbose", action="store_true", help="log bus retries")
    return parser


def record_sim(args: argparse.Namespace, rig: Rig, options: RecordOptions) -> int:
    from robot.sim.world_process import SimWorldProcess  # MuJoCo only for the simulated rig
    from teleop.sim_episodes import run_episode

    steps = round(args.seconds * rig.control_hz) if args.seconds > 0 else EPISODE_STEPS[args.task]
    world = SimWorldProcess(rig, args.task, image_size=args.image_size)
    saved = 0
    with world as live, connect(live, **world.bus_options) as connected, ExitStack() as stack:
        sizes = {name: world.image_size for name in world.cameras}
        dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, options.compress, args.task))
        stack.callback(dataset.close)
        warn_if_low_space(dataset, steps, args.episodes)
        layout = StateLayout.from_connected(connected)
        print(f"recording {args.episodes} episode(s) of {args.task} ({steps} steps each) into {dataset.root}; "
              f"cameras {', '.join(sizes) or 'none'} at {world.image_size[0]}x{world.image_size[1]}")
        for i in range(args.episodes):
            seed = args.seed + i
            slot = EpisodeSlot(dataset, layout, world.cameras, options, attrs={"seed": seed})
            progress = ProgressLine(slot, steps)
            try:
                result = run_episode(world, connected, seed, steps, max_step_rad=args.max_step,
                                     observers=[slot.recorder, progress], realtime=args.realtime)
            except BaseException:
                progress.end()
                slot.discard()
                raise
            progress.end()
            episode, summary = slot.finish(rate_hz=rig.control_hz, options=options, stop_reason="time",
                                           success=result.success, seed=seed, attrs={"max_reward": result.max_reward})
            saved += 1
            verdict = "success" if result.success else "failure"
            print(f"episode {episode.index} (seed {seed}): max reward {result.max_reward}/4, {verdict}; "
                  f"{summary.steps} steps in {result.wall_s:.1f} s, {summary.bytes / 1e6:.1f} MB, "
                  f"{summary.dropped} dropped, closed in {summary.close_s:.2f} s", flush=True)
    print(f"{saved} episode(s) recorded into {args.dataset}")
    return 0


def record_hardware(args: argparse.Namespace, rig: Rig, options: RecordOptions) -> int:
    from robot.cameras import open_cameras

    steps = round((args.seconds or 20.0) * rig.control_hz)
    with ExitStack() as stack:
        if rig.virtual:  # the simulated rig without a world: virtual arms on a kinematic bench, no cameras
            from robot.sim.rig_process import VirtualRigProcess

            rig = stack.enter_context(VirtualRigProcess(rig, leader_motion="sine"))
        connected = stack.enter_context(connect(rig))
        cameras: dict[str, Camera] = open_cameras([c for c in rig.cameras if c.device != "sim"])
        stack.callback(lambda: [c.close() for c in cameras.values()])
        sizes = {c.name: (c.height, c.width) for c in rig.cameras if c.name in cameras}
        dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, options.compress))
        stack.callback(dataset.close)
        warn_if_low_space(dataset, steps, args.episodes)
        keys = open_keys(args.keys)
        stack.callback(keys.close)
        print(f"keys: {keys.backend}")
        loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                           RealClock(), rate_hz=rig.control_hz, max_step_rad=args.max_step)
        stack.callback(loop.close)
        loop.approach(args.approach_speed, 1.5)
        loop.reset_stats()
        session = KeyedRecording(dataset, StateLayout.from_connected(connected), cameras, options,
                                 episodes=args.episodes, steps=steps, rate_hz=rig.control_hz, keys=keys.events,
                                 leader_grippers=None if args.start == "key" else leader_grippers(connected),
                                 start_keys=() if args.start == "gesture" else START_KEYS)
        loop.observers.append(session)
        try:
            loop.run(session.until)
        finally:
            session.close()
        print(f"{len(session.saved)} episode(s) recorded into {dataset.root}")
    return 0


def leader_grippers(connected: ConnectedRig):
    """Each leader's gripper opening (0 closed .. 1 open), from a loop step."""
    leaders = [(a.name, connected.arms[a.name].joint_names.index(GRIPPER), connected.calibrations[a.name])
               for a in connected.rig.leaders]

    def openings(step: Step) -> list[float]:
        return [float(cal.gripper_normalized(step.states[name].position[i])) for name, i, cal in leaders]

    return openings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, raise_interrupt)
    if args.episodes < 1:
        print("tandem-record: --episodes must be at least 1", file=sys.stderr)
        return 2
    if not 1 <= args.jpeg_quality <= 100:
        print("tandem-record: --jpeg-quality must be within 1..100", file=sys.stderr)
        return 2
    options = RecordOptions(compress=not args.raw, jpeg_quality=args.jpeg_quality, min_rate_ratio=args.min_rate)
    try:
        rig = load_rig(args.rig)
        if rig.virtual and any(c.device == "sim" for c in rig.cameras):
            return record_sim(args, rig, options)
        return record_hardware(args, rig, options)
    except KeyboardInterrupt:
        print("interrupted: finished episodes are kept", file=sys.stderr)
        return 130
    except (ValueError, DynamixelError, CalibrationError, DatasetError, TooFarError, OSError, ChildStartError) as exc:
        print(f"tandem-record: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
