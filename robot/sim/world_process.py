"""The simulated rig in a child process: the world, its virtual buses and cameras, and a control channel.

The control loop's process talks to the motors over their pseudo-terminals (the
real driver), reads camera frames from shared memory, and uses this channel to
advance the world (SimClock), reset it to a seed, switch the operator, and read
the task's reward. The child leaves with its parent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from robot.rig import Rig
from robot.sim.child_process import ChildProcess, serve
from robot.sim.perturbation import SECONDS
from robot.sim.render_style import DEFAULT_RENDER, render_style
from robot.sim.shared_frames import SharedFrame
from robot.sim.sim_camera import SimCamera
from robot.sim.world import CAMERAS


def _serve(rig: Rig, task: str, image_size: tuple[int, int], frames: dict[str, str], operator: str, render: str,
           conn: Any) -> None:
    from robot.sim.world_rig import WorldRig  # MuJoCo is imported in the child only

    with ExitStack() as stack:
        world = WorldRig(rig, task, stack, image_size=image_size, frames=frames, operator=operator, render=render)
        conn.send({name: bus.port for name, bus in world.buses.items()})

        def answer(request: tuple) -> Any:
            kind, *args = request
            if kind == "bus":
                arm, method, call_args = args
                return getattr(world.buses[arm], method)(*call_args)
            return getattr(world, kind)(*args)

        serve(conn, answer)


class SimWorldProcess:
    """Context manager: entering gives the rig with live ports; `cameras` reads the rendered frames."""

    # for connect(): simulated time stands still while the host waits, so a reply that is late in wall
    # time on a loaded machine is no fault (the world process may wait for a core); only a motor that never
    # answers is. 0.1 s was seen to run out with four busy processes on two cores.
    bus_options = {"read_deadline_s": 1.0}

    def __init__(self, rig: Rig, task: str, *, image_size: tuple[int, int] | None = None,
                 cameras: bool | Sequence[str] = True, operator: str = "expert", render: str = DEFAULT_RENDER) -> None:
        """`cameras`: True renders the rig's cameras, False none, or the names of those to render; `render`: how
        (robot/sim/render_style.py)."""
        render_style(render)  # an unknown style is refused here, not in the child
        self.rig = rig
        self.task = task
        self.render = render
        wanted = (lambda name: True) if cameras is True else (lambda name: cameras and name in cameras)
        names = [c.name for c in rig.cameras if c.name in CAMERAS and wanted(c.name)]
        if image_size is None:
            first = next((c for c in rig.cameras if c.name in names), None)
            image_size = (first.height, first.width) if first else (480, 640)
        self.image_size = image_size
        tag = uuid.uuid4().hex[:8]
        self._slots = {cam: SharedFrame(f"tandem-{tag}-{cam}", *image_size, create=True) for cam in names}
        frames = {cam: slot.name for cam, slot in self._slots.items()}
        self._child = ChildProcess(_serve, (rig, task, image_size, frames, operator, render), f"sim-world-{task}")
        self.cameras = {cam: SimCamera(cam, slot) for cam, slot in self._slots.items()}

    def start(self) -> Rig:
        try:
            return self.rig.with_ports(self._child.start(timeout_s=120))
        except BaseException:
            self.stop()
            raise

    def advance(self, t: float) -> float:
        return self._child.request(("advance", t))

    def reset(self, seed: int) -> Any:
        return self._child.request(("reset", seed))

    def status(self) -> Any:
        return self._child.request(("status",))

    def pedal(self) -> bool:
        """Whether the scripted operator holds the pedal down (operator mode "gated")."""
        return self._child.request(("pedal",))

    def set_operator(self, mode: str) -> None:
        """expert, gated, labels or off (robot/sim/world_rig.py)."""
        self._child.request(("set_operator", mode))

    def label(self) -> dict[str, tuple[list[float], float]] | None:
        """Operator mode "labels": per side, the joints and gripper opening the expert would command now."""
        return self._child.request(("label",))

    def set_gate(self, spec: str) -> None:
        """The scripted operator's gate rule for operator mode "gated" (robot/sim/gate.py)."""
        self._child.request(("set_gate", spec))

    def set_perturbation(self, std_rad: float, seconds: float = SECONDS) -> None:
        """Pushes on the followers from the next episode on (robot/sim/perturbation.py); std 0: none."""
        self._child.request(("set_perturbation", std_rad, seconds))

    def call(self, arm: str, method: str, *args: Any) -> Any:
        """VirtualBus.<method>(*args) on one arm's bus, e.g. call("follower_left", "drop_next", 2)."""
        return self._child.request(("bus", arm, method, args))

    def stop(self) -> None:
        self._child.stop()
        for slot in self._slots.values():
            slot.close()
        self._slots = {}

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
