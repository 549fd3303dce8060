"""The policy in the control loop, and the takeover state machine around it.

`PolicyActions` gives the followers' targets each step: it posts observations
to the inference (sync or async), adds the chunks that come back to the
ensembler, and asks the ensembler for this step's action. When no chunk covers
the step yet (async start, or just after a takeover) the followers hold their
last targets.

`DeployController` is the loop's controller: AUTONOMOUS -> (pedal down) ->
HUMAN -> (pedal up) -> AUTONOMOUS. While autonomous the leaders are torqued and
follow the followers, so the person's hands find the leader where the follower
is; while human, the leaders are limp and drive the followers as in teleop. On
hand-back the ensembler is cleared and the policy starts again from the state
as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

import numpy as np

from calibration.connection import POSITION
from calibration.joint_map import JointMap
from deploy.ensemble import ActionEnsembler
from deploy.inference import AsyncInference, ChunkPredictor, Observation, SyncInference
from recording.layout import StateLayout
from robot.arm import Arm, ArmState
from robot.cameras import Camera
from robot.loop import ControlLoop

log = logging.getLogger(__name__)


class PolicyStalledError(RuntimeError):
    """The policy has given no usable action for longer than the rollout allows."""


class PolicyActions:
    def __init__(self, predictor: ChunkPredictor, inference: SyncInference | AsyncInference,
                 ensembler: ActionEnsembler, layout: StateLayout, cameras: Mapping[str, Camera],
                 *, max_uncovered_steps: int = 150) -> None:
        self.predictor = predictor
        self.inference = inference
        self.ensembler = ensembler
        self.layout = layout
        self.cameras = {name: cameras[source] for name, source in predictor.camera_sources.items()}
        self.max_uncovered_steps = max_uncovered_steps
        self.step = 0  # policy steps since the start (one per targets() call)
        self.uncovered_steps = 0  # steps with no chunk yet: the followers held
        self.dropped_chunks = 0  # chunks refused for NaN or infinite values
        self._uncovered_run = 0  # uncovered steps in a row, counted once a chunk has come back
        self._answered = False  # a chunk (usable or not) came back since the start or the last restart
        self.newest: tuple[int, np.ndarray] | None = None  # the newest usable chunk and the step it starts at
        self.action: np.ndarray | None = None  # the last step's action (ensembled), None while no chunk covered it

    def observation(self, states: Mapping[str, ArmState]) -> Observation:
        frames = {name: camera.latest().image for name, camera in self.cameras.items()}
        return Observation(self.step, self.layout.qpos(states), self.predictor.images(frames))

    def targets(self, states: Mapping[str, ArmState]) -> dict[str, np.ndarray] | None:
        """This step's follower targets, or None while no chunk covers the step."""
        step = self.step
        if self.inference.wants(step):
            self.inference.post(self.observation(states))
        for start, chunk in self.inference.collect():
            self._answered = True
            if np.all(np.isfinite(chunk)):
                self.ensembler.add(start, chunk)
                self.newest = (start, chunk)
            else:  # where chunks enter: a NaN never reaches the ensembler, the followers or a dataset
                self.dropped_chunks += 1
                if self.dropped_chunks == 1:
                    log.warning("policy step %d: a chunk with NaN or infinite actions was dropped (reported once, "
                                "counted after); the followers hold while no chunk covers a step", start)
        self.step += 1
        action = self.action = self.ensembler.action(step)
        if action is None:
            self.uncovered_steps += 1
            self._uncovered_run += self._answered  # waiting for the first answer (a cold start) is no stall
            if self._uncovered_run > self.max_uncovered_steps:
                raise PolicyStalledError(
                    f"the policy gave no usable action for {self._uncovered_run} steps in a row "
                    f"({self.dropped_chunks} chunk(s) dropped as NaN or infinite so far); the followers held and "
                    "the rollout stopped. Check the checkpoint (tandem-train diverged?) and its normalization stats")
            return None
        self._uncovered_run = 0
        return self.layout.commands(action)

    def raw_action(self, step: int) -> np.ndarray | None:
        """The newest chunk's own action for policy step `step`, before ensembling; None where it does not reach."""
        if self.newest is None:
            return None
        start, chunk = self.newest
        return chunk[step - start] if 0 <= step - start < len(chunk) else None

    def restart(self) -> None:
        """Forget every chunk; the next observation starts the policy afresh."""
        self.newest = self.action = None
        self.ensembler.clear()
        self.inference.restart()
        self._uncovered_run = 0
        self._answered = False


