"""Every virtual arm of a rig served from one child process, with an optional scripted leader motion.

The buses run outside the control loop's process, as real motors do, so the
loop's timing is not bent by the emulator sharing its GIL. A leader motion
moves the leader arms' shafts, standing in for the person at the leaders.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import ExitStack
from typing import Any

from robot.rig import Rig, RigArm
from robot.sim.child_process import ChildProcess, serve
from robot.sim.hand import pose_arm
from robot.sim.virtual_arm import gripper_angle, virtual_arm_bus
from robot.sim.virtual_bus import VirtualBus

LEADER_MOTIONS = ("still", "sine")


def sine_pose(arm: RigArm, t: float, fade_in_s: float = 10.0) -> dict[str, float]:
    """A smooth wave through every joint (0.3 Hz, up to +-0.4 rad) and the gripper closing and opening.

    It starts from rest (the kind's rest pose, where the virtual arm starts, gripper open) and fades in, as a
    person who first holds still while the followers come to the leaders' pose.
    """
    gain = min(1.0, t / fade_in_s)
    phase = 0.0 if arm.side == "left" else math.pi / 3
    rest = arm.spec.rest_angles()
    pose = {j.name: rest.get(j.name, 0.0) + gain * 0.4 * math.sin(2 * math.pi * 0.3 * t + 0.7 * i + phase)
            for i, j in enumerate(arm.spec.joints)}
    pose[arm.spec.gripper] = gripper_angle(arm.spec, 1 - gain * (0.5 - 0.5 * math.cos(2 * math.pi * 0.2 * t + phase)))
    return pose


def _move_leaders(buses: dict[str, VirtualBus], leaders: list[RigArm], stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.wait(0.005):
        t = time.monotonic() - start
        for arm in leaders:
            pose_arm(buses[arm.name], arm.spec, sine_pose(arm, t))


def _serve(arms: list[RigArm], motion: str, conn: Any) -> None:
    with ExitStack() as stack:
        buses = {a.name: stack.enter_context(virtual_arm_bus(a.name, a.spec, baud=a.baud)) for a in arms}
        stop = threading.Event()
        mover = None
        if motion == "sine":
            leaders = [a for a in arms if a.role == "leader"]
            mover = threading.Thread(target=_move_leaders, args=(buses, leaders, stop), daemon=True)
            mover.start()
        conn.send({name: bus.port for name, bus in buses.items()})
        try:
            serve(conn, lambda request: getattr(buses[request[0]], request[1])(*request[2]))
        finally:
            stop.set()
            if mover is not None:
                mover.join()


class VirtualRigProcess:
    """Context manager: start() gives the rig with its virtual arms on live pseudo-terminals."""

    def __init__(self, rig: Rig, *, leader_motion: str = "still") -> None:
        if leader_motion not in LEADER_MOTIONS:
            raise ValueError(f"leader motion {leader_motion!r} is not one of {', '.join(LEADER_MOTIONS)}")
        self.rig = rig
        virtual = [a for a in rig.arms if a.virtual]
        self._child = ChildProcess(_serve, (virtual, leader_motion), f"virtual-rig-{rig.name}")

    def start(self) -> Rig:
        return self.rig.with_ports(self._child.start())

    def call(self, arm: str, method: str, *args: Any) -> Any:
        """Run VirtualBus.<method>(*args) on one arm's bus in the child, e.g. call("follower_left", "drop_next", 2)."""
        return self._child.request((arm, method, args))

    def stop(self) -> None:
        self._child.stop()

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
