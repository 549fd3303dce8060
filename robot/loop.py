"""The one control loop: read every arm, decide targets, clamp, write, hand a Step to observers.

Teleop, recording and deploy all run this loop; what differs is the controller
that turns the arms' states into targets (leaders through JointMaps in teleop, a
policy in deploy) and the observers (recorder, display, statistics). Each arm's
bus I/O runs on its own thread, so a step costs about one bus transaction, not
one per arm. The loop keeps absolute deadlines from its Clock: no drift, and a
step that runs long is counted as an overrun, never made up with a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robot.arm import Arm, ArmState, NonFiniteCommandError
from robot.clock import Clock, PeriodStats, PeriodSummary

log = logging.getLogger(__name__)


@dataclass
class Step:
    index: int
    t: float  # clock time the step started
    states: dict[str, ArmState]  # every arm, as read this step
    desired: dict[str, np.ndarray]  # what the controller asked for, rad
    commands: dict[str, np.ndarray]  # what was written after limits and the per-step clamp, rad
    clamped: bool  # the per-step clamp changed a command
    stats: PeriodStats = field(repr=False)


class Controller(Protocol):
    def targets(self, states: Mapping[str, ArmState]) -> dict[str, np.ndarray]: ...


Observer = Callable[[Step], None]


class TooFarError(RuntimeError):
    """A commanded arm is further from its target than the loop will move it on its own."""


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray


class ControlLoop:
    def __init__(
        self,
        arms: Mapping[str, Arm],
        controller: Controller,
        limits: Mapping[str, JointLimits],
        clock: Clock,
        *,
        rate_hz: float = 50.0,
        max_step_rad: float = 0.1,
        observers: Sequence[Observer] = (),
        parallel_io: bool = True,  # False: one bus after another (the baseline bench/teleop.py compares)
    ) -> None:
        self.arms = dict(arms)
        self.controller = controller
        self.limits = dict(limits)
        self.clock = clock
        self.period = 1.0 / rate_hz
        self.max_step_rad = max_step_rad
        self.observers = list(observers)
        self.stats = PeriodStats(self.period)
        self.commands: dict[str, np.ndarray] = {}  # last written, per commanded arm; always finite
        self.non_finite: dict[str, int] = {}  # steps an arm's target was refused as NaN/inf, per arm
        self.index = 0
        workers = max(1, len(self.arms)) if parallel_io else 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bus")
        self._next_deadline: float | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- parallel bus I/O ---------------------------------------------------------------------
    def read_all(self) -> dict[str, ArmState]:
        names = list(self.arms)
        return dict(zip(names, self._pool.map(lambda n: self.arms[n].read(), names), strict=True))

    def write_all(self, commands: Mapping[str, np.ndarray]) -> None:
        list(self._pool.map(lambda item: self.arms[item[0]].write_positions(item[1]), commands.items()))

    # -- one step -------------------------------------------------------------------------------
    def step(self, max_step_rad: float | None = None) -> Step:
        start = self.clock.now()
        if self._next_deadline is None:
            self._next_deadline = start  # the schedule is t0 + k * period from the first step's start
        self.stats.record(start)
        states = self.read_all()
        desired = self.controller.targets(states)
        commands, clamped = {}, False
        limit = self.max_step_rad if max_step_rad is None else max_step_rad
        for name, target in desired.items():
            previous = self.commands.get(name, states[name].position)
            target = np.clip(target, self.limits[name].lower, self.limits[name].upper)
            command = previous + np.clip(target - previous, -limit, limit)
            # checked before the clip too: it turns an infinite target into a joint limit
            if not (np.all(np.isfinite(desired[name])) and np.all(np.isfinite(command))):
                command = self._refuse_non_finite(name, desired[name], previous)
            clamped |= bool(np.any(command != target))
            commands[name] = command
        self.write_all(commands)
        self.commands.update(commands)
        step = Step(self.index, start, states, desired, commands, clamped, self.stats)
        self.index += 1
        for observe in self.observers:
            observe(step)
        return step

    def _refuse_non_finite(self, name: str, target: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """A NaN or infinite target: the arm holds its last good command, and the event is counted.

        The clamp state (self.commands) only ever holds finite values, so the arm moves again as soon
        as its controller gives finite targets (a takeover, a recovered policy).
        """
        self.non_finite[name] = self.non_finite.get(name, 0) + 1
        if self.non_finite[name] == 1:
            joints = [j for j, v in zip(self.arms[name].joint_names, np.asarray(target), strict=True)
                      if not np.isfinite(v)] or ["(a joint limit)"]
            log.warning("step %d: %s: non-finite target for %s refused; the arm holds its last command "
                        "(reported once, counted after)", self.index, name, ", ".join(joints))
        return previous.copy()

    def wait_for_next(self) -> None:
        """Sleep to the next deadline; if this step ran past it, count an overrun and re-anchor."""
        now = self.clock.now()
        self._next_deadline += self.period
        if now > self._next_deadline:
            self.stats.overrun()
            self._next_deadline = now  # start the next step now, then keep the period from here
            return
        self.clock.sleep_until(self._next_deadline)

    def run(self, until: Callable[[Step], bool], *, max_steps: int | None = None,
            max_step_rad: float | None = None) -> Step:
        """Step at the loop's rate until `until(step)` is true (or after max_steps); returns the last step."""
        first = self.index
        while True:
            step = self.step(max_step_rad)
            if until(step) or (max_steps is not None and step.index + 1 - first >= max_steps):
                return step
            self.wait_for_next()

    # -- start-up safety ------------------------------------------------------------------------
    def approach(self, speed_rad_s: float, refuse_above_rad: float, *, timeout_s: float = 30.0) -> int:
        """Move every commanded arm to its controller's target at a bounded joint speed; returns steps taken.

        Refuses (TooFarError, nothing moved) when a joint is more than `refuse_above_rad` away:
        a long unattended move is how arms hit the table or each other.
        """
        states = self.read_all()
        desired = self.controller.targets(states)
        far, non_finite = [], []
        for name, target in desired.items():
            gap = np.clip(target, self.limits[name].lower, self.limits[name].upper) - states[name].position
            gap = np.where(np.isfinite(target), gap, np.nan)  # the clip would turn an infinite target into a limit
            for joint, g, now in zip(self.arms[name].joint_names, gap, states[name].position, strict=True):
                if not np.isfinite(g):
                    non_finite.append(f"{name}.{joint}")
                elif abs(g) > refuse_above_rad:
                    far.append(f"  {name}.{joint}: at {now:+.2f} rad, target {now + g:+.2f} ({g:+.2f})")
        if non_finite:
            raise NonFiniteCommandError(f"the start pose is not finite for {', '.join(non_finite)}; nothing moved")
        if far:
            raise TooFarError(f"followers are more than {refuse_above_rad:.2f} rad from their targets; move them "
                              "closer by hand (torque is off) or move the leaders to match:\n" + "\n".join(far))
        step_rad = speed_rad_s * self.period
        if all(np.all(np.abs(t - states[n].position) <= self.max_step_rad) for n, t in desired.items()):
            return 0

        def arrived(step: Step) -> bool:  # from here the per-step clamp alone bounds the motion
            return all(np.all(np.abs(step.desired[n] - step.commands[n]) <= self.max_step_rad)
                       for n in step.commands)

        first = self.index
        last = self.run(arrived, max_steps=int(timeout_s / self.period), max_step_rad=step_rad)
        if not arrived(last):
            raise TooFarError(f"followers did not reach their targets within {timeout_s:.0f} s "
                              "(is the leader moving away, or a joint past its limits?)")
        return self.index - first

    def reset_stats(self) -> None:
        """Start the period statistics (and the deadline schedule) afresh, e.g. after the approach."""
        self.stats = PeriodStats(self.period)
        self._next_deadline = None

    def summary(self) -> PeriodSummary:
        return self.stats.summary()
