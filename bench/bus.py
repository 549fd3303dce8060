"""One control cycle of a 9-motor arm through the real driver and dynamixel-sdk, against the virtual bus.

A cycle is what the teleop loop does per arm: one sync read of present
current+velocity+position of all 9 motors, one sync write of the 7 joints' goal
positions. Printed per baud rate and read mode: median and p99 of the measured
cycle, the wire time of the same bytes (10 bits per byte, return delay 0), and
measured/wire. The virtual bus runs in its own process, so it does not share a
GIL with the driver; it adds no USB latency, so on hardware add the FTDI latency
timer (1 ms when set as docs/hardware.md says) per transaction.

    python bench/bus.py [--cycles 2000]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from robot.arm import Arm
from robot.arm_kinds import builtin_kinds
from robot.dynamixel.bus import STATE_LENGTH
from robot.sim.bus_process import VirtualBusProcess
from robot.sim.virtual_arm import virtual_arm_motors


def wire_seconds(baud: int, n_read: int, n_write: int, fast: bool) -> float:
    """Bytes on the wire for one cycle, times 10 bits per byte."""
    read_instruction = 14 + n_read
    if fast:
        read_status = 8 + n_read * (STATE_LENGTH + 4)  # one packet: header..ERR of first, then per motor
    else:
        read_status = n_read * (11 + STATE_LENGTH)
    write_instruction = 14 + n_write * 5
    return (read_instruction + read_status + write_instruction) * 10.0 / baud


WARM_UP_CYCLES = 50


def measure(baud: int, fast: bool, cycles: int) -> dict[str, float]:
    spec = builtin_kinds()["viperx_300_6dof"]
    make = functools.partial(virtual_arm_motors, spec, baud=baud)
    with VirtualBusProcess(make, name=f"bench-{baud}") as virtual:
        arm = Arm.on_port("follower", spec, virtual.port, baud=baud, fast_sync_read=fast).open()
        for motor_id in arm.bus.ids:
            arm.bus.configure(motor_id)  # Return Delay Time 0
        arm.set_torque(True)
        goal = np.zeros(len(arm.joint_names))
        times = np.empty(cycles)
        for i in range(cycles + WARM_UP_CYCLES):
            start = time.perf_counter()
            arm.read()
            arm.write_positions(goal)
            if i >= WARM_UP_CYCLES:
                times[i - WARM_UP_CYCLES] = time.perf_counter() - start
            goal[0] = 0.2 * np.sin(i / 50.0)
        retries = arm.bus.failed_reads
        arm.set_torque(False)
        arm.close()
    wire = wire_seconds(baud, len(arm.bus.ids), len(arm.joint_names), fast)
    return {"median": float(np.median(times)), "p99": float(np.percentile(times, 99)), "wire": wire,
            "retries": retries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    args = parser.parse_args()
    print(f"9-motor ViperX 300 arm, {args.cycles} cycles each (sync read 126..135 + sync write goals)")
    print(f"{'baud':>9}  {'read':<15} {'median ms':>9} {'p99 ms':>8} {'wire ms':>8} {'median/wire':>11} "
          f"{'retries':>7}")
    for baud in (1_000_000, 4_000_000):
        for fast in (True, False):
            r = measure(baud, fast, args.cycles)
            mode = "Fast Sync Read" if fast else "Sync Read"
            print(f"{baud:>9}  {mode:<15} {r['median'] * 1e3:>9.3f} {r['p99'] * 1e3:>8.3f} "
                  f"{r['wire'] * 1e3:>8.3f} {r['median'] / r['wire']:>11.2f} {r['retries']:>7}")


if __name__ == "__main__":
    main()
