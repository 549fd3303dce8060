"""Time for the control loops: the Clock protocol, RealClock for hardware, and period statistics.

Loops keep a schedule of absolute deadlines (t0 + k * period) and call
`sleep_until(deadline)`, so a late step does not push every later step back:
no drift over a long run. SimClock (the simulated rig) implements the same
protocol by advancing the world instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class RealClock:
    """Wall time from perf_counter; sleeps in the OS until `spin_s` before the deadline, then spins.

    time.sleep alone wakes up to a millisecond or more late on a loaded machine;
    the final spin costs up to `spin_s` of one core per step and lands within
    microseconds of the deadline.
    """

    def __init__(self, spin_s: float = 0.001, *, counter: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spin_s = spin_s
        self._counter = counter
        self._sleep = sleep

    def now(self) -> float:
        return self._counter()

    def sleep_until(self, t: float) -> None:
        remaining = t - self._counter()
        if remaining > self.spin_s:
            self._sleep(remaining - self.spin_s)
        while self._counter() < t:
            pass


@dataclass(frozen=True)
class PeriodSummary:
    steps: int
    rate_hz: float  # achieved: steps per second over the run
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    error_p50_ms: float  # |period - nominal|
    error_p99_ms: float
    error_max_ms: float
    overruns: int  # steps whose work ran past the next step's deadline

    def line(self) -> str:
        return (f"{self.steps} steps at {self.rate_hz:.2f} Hz: period mean {self.mean_ms:.2f} ms, "
                f"p50 {self.p50_ms:.2f}, p99 {self.p99_ms:.2f}, max {self.max_ms:.2f} ms; "
                f"error p50 {self.error_p50_ms:.3f}, p99 {self.error_p99_ms:.3f}, max {self.error_max_ms:.3f} ms; "
                f"{self.overruns} overrun(s)")


class PeriodStats:
    """Step start times of a loop running at `period_s`; summary() gives what the loop achieved."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._starts: list[float] = []
        self.overruns = 0

    def record(self, start: float) -> None:
        self._starts.append(start)

    def overrun(self) -> None:
        self.overruns += 1

    @property
    def starts(self) -> list[float]:
        return list(self._starts)

    @property
    def steps(self) -> int:
        return len(self._starts)

    def last_period(self) -> float:
        return self._starts[-1] - self._starts[-2] if len(self._starts) > 1 else self.period_s

    def summary(self) -> PeriodSummary:
        starts = np.asarray(self._starts)
        periods = np.diff(starts) if starts.size > 1 else np.array([self.period_s])
        error = np.abs(periods - self.period_s)
        span = starts[-1] - starts[0] if starts.size > 1 else 0.0
        ms = 1e3
        return PeriodSummary(
            steps=len(starts),
            rate_hz=(len(starts) - 1) / span if span > 0 else 0.0,
            mean_ms=float(periods.mean() * ms),
            p50_ms=float(np.percentile(periods, 50) * ms),
            p99_ms=float(np.percentile(periods, 99) * ms),
            max_ms=float(periods.max() * ms),
            error_p50_ms=float(np.percentile(error, 50) * ms),
            error_p99_ms=float(np.percentile(error, 99) * ms),
            error_max_ms=float(error.max() * ms),
            overruns=self.overruns,
        )
