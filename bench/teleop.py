"""The teleop loop on virtual buses through the real driver: the sim rig's 4 arms x 9 motors at 1 Mbps, or any
rig file or preset run virtual (`--rig koch --rig aloha2`: its models, IDs, baud and control rate).

Prints, for each rig, the loop at the rig's control rate: achieved rate, period and period error
(p50, p99, max), overruns, and the step's own work time (read 4 arms, map, clamp,
write 2 followers). Then the same loop unthrottled (a clock that never sleeps):
the highest rate it can run. Both with each arm's bus I/O on its own thread, and,
as the baseline in the same run, one bus after another.

The virtual buses run in their own process with the leaders moving (sine), so the
emulator does not share the loop's GIL. They add no USB latency: on hardware add
the FTDI latency timer (1 ms when set as docs/hardware.md says) per transaction.

    python bench/teleop.py [--seconds 20] [--rig sim --rig koch ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

# This file's own directory comes first on sys.path and its name would hide the teleop package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from calibration.connection import connect  # noqa: E402
from robot.clock import RealClock  # noqa: E402
from robot.commands import rig_argument  # noqa: E402
from robot.loop import ControlLoop, Step  # noqa: E402
from robot.rig import load_rig  # noqa: E402
from robot.sim.rig_process import VirtualRigProcess  # noqa: E402
from teleop.controller import TeleopController  # noqa: E402


class NoWaitClock(RealClock):
    def sleep_until(self, t: float) -> None:
        pass


def measure(rig, seconds: float, clock: RealClock, parallel: bool) -> dict[str, float]:
    # The emulator shares this machine's 2 cores with the loop: unthrottled, it can be starved for longer than
    # the default 12 ms read deadline. That is not a lost packet, so the deadline is wider here; retries are counted.
    with connect(rig, say=lambda _: None, read_deadline_s=0.05) as connected:
        work = []

        def record_work(step: Step) -> None:
            work.append(clock.now() - step.t)

        loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(), clock,
                           rate_hz=rig.control_hz, observers=[record_work], parallel_io=parallel)
        try:
            loop.approach(3.0, 3.0)  # fast enough to catch the moving leaders; nobody stands by a virtual arm
            loop.reset_stats()  # measure teleop only
            work.clear()
            end = clock.now() + seconds
            loop.run(lambda step: step.t >= end)
        finally:
            loop.close()
        s = loop.summary()
        retries = sum(a.bus.failed_reads for a in connected.arms.values())
    w = np.array(work) * 1e3
    return {"summary": s, "work_p50": float(np.percentile(w, 50)), "work_p99": float(np.percentile(w, 99)),
            "retries": retries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run (default 20)")
    parser.add_argument("--rig", action="append", type=rig_argument,
                        help="a rig file or preset, run virtual; repeat to compare rigs (default: sim)")
    args = parser.parse_args()
    print(f"{'rig':<10} {'run':<20} {'io':<10} {'rate Hz':>8} {'mean ms':>8} {'err p50':>8} {'err p99':>8} "
          f"{'err max':>8} {'overruns':>8} {'work p50':>8} {'work p99':>8} {'retries':>7}")
    for name in args.rig or ["sim"]:
        with tempfile.TemporaryDirectory() as empty:  # no calibration files: the virtual arms' factory calibration
            rig = replace(load_rig(name).as_virtual(), calibration_dir=Path(empty))
            measure_rig(rig, args.seconds)


def measure_rig(rig, seconds: float) -> None:
    with VirtualRigProcess(rig, leader_motion="sine") as live:
        motors = sum(len(a.spec.motors()) for a in live.arms)
        bauds = sorted({a.baud for a in live.arms})
        print(f"# {rig.name}: {len(live.arms)} arms, {motors} motors, {rig.control_hz:g} Hz, virtual buses at "
              f"{'/'.join(f'{b:,}' for b in bauds)} baud in their own process, {seconds:g} s per run")
        rows = {}
        for run, clock in (("control rate", RealClock()), ("unthrottled", NoWaitClock())):
            for parallel in (True, False):
                r = measure(live, seconds, clock, parallel)
                s = r["summary"]
                io = "parallel" if parallel else "sequential"
                rows[(run, io)] = r
                errors = (f"{s.error_p50_ms:>8.3f} {s.error_p99_ms:>8.3f} {s.error_max_ms:>8.3f}"
                          if clock.__class__ is RealClock else f"{'-':>8} {'-':>8} {'-':>8}")
                print(f"{rig.name:<10} {run:<20} {io:<10} {s.rate_hz:>8.2f} {s.mean_ms:>8.3f} {errors} "
                      f"{s.overruns:>8} {r['work_p50']:>8.3f} {r['work_p99']:>8.3f} {r['retries']:>7}")
        fast = rows[("unthrottled", "parallel")]["summary"].rate_hz
        slow = rows[("unthrottled", "sequential")]["summary"].rate_hz
        print(f"{rig.name}: unthrottled rate, parallel / sequential bus I/O: {fast / slow:.2f}x")


if __name__ == "__main__":
    main()
