"""Virtual buses start and stop cleanly: no threads, ptys or processes left behind."""

import functools
import os
import threading

from robot.arm_kinds import builtin_kinds
from robot.dynamixel.bus import DynamixelBus
from robot.sim.bus_process import VirtualBusProcess
from robot.sim.virtual_arm import virtual_arm_bus, virtual_arm_motors

WIDOWX = builtin_kinds()["widowx_250_6dof"]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_in_process_bus_leaves_nothing_behind():
    fds, threads = _open_fds(), threading.active_count()
    with virtual_arm_bus("leader", WIDOWX) as vbus:
        port = vbus.port
        with DynamixelBus(port, WIDOWX.motors()) as bus:
            bus.read_state(deadline_s=0.5)  # lifecycle, not timing: a loaded machine must not fail it
    assert _open_fds() == fds
    assert threading.active_count() == threads
    assert not os.path.exists(port)  # the pty is gone with its bus


def test_bus_process_stops_and_its_child_exits():
    make = functools.partial(virtual_arm_motors, WIDOWX)
    with VirtualBusProcess(make, name="leader") as vbus:
        child = vbus._process
        with DynamixelBus(vbus.port, WIDOWX.motors()) as bus:
            vbus.call("drop_next", 1)
            # faults reach the child through call(); the deadline is loose for a loaded machine
            assert bus.read_state(deadline_s=0.5).attempts >= 2
    assert not child.is_alive() and child.exitcode == 0
