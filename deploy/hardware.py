"""Policy episodes on a rig's hardware (or its bare virtual arms): the person resets the scene between episodes.

The checkpoint and any existing dataset are checked against the rig file before
a bus opens. Each episode ramps the followers to the demonstrations' start pose,
runs the policy until its time is up or a stop key, and saves every takeover
as a correction episode when a dataset is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from calibration.connection import ConnectedRig, connect
from deploy.compat import camera_sources, check_dataset, check_rig, existing_dataset
from deploy.corrections import TakeoverRecorder
from deploy.inference import ChunkPredictor
from deploy.progress import Progress
from deploy.rollout import DeployOptions, RolloutResult, policy_view, ramp_to, run_rollout
from policies.checkpoint import Checkpoint
from recording.layout import StateLayout
from recording.session import RecordOptions, dataset_info, open_dataset, warn_if_low_space
from robot.clock import RealClock
from robot.commands import STOP_KEYS, keys_line, open_rig_arms
from robot.rig import Rig
from robot.sim.tasks import task_description
from teleop.keys import NoKeys, open_keys
from teleop.pedal import open_pedal

ROLLOUT_ESTIMATE_S = 60.0  # a rollout without a time limit, for the free-space estimate


@dataclass(frozen=True)
class HardwareRun:
    episodes: int = 1
    seconds: float = 0.0  # per episode; 0: until a stop key
    dataset: str | None = None  # where takeovers are saved as correction episodes
    keep_rollouts: bool = False  # also save each whole rollout with its intervention mask
    compress: bool = True
    keys: str = "auto"  # operator key backend
    pedal: str | None = None  # pedal backend; None: the rig file's
    device: str = "cpu"  # torch device for inference
    task_description: str | None = None  # kept in every episode saved; None: the dataset's task
    camera_map: dict[str, str] | None = None  # policy camera -> the rig camera that feeds it (--camera-map)
    display: str | None = None  # --display: where the live view goes; None: no view


def run_hardware(rig: Rig, checkpoint: Checkpoint, options: DeployOptions, run: HardwareRun,
                 say: Callable[[str], None] = print) -> list[RolloutResult]:
    """Run `run.episodes` policy episodes; returns the finished ones (q between episodes ends the run early)."""
    from robot.cameras import open_cameras, opened_by_world

    check_rig(checkpoint, rig, run.camera_map)
    fed = camera_sources(checkpoint.config.camera_names, run.camera_map).values()
    wanted = set(fed) | ({c.name for c in rig.cameras} if run.dataset or run.display else set())
    configs = [c for c in rig.cameras if c.name in wanted and not opened_by_world(c)]
    sizes = {c.name: (c.height, c.width) for c in configs}
    if run.dataset:
        check_dataset(run.dataset, existing_dataset(run.dataset), rig, sizes, run.compress)
    steps = round(run.seconds * rig.control_hz) if run.seconds > 0 else None
    results: list[RolloutResult] = []
    with ExitStack() as stack:
        rig = open_rig_arms(rig, stack)  # virtual arms on a kinematic bench, no cameras: a state-only policy runs
        connected: ConnectedRig = stack.enter_context(connect(rig))
        layout = StateLayout.from_connected(connected)
        cameras = open_cameras(configs)
        stack.callback(lambda: [c.close() for c in cameras.values()])
        dataset = None
        if run.dataset:
            dataset = open_dataset(run.dataset, dataset_info(rig, connected, sizes, run.compress))
            warn_if_low_space(dataset, steps or round(ROLLOUT_ESTIMATE_S * rig.control_hz), run.episodes)
        keys = open_keys(run.keys)
        stack.callback(keys.close)
        pedal = open_pedal(rig.pedal, run.pedal)
        if pedal is not None:
            stack.callback(pedal.close)
        say(keys_line(keys.backend, not isinstance(keys, NoKeys)))  # stop keys offered only where one listens
        say(f"pedal: {pedal.backend if pedal else 'none (no takeovers)'}")
        view = stack.enter_context(policy_view(run.display, connected, cameras, prog="tandem-deploy",
                                               near=run.dataset, say=say))
        predictor = ChunkPredictor(checkpoint, run.device, camera_map=run.camera_map)
        start = checkpoint.meta.extra.get("start_qpos")
        # a line every 10 s in a log: a person watches the arms, not the counter
        progress = Progress(run.episodes, steps, every=round(10 * rig.control_hz), rate_hz=rig.control_hz)
        for episode in range(run.episodes):
            if run.episodes > 1 and not wait_for_start(keys.events, episode, run.episodes, say):
                break
            if start is not None:
                ramped = ramp_to(connected, start, RealClock(), options)
                say(f"followers at the start pose ({ramped / rig.control_hz:.1f} s)")
            takeovers = (TakeoverRecorder(dataset, layout, cameras, RecordOptions(compress=run.compress),
                                          checkpoint=str(checkpoint.path), rate_hz=rig.control_hz,
                                          keep_rollout=run.keep_rollouts,
                                          task_description=task_description(dataset.info.task,
                                                                            run.task_description))
                          if dataset else None)
            say(f"policy running ({options.mode})" + (f" for {run.seconds:g} s" if steps else ""))
            progress.begin()
            try:
                result = run_rollout(connected, predictor, cameras, RealClock(), options, steps=steps, pedal=pedal,
                                     keys=keys.events, takeovers=takeovers, observers=[progress], view=view)
            except BaseException:
                progress.clear()
                if takeovers:
                    takeovers.discard()
                raise
            progress.end()
            saved = takeovers.finish(result.stop_reason) if takeovers else []
            results.append(result)
            say(f"episode {episode + 1}: {result.line()}")
            for e in saved:
                say(f"  saved {e.kind} episode {e.index} ({e.length} steps"
                    + (f", from rollout step {e.rollout_step})" if e.rollout_step is not None else ")"))
    return results


def wait_for_start(events: Callable[[], list[str]], episode: int, total: int, say: Callable[[str], None]) -> bool:
    """Between episodes the person resets the scene; space starts the next one, q stops."""
    say(f"reset the scene, then press space to start episode {episode + 1}/{total} (q stops)")
    while True:
        for key in events():
            if key in ("space", "enter"):
                return True
            if key in STOP_KEYS:
                return False
        time.sleep(0.02)
