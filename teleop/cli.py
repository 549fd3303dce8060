"""tandem-teleop: the leaders drive the followers at the rig's control rate until stopped."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack

from calibration.connection import connect
from robot.clock import RealClock
from robot.commands import (
    STOP_KEYS,
    Motion,
    UsageError,
    add_display_argument,
    add_keys_argument,
    add_motion_arguments,
    add_render_argument,
    add_rig_argument,
    add_verbose_argument,
    command_parser,
    describe,
    keys_line,
    open_rig_arms,
    positive_float,
    positive_int,
    rig_from_args,
    run_command,
    setup_process,
)
from robot.display import hardware_cameras, live_view
from robot.dynamixel.errors import DynamixelError
from robot.loop import ControlLoop, Step
from robot.rig import Rig
from robot.sim.render_style import DEFAULT_RENDER
from robot.sim.rig_process import LEADER_MOTIONS
from robot.sim.tasks import EPISODE_STEPS, TASK_NAMES
from teleop.controller import TeleopController
from teleop.keys import NoKeys, open_keys

PROG = "tandem-teleop"


class StatusLine:
    """One refreshed line on stderr: step, achieved rate, period error, clamps."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.clamped = 0
        self._last = 0.0
        self.enabled = sys.stderr.isatty()

    def __call__(self, step: Step) -> None:
        self.clamped += step.clamped
        now = time.monotonic()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        period_ms = step.stats.last_period() * 1e3
        sys.stderr.write(f"\rstep {step.index:>7}  period {period_ms:6.2f} ms  overruns {step.stats.overruns:>4}  "
                         f"clamped steps {self.clamped:>5}   ")
        sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        describe(
            "Leader arms drive follower arms, joint for joint, at the rig's control rate (50 Hz by default). At "
            "start each follower moves slowly to its leader's pose (or the run is refused if a joint is too far "
            "away); then every step reads all arms in parallel, maps leader to follower through the calibration, "
            "clamps to the joint limits and the per-step change, and writes the followers.",
            "Stop with q, Esc or Ctrl-C (Ctrl-C or SIGTERM only, where no key backend is available): followers "
            "hold where they are, then torque goes off (see --on-exit); leaders stay limp.",
            "With --rig sim (the default) the arms are virtual Dynamixel buses: no hardware needed."),
    )
    add_rig_argument(parser)
    parser.add_argument("--seconds", type=positive_float, metavar="S", help="stop after this long; unset: run "
                        "until stopped")
    add_motion_arguments(parser)
    parser.add_argument("--on-exit", choices=("off", "hold"), default="off",
                        help="followers at exit: hold half a second then torque off, or keep holding")
    add_keys_argument(parser)
    add_display_argument(parser)
    parser.add_argument("--leader-motion", choices=LEADER_MOTIONS, default="sine",
                        help="virtual rig only: how the virtual leaders move (still = they rest)")
    sim = parser.add_argument_group("simulated tasks (--rig sim)", "with --task, the virtual arms live in a "
                                    "MuJoCo world (gym-aloha's bimanual ViperX scene) and a scripted operator moves "
                                    "the leaders; each episode is reset to a seed and runs in lockstep with the "
                                    "simulation, then its max reward (0..4) and success are printed")
    sim.add_argument("--task", choices=TASK_NAMES, help="transfer_cube or insertion")
    sim.add_argument("--episodes", type=positive_int, default=1, help="seeded episodes to run")
    sim.add_argument("--seed", type=int, default=0, help="seed of the first episode; the next ones count up")
    sim.add_argument("--episode-steps", type=positive_int, metavar="N",
                     help="control steps per episode; unset: the task's, 400 = 8 s")
    sim.add_argument("--realtime", action="store_true", help="pace the simulation at wall-clock speed")
    add_render_argument(sim, default=DEFAULT_RENDER)
    add_verbose_argument(parser)
    return parser


def run_sim_task(args: argparse.Namespace, rig: Rig) -> int:
    """tandem-teleop --task: seeded episodes with the scripted operator; prints each one's reward."""
    from robot.sim.world_process import SimWorldProcess  # MuJoCo only where a task is asked for
    from teleop.sim_episodes import run_episode

    steps = args.episode_steps or EPISODE_STEPS[args.task]
    world = SimWorldProcess(rig, args.task, cameras=bool(args.display), render=args.render)  # rendered only to be shown
    results = []
    try:
        with world as live, connect(live, torque_off_at_exit=args.on_exit == "off",
                                    **world.bus_options) as connected, \
                live_view(args.display, connected, world.cameras, prog=PROG) as view:
            print(f"rig {rig.name}: task {args.task} in a MuJoCo world process, scripted operator at the leaders")
            for i in range(args.episodes):
                result = run_episode(world, connected, args.seed + i, steps, max_step_rad=args.max_step,
                                     realtime=args.realtime, observers=[view] if view else [])
                results.append(result)
                print(f"episode {i + 1}/{args.episodes} {result.line()}", flush=True)
    finally:  # also when interrupted: what was finished is reported
        if results:
            wins = sum(r.success for r in results)
            print(f"{args.task}: {wins}/{len(results)} episodes succeeded")
    return 0


def teleop(args: argparse.Namespace, rig: Rig) -> int:
    motion = Motion.from_args(args)
    loop = None
    interrupted = False
    try:
        with ExitStack() as stack:
            rig = open_rig_arms(rig, stack, leader_motion=args.leader_motion)
            connected = stack.enter_context(connect(rig, torque_off_at_exit=args.on_exit == "off"))
            keys = open_keys(args.keys)
            stack.callback(keys.close)
            print(keys_line(keys.backend, not isinstance(keys, NoKeys)))
            status = StatusLine()
            view = stack.enter_context(live_view(args.display, connected, hardware_cameras(rig, args.display, stack),
                                                 prog=PROG))
            loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                               RealClock(), rate_hz=rig.control_hz, max_step_rad=motion.max_step,
                               observers=[status, *([view] if view else [])])
            stack.callback(loop.close)
            steps = loop.approach(motion.approach_speed, motion.refuse_above)
            if steps:
                print(f"followers moved to the leaders' pose in {steps * loop.period:.1f} s")
            print(f"teleop at {rig.control_hz:g} Hz")
            end = time.monotonic() + args.seconds if args.seconds else float("inf")

            def stop_requested(step: Step) -> bool:
                return time.monotonic() >= end or any(k in STOP_KEYS for k in keys.events())

            try:
                loop.run(stop_requested)
            except KeyboardInterrupt:
                interrupted = True  # the arms are released on the way out of the stack
            if status.enabled:
                sys.stderr.write("\n")
            print(f"stopped: {loop.summary().line()}")
    except DynamixelError:
        if loop is not None and loop.stats.steps:
            print(f"stopped after {loop.stats.steps} steps: followers held, then released; "
                  f"{loop.summary().line()}", file=sys.stderr)
        raise
    if interrupted:
        raise KeyboardInterrupt
    return 0


def run(args: argparse.Namespace) -> int:
    rig = rig_from_args(args)
    if args.task is None:
        return teleop(args, rig)
    if not rig.virtual:
        raise UsageError(f"--task needs the simulated rig (--rig sim); {rig.source} has hardware arms")
    return run_sim_task(args, rig)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
