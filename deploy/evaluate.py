"""Seeded policy rollouts in the simulated world: success rate with its 95% interval, reward stages, takeovers.

A gated run counts two successes: the policy's own (the task done with no
takeover), which is what the policy is worth, and success at the episode's end
with the operator's help, which says how much the person had to do.

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
from deploy.progress import Progress
from deploy.rollout import DeployOptions, RolloutResult, run_rollout
from deploy.video import VideoRecorder
from recording.dataset import Dataset
from recording.layout import StateLayout
from recording.session import RecordOptions
from robot.display import LiveView
from robot.sim.sim_clock import SimClock
from robot.sim.tasks import REWARD_STAGES, task_description
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
    success: bool  # at the episode's end, whoever drove (the operator may have finished the task)
    steps: int
    human_steps: int
    interventions: int
    corrections: list[int] = field(default_factory=list)  # dataset episodes written from this rollout
    rollout: int | None = None
    wall_s: float = 0.0
    labelled_steps: int = 0  # steps saved with a human's or the expert's action: the corrections' lengths
    takeover_steps: list[int] = field(default_factory=list)  # the rollout step each takeover started at

    @property
    def policy_success(self) -> bool:
        """The policy's own success: the task done with no takeover."""
        return self.success and self.interventions == 0

    def line(self, stages: Sequence[str]) -> str:
        reached = stages[self.max_reward - 1] if self.max_reward else "nothing"
        if not self.success:
            verdict = "failure"
        elif self.interventions:
            verdict = "success with the operator's help"
        else:
            verdict = "success"
        human = f", {self.interventions} takeover(s) at step {', '.join(map(str, self.takeover_steps))}, " \
            f"{self.human_steps}/{self.steps} steps human" if self.interventions else ""
        return f"seed {self.seed}: max reward {self.max_reward}/4 ({reached}), {verdict}{human}"

    def to_json(self) -> dict:
        return {**asdict(self), "policy_success": self.policy_success}


@dataclass
class EvalReport:
    task: str
    checkpoint: str
    mode: str
    gate: str
    expert_labels: bool = False  # plain DAgger: every rollout labelled by the expert
    episodes: list[EpisodeOutcome] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # each episode's inference p50
    planned: int = 0  # episodes asked for; more than len(episodes) when the run was interrupted

    @property
    def successes(self) -> int:
        """The policy's own successes: a success after a takeover is the operator's, not the policy's."""
        return sum(e.policy_success for e in self.episodes)

    @property
    def successes_with_help(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def takeovers(self) -> int:
        return sum(e.interventions for e in self.episodes)

    @property
    def human_share(self) -> float:
        return sum(e.human_steps for e in self.episodes) / max(sum(e.steps for e in self.episodes), 1)

    @property
    def interrupted(self) -> bool:
        return len(self.episodes) < self.planned

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
        lines = [f"{self.task}, {self.checkpoint}, mode {self.mode}{how}"]
        if self.interrupted:
            lines.append(f"  interrupted: {n} of {self.planned} episodes finished; the results are theirs")
        rate = f"{k}/{n} = {100 * k / max(n, 1):.1f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%)"
        if self.gate:
            helped = self.successes_with_help
            with_help = sum(e.success and e.interventions > 0 for e in self.episodes)
            lines += [f"  success, policy alone (no takeover): {rate}",
                      f"  success at the episode's end, with the operator's help: {helped}/{n} = "
                      f"{100 * helped / max(n, 1):.1f}% ({with_help} finished by the operator)",
                      f"  takeovers {self.takeovers} ({self.takeovers / max(n, 1):.2f} per episode, in "
                      f"{sum(e.interventions > 0 for e in self.episodes)} episode(s)), "
                      f"{100 * self.human_share:.1f}% of steps under human control"]
        else:
            lines.append(f"  success {rate}")
        lines.append("  reached: " + ", ".join(f"{name} {c}" for name, c in
                                               zip(stages, self.stage_counts(), strict=True)))
        if any(e.corrections for e in self.episodes):
            corrections = sum(len(e.corrections) for e in self.episodes)
            lines.append(f"  {corrections} correction episode(s) saved, {self.labelled_steps} labelled steps")
        if self.latencies_ms:
            lines.append(f"  inference p50 {float(np.median(self.latencies_ms)):.1f} ms per chunk")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """`successes`/`success_rate`/`ci95` are the policy's own (no takeover); `*_with_help` count the
        episodes that ended in success whoever drove."""
        n, k, helped = len(self.episodes), self.successes, self.successes_with_help
        return {"task": self.task, "checkpoint": self.checkpoint, "mode": self.mode, "gate": self.gate,
                "expert_labels": self.expert_labels, "planned": self.planned, "interrupted": self.interrupted,
                "episodes": n, "successes": k, "success_rate": k / max(n, 1), "ci95": list(wilson(k, n)),
                "successes_with_help": helped, "success_rate_with_help": helped / max(n, 1),
                "takeovers": self.takeovers, "episodes_with_takeover": sum(e.interventions > 0 for e in self.episodes),
                "human_step_share": self.human_share,
                "labelled_steps": self.labelled_steps,
                "stages": dict(zip(REWARD_STAGES[self.task], self.stage_counts(), strict=True)),
                "per_episode": [e.to_json() for e in self.episodes]}

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
    task_description: str | None = None  # kept in every episode saved; None: the task's own sentence


def evaluate(world: SimWorldProcess, connected: ConnectedRig, predictor: ChunkPredictor, task: str,
             seeds: Sequence[int], steps: int, options: DeployOptions, *, gate: str = "",
             collect: Collect | None = None, videos: Path | None = None, checkpoint: str = "",
             on_episode: Callable[[EpisodeOutcome], None] | None = None, report: EvalReport | None = None,
             progress: Progress | None = None, view: LiveView | None = None) -> EvalReport:
    """Roll the policy out once per seed; with `gate`, the scripted operator takes over when the rule fires.

    Pass `report` to keep the finished episodes when the run is interrupted (it is filled as they end)."""
    labelled = collect is not None and collect.expert_labels
    if labelled and gate:
        raise ValueError("expert labels (plain DAgger) and a gate (human-gated DAgger) exclude each other")
    world.set_operator("labels" if labelled else "gated" if gate else "off")
    if gate:
        world.set_gate(gate)
    if report is None:
        report = EvalReport(task, checkpoint, options.mode, gate, expert_labels=labelled, planned=len(seeds))
    layout = StateLayout.from_connected(connected)
    for seed in seeds:
        start = time.perf_counter()
        status = world.reset(seed)
        clock = SimClock(world, status.time)
        recorder_args = dict(checkpoint=checkpoint, rate_hz=connected.rig.control_hz, seed=seed,
                             task_description=task_description(task, collect.task_description if collect else None))
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
        if progress:
            progress.begin(f"seed {seed}")
        try:
            result: RolloutResult = run_rollout(
                connected, predictor, world.cameras, clock, options, steps=steps,
                pedal=ScriptedPedal(world) if gate else None, takeovers=takeovers,
                observers=[o for o in (labels, video, progress) if o], view=view)
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
                                 time.perf_counter() - start, sum(e.length for e in corrections),
                                 list(result.takeover_steps))
        report.episodes.append(outcome)
        if progress:
            progress.end(outcome.policy_success, with_help=outcome.success)
        if result.inferences:
            report.latencies_ms.append(result.latency_ms[0])
        if on_episode:
            on_episode(outcome)
    return report
