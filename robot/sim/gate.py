"""When the scripted operator steps on the pedal during a policy run: named, configurable gate rules.

A rule sees one `GateInput` per control step and says whether the pedal is
down. Rules (spec strings, as `--gate` takes them):

- `drift[:RAD[:STEPS]]`: the followers are more than RAD (default 0.5) from
  the joints the expert would command now, for STEPS (default 10) steps running.
- `dropped`: the object was lifted and is back on the table, not held.
- `stalled[:STEPS]`: the task's reward has not risen for STEPS (default 150) steps.
- `never`: the operator only watches.

Once down, the pedal stays down for `hold` steps of human control (default 100,
2 s) and until the reward is above what it was at takeover, or the task succeeds,
at most `max_hold` steps (default 300): a person takes over long enough to fix
the situation, then hands back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateInput:
    reward: int
    max_reward: int
    success: bool
    drift_rad: float  # largest |expert target - follower position| over the arm joints
    object_lifted: bool  # off the table
    object_held: bool  # touched by a gripper


@dataclass
class Gate:
    rule: str
    threshold: float = 0.0
    steps: int = 0
    hold: int = 100
    max_hold: int = 300
    pedal: bool = False
    presses: int = 0
    _count: int = 0
    _human_steps: int = 0
    _reward_at_press: int = 0
    _was_lifted: bool = False
    _best: int = 0
    _since_best: int = 0

    def update(self, x: GateInput) -> bool:
        """Feed one step; returns whether the pedal is down for the next step."""
        if self.pedal:
            self._human_steps += 1
            done = self._human_steps >= self.hold and (x.reward > self._reward_at_press or x.success)
            if done or self._human_steps >= self.max_hold:
                self.pedal = False
                self._count = self._since_best = 0
                self._was_lifted = x.object_lifted
        elif not x.success and self._triggered(x):
            self.pedal, self.presses = True, self.presses + 1
            self._human_steps, self._reward_at_press = 0, x.reward
        return self.pedal

    def _triggered(self, x: GateInput) -> bool:
        if self.rule == "drift":
            self._count = self._count + 1 if x.drift_rad > self.threshold else 0
            return self._count >= self.steps
        if self.rule == "dropped":
            dropped = self._was_lifted and not x.object_lifted and not x.object_held
            self._was_lifted = x.object_lifted or (self._was_lifted and not dropped)
            return dropped
        if self.rule == "stalled":
            if x.max_reward > self._best:
                self._best, self._since_best = x.max_reward, 0
            else:
                self._since_best += 1
            return self._since_best >= self.steps
        return False


RULES = {"drift": (0.5, 10), "dropped": (0.0, 0), "stalled": (0.0, 150), "never": (0.0, 0)}


def parse_gate(spec: str) -> Gate:
    """`drift`, `drift:0.4:5`, `dropped`, `stalled:200`, `never`."""
    name, *params = spec.split(":")
    if name not in RULES:
        raise ValueError(f"unknown gate rule {spec!r}; rules: {', '.join(RULES)} (e.g. drift:0.5:10, stalled:150)")
    threshold, steps = RULES[name]
    try:
        if len(params) > {"drift": 2, "stalled": 1}.get(name, 0):
            raise ValueError
        if name == "drift" and params:
            threshold = float(params[0])
            steps = int(params[1]) if len(params) > 1 else steps
        elif name == "stalled" and params:
            steps = int(params[0])
    except (ValueError, IndexError):
        raise ValueError(f"gate rule {spec!r}: bad parameters; use drift[:RAD[:STEPS]], stalled[:STEPS], "
                         "dropped or never") from None
    if threshold < 0 or steps < 0:
        raise ValueError(f"gate rule {spec!r}: parameters must not be negative")
    return Gate(name, threshold=threshold, steps=max(1, steps) if name in ("drift", "stalled") else 0)


def drift(expert_q: np.ndarray, follower_q: np.ndarray) -> float:
    return float(np.max(np.abs(expert_q - follower_q)))
