"""One policy run on a connected rig: ramp to the start pose, the policy in the loop, takeovers, statistics.

Used by tandem-deploy (hardware, or the simulated rig) and tandem-eval (seeded
rollouts in the simulated world). The loop is the one teleop and recording
run, with the same joint limits and per-step clamp; an exception anywhere
leaves the followers to `connect()`, which holds them where they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.connection import ConnectedRig
from deploy.corrections import TakeoverRecorder
from deploy.ensemble import ActionEnsembler
from deploy.inference import AsyncInference, ChunkPredictor, SyncInference
from deploy.runner import DeployController, Mode, PolicyActions
from recording.layout import StateLayout
from recording.playback import ReplayController
from robot.cameras import Camera
from robot.clock import Clock, PeriodSummary
from robot.commands import STOP_KEYS
from robot.display import PERSON, POLICY, LiveView, live_view
from robot.loop import ControlLoop, Observer, Step
from teleop.pedal import Pedal

MODES = ("ensemble", "chunk", "async")
POLICY_ROWS = ("policy_action", "ensembled")  # what the live view shows of the policy, per joint


@dataclass(frozen=True)
class DeployOptions:
    mode: str = "ensemble"  # ensemble: query every step, temporal ensembling; chunk: open-loop chunks; async
    query_every: int = 0  # chunk mode: steps between queries (0: the whole chunk)
    m: float = 0.01  # ensembling weight exp(-m * i), i = 0 the oldest prediction
    max_step_rad: float = 0.1  # per-step clamp of every command
    approach_speed: float = 0.5  # rad/s of the ramp to the start pose
    refuse_above: float = 1.5  # rad: refuse the ramp when a joint is further than this from the start pose
    max_uncovered_s: float = 3.0  # stop when no usable action has come for this long after the policy answered

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"inference mode {self.mode!r} is not one of {', '.join(MODES)}")


@dataclass(frozen=True)
class RolloutResult:
    steps: int
    human_steps: int
    interventions: int  # pedal presses
    uncovered_steps: int  # autonomous steps that had no chunk yet (async start, after a hand-back)
    stop_reason: str
    loop: PeriodSummary
    latency_ms: tuple[float, float, float]  # inference p50, p99, max
    inferences: int
    dropped_chunks: int = 0  # chunks refused for NaN or infinite actions
    non_finite_steps: int = 0  # steps the loop refused a non-finite target (the arm held)
    takeover_steps: tuple[int, ...] = ()  # the step each takeover started at (the first step the person drove)

    def line(self) -> str:
        p50, p99, top = self.latency_ms
        refused = (f"; {self.dropped_chunks} non-finite chunk(s) dropped, {self.non_finite_steps} non-finite "
                   "target(s) refused" if self.dropped_chunks or self.non_finite_steps else "")
        return (f"{self.steps} steps, {self.interventions} takeover(s), {self.human_steps} steps under human control; "
                f"inference {self.inferences}x p50 {p50:.1f} ms p99 {p99:.1f} ms max {top:.1f} ms; "
                f"loop {self.loop.line()}{refused}")


def make_inference(predictor: ChunkPredictor, options: DeployOptions) -> tuple[SyncInference | AsyncInference,
                                                                              ActionEnsembler]:
    chunk, dim = predictor.chunk_size, predictor.config.action_dim
    if options.mode == "chunk":
        every = options.query_every or chunk
        if not 1 <= every <= chunk:
            raise ValueError(f"--query-every must be within 1..{chunk} (the chunk size), got {every}")
        return SyncInference(predictor, every), ActionEnsembler(chunk, dim, m=options.m, ensemble=False)
    if options.mode == "async":
        return AsyncInference(predictor), ActionEnsembler(chunk, dim, m=options.m)
    return SyncInference(predictor, 1), ActionEnsembler(chunk, dim, m=options.m)


def ramp_to(connected: ConnectedRig, row: Sequence[float], clock: Clock, options: DeployOptions) -> int:
    """Move the followers slowly to a state row (TooFarError when a joint is too far); returns steps taken."""
    layout = StateLayout.from_connected(connected)
    loop = ControlLoop(connected.follower_arms(), ReplayController(layout, np.asarray([row])), connected.limits(),
                       clock, rate_hz=connected.rig.control_hz, max_step_rad=options.max_step_rad)
    try:
        return loop.approach(options.approach_speed, options.refuse_above)
    finally:
        loop.close()


def policy_view(display: str | None, connected: ConnectedRig, cameras: Mapping[str, Camera], *, prog: str,
                near: str | Path | None, say: Callable[[str], None]) -> AbstractContextManager[LiveView | None]:
    """The live view of a policy run (--display): the rig, who drives, the policy's and the ensembled actions."""
    return live_view(display, connected, cameras, prog=prog, near=near, control=POLICY, say=say,
                     row_names=StateLayout.from_connected(connected).names, extra_rows=POLICY_ROWS)


