"""RealClock and the loop's deadline schedule, on a fake time source (no wall-clock assertions)."""

import pytest

from robot.clock import PeriodStats, RealClock
from robot.loop import ControlLoop


class FakeTime:
    def __init__(self):
        self.t = 100.0
        self.sleeps = []

    def counter(self):
        self.t += 1e-5  # every look at the clock costs a little
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds + 0.0004  # the OS wakes us late


def test_sleeps_in_the_os_then_spins_to_the_deadline():
    fake = FakeTime()
    clock = RealClock(spin_s=0.001, counter=fake.counter, sleep=fake.sleep)
    clock.sleep_until(100.020)
    assert fake.sleeps == [pytest.approx(0.019, abs=1e-4)]  # stopped sleeping 1 ms early
    assert 100.020 <= fake.t < 100.020 + 1e-4  # and spun to the deadline, not past it by the late wake-up


def test_no_sleep_when_the_deadline_is_close_or_past():
    fake = FakeTime()
    clock = RealClock(spin_s=0.001, counter=fake.counter, sleep=fake.sleep)
    clock.sleep_until(fake.t + 0.0005)
    clock.sleep_until(fake.t - 1.0)
    assert fake.sleeps == []


class Work:
    """A controller with no arms whose step takes the given times on the fake clock."""

    def __init__(self, fake, durations):
        self.fake, self.durations = fake, iter(durations)

    def targets(self, states):
        self.fake.t += next(self.durations)
        return {}


def _loop(durations):
    fake = FakeTime()
    loop = ControlLoop({}, Work(fake, durations), {}, RealClock(counter=fake.counter, sleep=fake.sleep),
                       rate_hz=50.0)
    return loop


def test_deadlines_do_not_drift():
    """Steps of uneven length stay on t0 + k * period."""
    loop = _loop([0.003 + 0.01 * (k % 3 == 0) for k in range(500)])
    loop.run(lambda step: False, max_steps=500)
    loop.close()
    starts = [loop.stats.starts[0], loop.stats.starts[-1]]
    assert starts[1] - starts[0] == pytest.approx(499 * 0.02, abs=1e-4)
    assert loop.stats.overruns == 0


def test_an_overrun_is_counted_and_not_made_up_with_a_burst():
    loop = _loop([0.05 if k == 3 else 0.002 for k in range(10)])  # step 3 takes two and a half periods
    loop.run(lambda step: False, max_steps=10)
    loop.close()
    assert loop.stats.overruns == 1
    starts = loop.stats.starts
    periods = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(periods[4:]) == pytest.approx(0.02, abs=1e-3)  # after it, a steady period again


def test_summary_figures():
    stats = PeriodStats(0.02)
    for k in range(101):
        stats.record(k * 0.02 + (0.001 if k == 50 else 0.0))
    s = stats.summary()
    assert s.steps == 101 and s.rate_hz == pytest.approx(50.0)
    assert s.max_ms == pytest.approx(21.0) and s.error_max_ms == pytest.approx(1.0)
    assert s.p50_ms == pytest.approx(20.0)
