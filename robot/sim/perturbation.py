"""Pushes on the simulated followers: a smooth random offset added to each arm joint's target in the world.

The operator's leaders (and so the recorded actions) keep the expert's targets,
while the followers, the cameras and the expert itself see the arms pushed off
them. Demos recorded so show states a policy drifts into, each labelled with
what the expert commands there (as DART's are: Laskey et al., 2017, "Noise
injection for robust imitation learning"). The offset is an Ornstein-Uhlenbeck process per joint: its
spread is `std_rad` and it forgets within about `seconds`, so a push lasts long
enough to move the arm, as a nudge would, instead of averaging out in one step.

An arm is pushed only while the expert says it moves freely (Expert.free: on
its way above a part, lifting, the start of a carry; 36-54 of an insertion
demo's 400 steps per arm). Where it goes down to grasp, lines parts up or hands
over, it needs millimetres, and pushes there failed most insertion demos in a
first trial; there the push fades out instead (0.28-0.94 of it is left when the
part is lifted, 1-19 steps after the descent starts). So pushed by 0.03 rad the
expert still inserts on 48/50 seeds through the whole stack (50/50 unpushed).
`python3 bench/sim.py --tasks insertion --perturb 0.03` gives these figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from robot.sim.world import CONTROL_DT, SIDES

ARM_JOINTS = 6  # the grippers are not pushed: a dropped part teaches nothing about recovering a reach
SECONDS = 0.3  # the default time constant: long enough to move an arm, short enough to fade before a grasp


class Perturbation:
    def __init__(self, std_rad: float, seconds: float = SECONDS) -> None:
        if not (math.isfinite(std_rad) and std_rad >= 0):
            raise ValueError(f"perturbation: std {std_rad!r} rad must be a finite number >= 0")
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"perturbation: time constant {seconds!r} s must be a finite number > 0")
        self.std_rad = std_rad
        self.keep = math.exp(-CONTROL_DT / seconds)  # per control step, the share of the offset that stays
        self.reset(0)

    def reset(self, seed: int) -> None:
        """A new episode: no push yet, and the pushes to come drawn from the episode's seed (reproducible)."""
        self.rng = np.random.default_rng([seed, 0x0D0A7])  # not the world's own stream for this seed
        self.offset = {side: np.zeros(ARM_JOINTS) for side in SIDES}

    def step(self, free: Mapping[str, bool]) -> dict[str, np.ndarray]:
        """One control step on: each arm's joint offsets (rad), with spread std_rad while the arm is `free` and
        fading towards 0 while it is not."""
        fresh = self.std_rad * math.sqrt(1 - self.keep ** 2)
        for side in SIDES:
            noise = self.rng.standard_normal(ARM_JOINTS)  # drawn on every step: later pushes keep their seed
            self.offset[side] = self.keep * self.offset[side] + (fresh * noise if free[side] else 0.0)
        return self.offset
