"""tandem-calibrate: walk a person through calibrating one arm, or check an arm against its file."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from calibration.file import ArmCalibration, calibration_path
from calibration.procedure import calibrate_arm, check_arm
from calibration.store import load_calibration
from robot.arm import Arm
from robot.commands import (
    UsageError,
    add_rig_argument,
    add_verbose_argument,
    command_parser,
    describe,
    rig_from_args,
    run_command,
    setup_process,
)
from robot.rig import RigArm
from robot.sim.hand import pose_arm
from robot.sim.virtual_arm import gripper_angle
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_rig import virtual_buses

PROG = "tandem-calibrate"


class Aborted(RuntimeError):
    """The person quit at a prompt (exit 1: nothing was calibrated)."""


def person_prompt(text: str) -> None:
    print(f"\n{text}")
    answer = input("Press Enter when the arm is there (q to quit): ")
    if answer.strip().lower() in ("q", "quit"):
        raise Aborted


def sim_prompt(vbus: VirtualBus, arm: RigArm, poses: list[str]) -> Callable[[str], None]:
    """In the sim rig nobody can move the arm: a simulated hand puts it in each pose asked for, in order."""
    spec = arm.spec
    angles = {"reference": {**spec.calibration.reference_angles(), spec.gripper: gripper_angle(spec, 0.0)},
              "second": {**spec.calibration.second_angles(), spec.gripper: gripper_angle(spec, 1.0)}}
    queue = iter(poses)

    def prompt(text: str) -> None:
        print(f"\n{text}\n(sim: a simulated hand puts the virtual arm in this pose)")
        pose_arm(vbus, arm.spec, angles[next(queue)])

    return prompt


def _calibrate(arm: Arm, arm_cfg: RigArm, path: Path, prompt: Callable[[str], None]) -> int:
    print(f"Calibrating {arm_cfg.name} ({arm_cfg.spec.kind}) on {arm_cfg.port}. Torque goes off: hold the arm.")
    calibration = calibrate_arm(arm, prompt)
    if path.exists():
        shutil.copy2(path, path.with_suffix(".json.bak"))
        print(f"\nthe previous calibration is kept as {path.with_suffix('.json.bak')}")
    calibration.save(path)
    print(f"\nsaved {path}")
    print(f"  {'motor':>5}  {'joint':<20} {'homing offset':>13}  direction")
    for m in calibration.motors:
        print(f"  {m.motor_id:>5}  {m.joint:<20} {m.homing_offset:>13}  {'reverse' if m.reverse else 'forward'}")
    print(f"  gripper: closed {calibration.gripper_closed:+.3f} rad, open {calibration.gripper_open:+.3f} rad")
    return 0


def _check(arm: Arm, calibration: ArmCalibration, source: str, prompt: Callable[[str], None] | None) -> int:
    calibration.check_live(arm.bus, source)
    pose = None
    if prompt is not None:
        prompt("Hold the arm in the SECOND POSE to check directions (see tandem-calibrate --help).")
        pose = arm.spec.calibration.second_angles()
    checks = check_arm(arm, calibration, pose)
    print(f"\n{arm.name} against {source} (nothing moved):")
    for c in checks:
        print(f"  {c.joint:<14} {c.angle:+7.3f} rad  {c.verdict}")
    bad = [c for c in checks if c.verdict != "ok"]
    print("all joints ok" if not bad else f"{len(bad)} joint(s) need attention: re-run tandem-calibrate "
          f"--arm {arm.name}, or connect once (any tandem command) to write the file's values to the motors")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Calibrate one arm: with torque off, put it in the reference pose (gripper closed), then in the second "
        "pose (gripper open), each as the prompt describes it for the arm's kind (robot/arm_kinds.yaml or the rig "
        "file's kinds). ALOHA's reference pose: upper arm straight up, forearm level and forward, wrist straight; "
        "its second: waist a quarter turn left, shoulder 45 degrees forward, forearm raised 45 degrees, forearm "
        "and hand rolled a quarter turn, wrist bent 90 degrees down. Each motor's homing offset and direction "
        "and the gripper's range "
        "are derived and saved as <calibration dir>/<arm>.json; the motors get the same values every time an "
        "arm is connected. Re-running is safe: nothing is saved unless both poses check out.",
        "With --check nothing moves: each joint's angle is compared with the file and the pose.",
        "With --rig sim (the default) a simulated hand puts the virtual arm in each pose."))
    add_rig_argument(parser)
    parser.add_argument("--arm", required=True, help="arm name in the rig, e.g. leader_left")
    parser.add_argument("--check", action="store_true", help="report each joint against the saved calibration")
    parser.add_argument("--no-pose", action="store_true",
                        help="with --check: do not ask for the second pose, check registers and limits only")
    parser.add_argument("--calibration-dir", type=Path,
                        help="where calibration files live; unset: the rig file's")
    add_verbose_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    rig = rig_from_args(args)
    if args.calibration_dir:
        rig = dataclasses.replace(rig, calibration_dir=args.calibration_dir)
    if args.arm not in rig.arm_names:
        raise UsageError(f"--arm {args.arm}: {rig.source} has no arm named {args.arm!r}; the arms are "
                         f"{', '.join(rig.arm_names)}")
    path = calibration_path(rig.calibration_dir, args.arm)
    with virtual_buses(rig) as (live, buses):
        arm_cfg = live.arm(args.arm)
        vbus = buses.get(arm_cfg.name)
        with Arm.on_port(arm_cfg.name, arm_cfg.spec, arm_cfg.port, arm_cfg.baud, **live.bus_options) as arm:
            poses = ["second"] if args.check else ["reference", "second"]
            prompt = sim_prompt(vbus, arm_cfg, poses) if vbus else person_prompt
            if args.check:
                calibration, source = load_calibration(live, arm_cfg)
                return _check(arm, calibration, source, None if args.no_pose else prompt)
            return _calibrate(arm, arm_cfg, path, prompt)


def stopped_text(check: bool) -> str:
    if check:
        return "stopped; nothing was saved."
    return ("stopped; nothing was saved. The motors' homing offsets were reset: any tandem command writes the "
            "saved calibration back when it connects.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)

    def body() -> int:
        try:
            return run(args)
        except Aborted:
            raise Aborted(stopped_text(args.check)) from None

    return run_command(PROG, body, interrupted="interrupted; " + stopped_text(args.check))


if __name__ == "__main__":
    sys.exit(main())