class Mode(Enum):
    AUTONOMOUS = "autonomous"
    HUMAN = "human"


class DeployController:
    """The loop's controller during deploy; `set_mode` switches between the policy and the person."""

    def __init__(self, policy: PolicyActions, arms: Mapping[str, Arm], pairs: Sequence[tuple[str, str, JointMap]],
                 *, rate_hz: float = 50.0, leader_speed_rad_s: float = 2.0,
                 on_switch: Callable[[Mode], None] | None = None) -> None:
        self.policy = policy
        self.arms = dict(arms)
        self.pairs = list(pairs)
        self.on_switch = on_switch
        self.mode = Mode.HUMAN  # until start(): the leaders are limp
        self._held: dict[str, np.ndarray] = {}  # the followers' last targets, held while the policy has none
        # A leader closes in on its follower at a person-safe speed (it may be far off when the policy starts),
        # then keeps pace with it (the loop's per-step clamp still bounds every command).
        self._leader_step = leader_speed_rad_s / rate_hz
        self._leader_targets: dict[str, np.ndarray] = {}
        self._caught_up: set[str] = set()

    @property
    def leaders(self) -> list[str]:
        return [leader for leader, _, _ in self.pairs]

    def prepare_leaders(self) -> None:
        """Position mode on every leader motor, so torque on means "hold this goal" (EEPROM written only if needed)."""
        for leader in self.leaders:
            bus = self.arms[leader].bus
            bus.set_torque(False)
            for motor_id in bus.ids:
                bus.write_if_different(motor_id, "Operating Mode", POSITION)

    def targets(self, states: Mapping[str, ArmState]) -> dict[str, np.ndarray]:
        if self.mode is Mode.HUMAN:
            out = {follower: joint_map(states[leader].position) for leader, follower, joint_map in self.pairs}
            self._held = dict(out)
            return out
        out = self.policy.targets(states)
        if out is None:  # no chunk yet: hold (the gripper keeps its squeeze, not where the object stopped it)
            out = self._held or {follower: states[follower].position for _, follower, _ in self.pairs}
        self._held = dict(out)
        for leader, follower, joint_map in self.pairs:  # where the follower is sent, so a takeover finds it there
            previous = self._leader_targets[leader]
            gap = joint_map.inverse(out[follower]) - previous
            if not np.all(np.isfinite(gap)):
                continue  # the loop refuses the follower's target; the leader keeps its own
            if np.max(np.abs(gap)) <= self._leader_step:
                self._caught_up.add(leader)
            if leader not in self._caught_up:
                gap = np.clip(gap, -self._leader_step, self._leader_step)
            self._leader_targets[leader] = previous + gap
        return {**out, **self._leader_targets}

    def start(self, loop: ControlLoop) -> None:
        """Hand the followers to the policy (the leaders take the followers' pose and follow them)."""
        self._apply(Mode.AUTONOMOUS, loop)

    def set_mode(self, mode: Mode, loop: ControlLoop) -> None:
        """Pedal down (HUMAN) or up (AUTONOMOUS); the leaders' torque and the policy's memory follow."""
        if mode is self.mode:
            return
        self._apply(mode, loop)
        if self.on_switch is not None:
            self.on_switch(mode)

    def release_leaders(self, loop: ControlLoop) -> None:
        """The end of a rollout: leaders limp, the policy forgotten; start() begins the next one."""
        self._apply(Mode.HUMAN, loop)

    def _apply(self, mode: Mode, loop: ControlLoop) -> None:
        states = loop.read_all()
        for leader in self.leaders:
            arm = self.arms[leader]
            loop.commands.pop(leader, None)  # the loop clamps the leader's next command from where it is
            if mode is Mode.HUMAN:
                arm.set_torque(False)
            else:  # hold where it is first, then torque on: no jump; targets() brings it to its follower
                arm.write_positions(states[leader].position)
                arm.set_torque(True)
                self._leader_targets[leader] = states[leader].position
                self._caught_up.discard(leader)
        if mode is Mode.AUTONOMOUS:
            self.policy.restart()
        self.mode = mode