def policy_facts(view: LiveView, controller: DeployController, policy: PolicyActions) -> Observer:
    """A loop observer that tells the live view who drove this step and, for the policy, its own and its
    ensembled action."""
    def note(step: Step) -> None:
        if controller.mode is Mode.HUMAN:
            view.note(step.index, control=PERSON)
        else:
            view.note(step.index, control=POLICY, policy_action=policy.raw_action(policy.step - 1),
                      ensembled=policy.action)

    return note


def run_rollout(connected: ConnectedRig, predictor: ChunkPredictor, cameras: Mapping[str, Camera], clock: Clock,
                options: DeployOptions, *, steps: int | None, pedal: Pedal | None = None,
                keys: Callable[[], list[str]] | None = None, takeovers: TakeoverRecorder | None = None,
                observers: Sequence[Observer] = (), view: LiveView | None = None) -> RolloutResult:
    """Run the policy for `steps` steps (None: until a stop key) with takeovers on the pedal."""
    layout = StateLayout.from_connected(connected)
    inference, ensembler = make_inference(predictor, options)
    policy = PolicyActions(predictor, inference, ensembler, layout, cameras,
                           max_uncovered_steps=round(options.max_uncovered_s * connected.rig.control_hz))
    controller = DeployController(policy, connected.arms, connected.joint_maps(), rate_hz=connected.rig.control_hz,
                                  on_switch=takeovers.on_switch if takeovers else None)
    loop = ControlLoop(connected.arms, controller, connected.limits(), clock, rate_hz=connected.rig.control_hz,
                       max_step_rad=options.max_step_rad,
                       observers=[*([takeovers] if takeovers else []), *observers,
                                  *([policy_facts(view, controller, policy), view] if view else [])])
    human_steps = interventions = 0
    takeover_steps: list[int] = []
    stop_reason = "steps"

    def until(step: Step) -> bool:
        nonlocal human_steps, interventions, stop_reason
        human_steps += controller.mode is Mode.HUMAN
        pressed = keys() if keys else []
        if any(k in STOP_KEYS for k in pressed):
            stop_reason = "stop key"
            return True
        if pedal is not None:
            mode = Mode.HUMAN if pedal.down(pressed) else Mode.AUTONOMOUS
            if mode is Mode.HUMAN and controller.mode is Mode.AUTONOMOUS:
                interventions += 1
                takeover_steps.append(step.index + 1)  # this step's targets were the policy's
            controller.set_mode(mode, loop)
        return steps is not None and step.index + 1 >= steps

    try:
        controller.prepare_leaders()
        controller.start(loop)
        loop.run(until)
        controller.release_leaders(loop)
    finally:
        inference.close()
        loop.close()
    latencies = np.asarray(inference.latencies) * 1e3
    latency = (float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), float(latencies.max())) \
        if latencies.size else (0.0, 0.0, 0.0)
    return RolloutResult(loop.index, human_steps, interventions, policy.uncovered_steps, stop_reason, loop.summary(),
                         latency, len(latencies), policy.dropped_chunks, sum(loop.non_finite.values()),
                         tuple(takeover_steps))
