"""Seeded episodes on the simulated rig: the scripted operator at the leaders, the real loop and driver.

Each episode resets the world to a seed, then runs the same teleop loop as on
hardware, timed by a SimClock, for a fixed number of steps; the world reports
the task's reward. Used by `tandem-teleop --task` and the sim benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from calibration.connection import ConnectedRig
from robot.loop import ControlLoop, Observer
from robot.sim.sim_clock import SimClock
from robot.sim.world_process import SimWorldProcess
from teleop.controller import TeleopController

MAX_REWARD = 4  # gym-aloha's tasks: 4 stages, success = all four


def reward_text(max_reward: int, success: bool, reached: str = "") -> str:
    """'max reward 3/4 (lifted), failure': how every command reports a simulated episode's outcome."""
    stage = f" ({reached})" if reached else ""
    return f"max reward {max_reward}/{MAX_REWARD}{stage}, {'success' if success else 'failure'}"


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    steps: int
    max_reward: int
    success: bool
    wall_s: float

    def line(self) -> str:
        return (f"seed {self.seed}: {reward_text(self.max_reward, self.success)} "
                f"({self.steps} steps in {self.wall_s:.1f} s wall, {self.steps / self.wall_s:.0f} steps/s)")


def run_episode(world: SimWorldProcess, connected: ConnectedRig, seed: int, steps: int, *,
                max_step_rad: float = 0.1, observers: Sequence[Observer] = (), realtime: bool = False) -> EpisodeResult:
    status = world.reset(seed)
    clock = SimClock(world, status.time, realtime=realtime)
    loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(), clock,
                       rate_hz=connected.rig.control_hz, max_step_rad=max_step_rad, observers=observers)
    start = time.perf_counter()
    try:
        loop.run(lambda step: False, max_steps=steps)
    finally:
        loop.close()
    status = world.status()
    return EpisodeResult(seed, steps, status.max_reward, status.success, time.perf_counter() - start)


