"""Progress of a run of policy episodes: where the current episode is, the successes so far, the time left.

A loop observer during each episode. On a terminal one status line is
rewritten in place (at most a few times a second); in a log or a pipe a line
is printed every `every` steps, so a long evaluation is never silent.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from robot.loop import Step


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(self, episodes: int, steps: int | None, *, every: int = 50, rate_hz: float = 50.0,
                 gated: bool = False, out: TextIO | None = None, tty: bool | None = None) -> None:
        self.episodes = episodes
        self.steps = steps  # per episode; None: until a stop key (hardware)
        self.every = every
        self.rate_hz = rate_hz
        self.gated = gated  # show success with the operator's help beside the policy's own
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.episode = 0
        self.label = ""
        self.step = 0  # steps run in the current episode
        self.finished = self.judged = self.successes = self.helped_successes = 0  # judged: success known
        self._steps_before = 0  # steps of the finished episodes
        self._started = time.perf_counter()
        self._shown = 0.0

    def begin(self, label: str = "") -> None:
        self.episode += 1
        self.label = label
        self.step = 0

    def __call__(self, step: Step) -> None:
        self.step += 1
        if self.tty:
            now = time.perf_counter()
            if now - self._shown >= 0.25:
                self._shown = now
                self.out.write("\r" + self.line().ljust(100))
                self.out.flush()
        elif self.step % self.every == 0:
            print("  " + self.line(), file=self.out, flush=True)

    def end(self, success: bool | None = None, *, with_help: bool | None = None) -> None:
        """An episode finished: `success` by the policy alone (None: unknown, as on hardware), `with_help` at
        its end (gated runs)."""
        self.clear()
        self._steps_before += self.step
        self.finished += 1
        if success is None:
            return
        self.judged += 1
        self.successes += bool(success)
        self.helped_successes += bool(success if with_help is None else with_help)

    def clear(self) -> None:
        """Wipe the status line, so a printed line starts clean."""
        if self.tty:
            self.out.write("\r" + " " * 100 + "\r")
            self.out.flush()

    def line(self) -> str:
        where = f"episode {self.episode}/{self.episodes}" + (f" ({self.label})" if self.label else "")
        if self.steps:
            where += f": step {self.step}/{self.steps}"
        else:
            where += f": step {self.step} ({self.step / self.rate_hz:.0f} s)"
        parts = [where]
        if self.judged:
            so_far = f"success so far {self.successes}/{self.judged}"
            if self.gated:
                so_far += f" alone, {self.helped_successes}/{self.judged} with help"
            parts.append(so_far)
        done = self._steps_before + self.step
        if self.steps and done:
            elapsed = time.perf_counter() - self._started
            left = self.episodes * self.steps - done
            parts.append(f"{duration(elapsed)} elapsed, ETA {duration(elapsed / done * left)}")
        return ", ".join(parts)
