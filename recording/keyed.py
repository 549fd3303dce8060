"""Recording at the rig, driven by the person: start by key or by closing every leader gripper, stop on time
or key, re-record or discard the last episode, and a check of the loop rate.

It is one observer of the control loop, which keeps running between episodes
(the person keeps the arms), so the next episode can start as soon as the
last one is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from calibration.connection import ConnectedRig
from recording.dataset import Dataset
from recording.layout import StateLayout
from recording.session import EpisodeSlot, ProgressLine, RecordOptions
from robot.cameras import Camera
from robot.clock import PeriodStats
from robot.commands import STOP_KEYS, interrupts_deferred
from robot.loop import Step

START_KEYS = ("space", "enter")
STOP_KEY = "s"
RERECORD_KEY = "r"
DISCARD_KEY = "d"
QUIT_KEYS = STOP_KEYS
GESTURE_CLOSED = 0.15  # every leader gripper at most this open (0 closed .. 1 open) starts an episode
GESTURE_REARM = 0.5  # ...once they have been opened past this since the last episode


class KeyedRecording:
    def __init__(self, dataset: Dataset, layout: StateLayout, cameras: Mapping[str, Camera], options: RecordOptions,
                 *, episodes: int, steps: int, rate_hz: float, keys: Callable[[], list[str]],
                 leader_grippers: Callable[[Step], list[float]] | None, start_keys: tuple[str, ...] = START_KEYS,
                 listening: bool = True, task_description: str = "", say: Callable[[str], None] = print) -> None:
        self.dataset = dataset
        self.task_description = task_description
        self.layout = layout
        self.cameras = cameras
        self.options = options
        self.episodes = episodes
        self.steps = steps
        self.rate_hz = rate_hz
        self.keys = keys
        self.leader_grippers = leader_grippers  # None: start by key only
        self.start_keys = start_keys  # empty: start by the gesture only
        self.listening = listening  # False: no key backend, so no key is offered (Ctrl-C ends the session)
        self.say = say
        self.saved: list[int] = []
        self.slot: EpisodeSlot | None = None
        self.progress: ProgressLine | None = None
        self.stats: PeriodStats | None = None
        self.asking: int | None = None  # an episode index waiting for keep (y) or discard (n)
        self.done = False
        self._armed = True
        self.prompt()

    def prompt(self) -> None:
        ways = ["press space"] if self.start_keys else []
        if self.leader_grippers is not None:
            ways.append("close every leader gripper")
        keys = (f"{RERECORD_KEY}: re-record the last, {DISCARD_KEY}: discard the last, {QUIT_KEYS[0]}: quit"
                if self.listening else "Ctrl-C: quit")
        self.say(f"episode {len(self.saved) + 1}/{self.episodes}: {' or '.join(ways)} to start ({keys})")

    # -- the loop's observer and stop condition ----------------------------------------------------
    def __call__(self, step: Step) -> None:
        keys = self.keys()
        if self.slot is not None:
            self._record(step, keys)
        elif self.asking is not None:
            self._ask(keys)
        else:
            self._wait(step, keys)

    def until(self, step: Step) -> bool:
        return self.done

    def close(self) -> None:
        """Stop now: an episode being recorded is kept, as far as it got (discarded if its writing failed)."""
        if self.slot is not None and self.slot.writer.failed:
            self.slot, slot = None, self.slot
            slot.discard()
            self.progress.end()
        elif self.slot is not None:
            self._finish("stopped by the operator")

    # -- states -------------------------------------------------------------------------------------
    def _wait(self, step: Step, keys: list[str]) -> None:
        if any(k in QUIT_KEYS for k in keys):
            self.done = True
            return
        if self.saved and RERECORD_KEY in keys:
            self._drop_last("to re-record it")
            self.prompt()
        elif self.saved and DISCARD_KEY in keys:
            self._drop_last("")
            self.prompt()
        gesture = False
        if self.leader_grippers is not None:
            openings = self.leader_grippers(step)
            if not self._armed and min(openings) > GESTURE_REARM:
                self._armed = True
            gesture = self._armed and max(openings) <= GESTURE_CLOSED
        if gesture or any(k in self.start_keys for k in keys):
            self._armed = False
            self._start()
            self._record(step, [])

    def _start(self) -> None:
        with interrupts_deferred():  # made and owned at once, so close() always finds the writer it must end
            self.slot = EpisodeSlot(self.dataset, self.layout, self.cameras, self.options,
                                    task_description=self.task_description)
            self.progress = ProgressLine(self.slot, self.steps)
        self.stats = PeriodStats(1.0 / self.rate_hz)
        early = f"; {STOP_KEY} stops early" if self.listening else ""
        self.say(f"recording episode {self.slot.index} ({self.steps / self.rate_hz:.0f} s{early})")

    def _record(self, step: Step, keys: list[str]) -> None:
        self.stats.record(step.t)
        self.slot.recorder(step)
        self.progress(step)
        if any(k in QUIT_KEYS for k in keys):
            self._finish("stopped by the operator (quit)")
            self.done = True
        elif STOP_KEY in keys:
            self._finish("stopped by the operator")
        elif self.slot.recorder.steps >= self.steps:
            self._finish("time")

    def _finish(self, reason: str) -> None:
        slot, self.slot = self.slot, None
        self.progress.end()
        episode, summary = slot.finish(loop=self.stats.summary(), rate_hz=self.rate_hz, options=self.options,
                                       stop_reason=reason)
        self.saved.append(episode.index)
        self.say(f"episode {episode.index}: {episode.length} steps, {episode.fps or 0:.1f} Hz, "
                 f"{summary.dropped} dropped, {summary.bytes / 1e6:.1f} MB, written in {summary.close_s:.2f} s")
        if episode.flagged and not self.done and not self.listening:
            self.say(f"episode {episode.index} is suspect: {episode.flagged}; kept (no keys to ask with), "
                     "tandem-inspect lists it as flagged")
        elif episode.flagged and not self.done:
            self.asking = episode.index
            self.say(f"episode {episode.index} is suspect: {episode.flagged}. Keep it? y / n")
            return
        self._next()

    def _ask(self, keys: list[str]) -> None:
        if "y" in keys:
            self.asking = None
            self._next()
        elif "n" in keys:
            self.asking = None
            self._drop_last("")
            self._next()

    def _next(self) -> None:
        if len(self.saved) >= self.episodes:
            self.done = True
        elif not self.done:
            self.prompt()

    def _drop_last(self, why: str) -> None:
        index = self.saved.pop()
        self.dataset.remove(index)
        self.say(f"episode {index} discarded{' ' + why if why else ''}")


def leader_grippers(connected: ConnectedRig) -> Callable[[Step], list[float]]:
    """Each leader's gripper opening (0 closed .. 1 open), from a loop step: the start gesture's input."""
    leaders = [(a.name, connected.arms[a.name].spec.gripper_index, connected.calibrations[a.name])
               for a in connected.rig.leaders]

    def openings(step: Step) -> list[float]:
        return [float(cal.gripper_normalized(step.states[name].position[i])) for name, i, cal in leaders]

    return openings
