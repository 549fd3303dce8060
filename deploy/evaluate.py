"""Seeded policy rollouts in the simulated world: success rate with its 95% interval, reward stages, takeovers.

Each episode resets the world to its seed (the same object poses as the
demonstrations with that seed), runs the policy through the real loop, driver
and virtual buses for the task's length, and reads the task's highest reward.
With a gate rule the scripted operator steps on the pedal when the rule fires
and drives the leaders until it hands back; the steps it drives can be saved
as correction episodes (a human-gated DAgger round). With expert labels
instead (plain DAgger) the policy drives every step and each rollout is saved
with the expert's action for every state it visited.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.connection import ConnectedRig
from deploy.corrections import TakeoverRecorder
from deploy.inference import ChunkPredictor
from deploy.labels import ExpertLabelRecorder
from deploy.rollout import DeployOptions, RolloutResult, run_rollout
from deploy.video import VideoRecorder
from recording.dataset import Dataset
from recording.layout import StateLayout
from recording.session import RecordOptions
from robot.sim.sim_clock import SimClock
from robot.sim.tasks import REWARD_STAGES
from robot.sim.world_process import SimWorldProcess
from teleop.pedal import ScriptedPedal


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound for small n and rates near 0 or 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class EpisodeOutcome:
    seed: int
    max_reward: int
    success: bool
    steps: int
    human_steps: int
    interventions: int
    corrections: list[int] = field(default_factory=list)  # dataset episodes written from this rollout
    rollout: int | None = None
    wall_s: float = 0.0
    labelled_steps: int = 0  # steps saved with a human's or the expert's action: the corrections' lengths

    def line(self, stages: Sequence[str]) -> str:
        reached = stages[self.max_reward - 1] if self.max_reward else "nothing"
        human = f", {self.interventions} takeover(s), {self.human_steps}/{self.steps} steps human" \
            if self.interventions else ""
        return f"seed {self.seed}: max reward {self.max_reward}/4 ({reached}), " \
               f"{'success' if self.success else 'failure'}{human}"


@dataclass
class EvalReport:
    task: str
    checkpoint: str
    mode: str
    gate: str
    expert_labels: bool = False  # plain DAgger: every rollout labelled by the expert
    episodes: list[EpisodeOutcome] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # each episode's inference p50

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def labelled_steps(self) -> int:
        return sum(e.labelled_steps for e in self.episodes)

    def stage_counts(self) -> list[int]:
        """Episodes that reached each reward level 1..4."""
        return [sum(e.max_reward >= level for e in self.episodes) for level in range(1, 5)]

    def summary(self) -> str:
        n, k = len(self.episodes), self.successes
        lo, hi = wilson(k, n)
        stages = REWARD_STAGES[self.task]
        how = (f", gate {self.gate}" if self.gate else "") + (", expert labels" if self.expert_labels else "")
        lines = [f"{self.task}, {self.checkpoint}, mode {self.mode}{how}",
                 f"  success {k}/{n} = {100 * k / max(n, 1):.1f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%)",
                 "  reached: " + ", ".join(f"{name} {c}" for name, c in zip(stages, self.stage_counts(), strict=True))]
        if self.gate:
            steps = sum(e.steps for e in self.episodes)
            human = sum(e.human_steps for e in self.episodes)
            takeovers = sum(e.interventions for e in self.episodes)
            lines.append(f"  takeovers {takeovers} ({takeovers / max(n, 1):.2f} per episode), "
                         f"{100 * human / max(steps, 1):.1f}% of steps under human control")
        if any(e.corrections for e in self.episodes):
            corrections = sum(len(e.corrections) for e in self.episodes)
            lines.append(f"  {corrections} correction episode(s) saved, {self.labelled_steps} labelled steps")
        if self.latencies_ms:
            lines.append(f"  inference p50 {float(np.median(self.latencies_ms)):.1f} ms per chunk")
        return "\n".join(lines)

    def to_json(self) -> dict:
        n, k = len(self.episodes), self.successes
        return {"task": self.task, "checkpoint": self.checkpoint, "mode": self.mode, "gate": self.gate,
                "expert_labels": self.expert_labels,
                "episodes": n, "successes": k, "success_rate": k / max(n, 1), "ci95": list(wilson(k, n)),
                "labelled_steps": self.labelled_steps,
                "stages": dict(zip(REWARD_STAGES[self.task], self.stage_counts(), strict=True)),
                "per_episode": [asdict(e) for e in self.episodes]}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


@dataclass(frozen=True)
class Collect:
    """Where takeovers go during an evaluation: correction (and optionally rollout) episodes in a dataset.
    With `expert_labels`, every rollout is saved whole, labelled by the expert (plain DAgger)."""
    dataset: Dataset
    options: RecordOptions
    keep_rollouts: bool = False
    expert_labels: bool = False


def evaluate(world: SimWorldProcess, connected: ConnectedRig, predictor: ChunkPredictor, task: str,
             seeds: Sequence[int], steps: int, options: DeployOptions, *, gate: str = "",
             collect: Collect | None = None, videos: Path | None = None, checkpoint: str = "",
             on_episode: Callable[[EpisodeOutcome], None] | None = None) -> EvalReport:
    """Roll the policy out once per seed; with `gate`, the scripted operator takes over when the rule fires."""
    labelled = collect is not None and collect.expert_labels
    if labelled and gate:
        raise ValueError("expert labels (plain DAgger) and a gate (human-gated DAgger) exclude each other")
    world.set_operator("labels" if labelled else "gated" if gate else "off")
    if gate:
        world.set_gate(gate)
    report = EvalReport(task, checkpoint, options.mode, gate, expert_labels=labelled)
    layout = StateLayout.from_connected(connected)
    for seed in seeds:
        start = time.perf_counter()
        status = world.reset(seed)
        clock = SimClock(world, status.time)
        recorder_args = dict(checkpoint=checkpoint, rate_hz=connected.rig.control_hz, seed=seed)
        takeovers = labels = None
        if labelled:
            labels = ExpertLabelRecorder(world, collect.dataset, layout, world.cameras, collect.options,
                                         **recorder_args)
        elif collect:
            takeovers = TakeoverRecorder(collect.dataset, layout, world.cameras, collect.options,
                                         keep_rollout=collect.keep_rollouts, **recorder_args)
        saving = takeovers or labels
        video = VideoRecorder(videos / f"{task}_seed{seed}.mp4", world.cameras, connected.rig.control_hz) \
            if videos else None
        try:
            result: RolloutResult = run_rollout(
                connected, predictor, world.cameras, clock, options, steps=steps,
                pedal=ScriptedPedal(world) if gate else None, takeovers=takeovers,
                observers=[o for o in (labels, video) if o])
        except BaseException:
            if saving:
                saving.discard()
            raise
        finally:
            if video:
                video.close()
        status = world.status()
        saved = saving.finish("episode end", status.success) if saving else []
        corrections = [e for e in saved if e.kind == "correction"]
        outcome = EpisodeOutcome(seed, status.max_reward, status.success, result.steps, result.human_steps,
                                 result.interventions, [e.index for e in corrections],
                                 next((e.index for e in saved if e.kind == "rollout"), None),
                                 time.perf_counter() - start, sum(e.length for e in corrections))
        report.episodes.append(outcome)
        if result.inferences:
            report.latencies_ms.append(result.latency_ms[0])
        if on_episode:
            on_episode(outcome)
    return report
