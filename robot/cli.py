"""tandem-scan: find the motors on a rig's buses (or on one port) and print what answers."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from robot.arm import ticks_to_rad
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
from robot.dynamixel.bus import DynamixelBus, Motor, scan_port
from robot.dynamixel.control_table import BAUD_RATES, MODELS_BY_NUMBER, model_name
from robot.dynamixel.errors import DynamixelError
from robot.rig import RigArm
from robot.sim.virtual_rig import virtual_buses


def _read_positions(port: str, baud: int, found: dict[int, tuple[int, int]]) -> dict[int, int]:
    known = [Motor(i, MODELS_BY_NUMBER[n]) for i, (n, _) in found.items() if n in MODELS_BY_NUMBER]
    with DynamixelBus(port, known, baud=baud) as bus:
        return {m.motor_id: bus.read(m.motor_id, "Present Position") for m in known}


def _motor_rows(port: str, baud: int, found: dict[int, tuple[int, int]],
                expected: dict[int, tuple[str, int]]) -> tuple[list[str], bool]:
    """Table rows for one bus, and whether it matches what was expected."""
    positions = _read_positions(port, baud, found) if found else {}
    rows, ok = [], True
    for motor_id in sorted(set(found) | set(expected)):
        joint, want = expected.get(motor_id, ("", 0))
        if motor_id not in found:
            blank = ""
            rows.append(f"  {motor_id:>3}  {'-':<12} {blank:>3}  {joint:<16} {blank:>22}  "
                        f"MISSING: expected {model_name(want)}")
            ok = False
            continue
        number, firmware = found[motor_id]
        ticks = positions.get(motor_id)
        where = f"{ticks:>6} ticks {float(ticks_to_rad(ticks)):+7.3f} rad" if ticks is not None else ""
        verdict = "ok"
        if not expected:
            verdict = ""
        elif motor_id not in expected:
            verdict, ok = "not in the rig file", False
        elif number != want:
            verdict, ok = f"WRONG MODEL: expected {model_name(want)}", False
        rows.append(f"  {motor_id:>3}  {model_name(number):<12} {firmware:>3}  {joint:<16} {where:>22}  {verdict}")
    return rows, ok


def _scan_arm(arm: RigArm) -> tuple[list[str], bool]:
    header = f"{arm.name} ({arm.role}, {arm.spec.kind}) on {arm.port} at {arm.baud} baud"
    expected = {m.motor_id: (m.joint or "", m.model.model_number) for m in arm.spec.motors()}
    try:
        found = scan_port(arm.port, [arm.baud]).get(arm.baud, {})
        rows, ok = _motor_rows(arm.port, arm.baud, found, expected)
    except DynamixelError as exc:
        return [header, f"  ERROR: {exc}"], False
    if not found:
        rows.insert(0, f"  nothing answered: try 'tandem-scan --port {arm.port} --baud all'")
    return [header, *rows], ok


def scan_rig(arms: list[RigArm]) -> bool:
    with ThreadPoolExecutor(max_workers=len(arms)) as pool:  # buses are independent: scan them together
        results = list(pool.map(_scan_arm, arms))
    print(f"  {'ID':>3}  {'model':<12} {'fw':>3}  {'joint':<16} {'present position':>22}")
    for lines, _ in results:
        print("\n".join(lines))
    return all(ok for _, ok in results)


def scan_one_port(port: str, bauds: list[int]) -> bool:
    print(f"scanning {port} at {', '.join(map(str, bauds))} baud ...", flush=True)
    found_any = False
    for baud, found in scan_port(port, bauds).items():
        found_any = True
        print(f"{port} at {baud} baud: {len(found)} motor(s)")
        print("\n".join(_motor_rows(port, baud, found, {})[0]))
    if not found_any:
        print(f"{port}: no motor answered at any of those rates. Check power and cabling.")
    return found_any


PROG = "tandem-scan"


def baud_choice(text: str) -> str:
    if text == "all" or (text.isdigit() and int(text) in BAUD_RATES):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not 'all' or one of {', '.join(map(str, BAUD_RATES))}")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Ping every Dynamixel bus of a rig and print each motor found: ID, model, firmware, joint and present "
        "position, checked against what the rig expects. Exits 1 when a motor is missing, of the wrong model, "
        "or not in the rig file.",
        "With --rig sim (the default) the four arms are virtual buses that speak Protocol 2.0 on "
        "pseudo-terminals, so this runs with no hardware. With --port it searches one serial port instead, at "
        "one or all baud rates."))
    add_rig_argument(parser)
    parser.add_argument("--port", help="scan this serial port only, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...")
    parser.add_argument("--baud", type=baud_choice,
                        help=f"with --port: a baud rate, or 'all' for {', '.join(map(str, BAUD_RATES))}; "
                        "unset: all")
    add_verbose_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.port:
        bauds = list(BAUD_RATES) if args.baud in (None, "all") else [int(args.baud)]
        return 0 if scan_one_port(args.port, bauds) else 1
    if args.baud is not None:
        raise UsageError(f"--baud {args.baud} needs --port: a rig's buses are scanned at the baud rates its rig "
                         "file gives")
    with virtual_buses(rig_from_args(args)) as (rig, buses):
        if buses:
            print(f"rig {rig.name}: {len(buses)} virtual Dynamixel buses started")
        return 0 if scan_rig(list(rig.arms)) else 1


def scan_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args), interrupted="interrupted")


if __name__ == "__main__":
    sys.exit(scan_main())
