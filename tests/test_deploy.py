"""Deploy: temporal ensembling, async inference, pedal takeovers into correction episodes, evaluation in the world."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import robot.rig
from calibration.connection import connect
from deploy.cli import deploy_main, eval_main
from deploy.corrections import TakeoverRecorder
from deploy.ensemble import ActionEnsembler
from deploy.evaluate import wilson
from deploy.inference import AsyncInference, ChunkPredictor
from deploy.rollout import DeployOptions, run_rollout
from deploy.runner import DeployController, PolicyActions
from policies.checkpoint import load_checkpoint
from policies.cli import main as train_main
from recording.dataset import Dataset
from recording.layout import StateLayout
from recording.reader import EpisodeReader
from recording.session import RecordOptions, dataset_info, open_dataset
from robot.loop import ControlLoop
from robot.rig import load_rig
from robot.sim.expert import JOINT_SPEED
from robot.sim.sim_clock import SimClock
from robot.sim.world import CONTROL_DT
from robot.sim.world_process import SimWorldProcess
from robot.sim.world_rig import LABEL_REANCHOR_RAD
from teleop.pedal import TogglePedal

TINY = ["--preset", "tiny", "--workers", "0", "--no-progress", "--device", "cpu", "--val-fraction", "0"]
SIZE = (48, 64)


@pytest.fixture(scope="module")
def sim_rig():
    return load_rig("sim")


# -- temporal ensembling ----------------------------------------------------------------------------------------
def direct_average(chunks: dict[int, np.ndarray], t: int, chunk: int, m: float) -> np.ndarray:
    """ACT's computation: every prediction made for step t, oldest first, weights exp(-m*i)."""
    predictions = [chunks[s][t - s] for s in sorted(chunks) if 0 <= t - s < chunk]
    weights = np.exp(-m * np.arange(len(predictions)))
    return (weights[:, None] * np.array(predictions)).sum(axis=0) / weights.sum()


@pytest.mark.parametrize(("chunk", "every"), [(6, 1), (6, 3), (1, 1)],
                         ids=["every-step", "async-like-gaps", "no-chunking"])
def test_the_ensembler_matches_a_direct_weighted_average(chunk, every):
    rng = np.random.default_rng(every)
    dim, m = 3, 0.3
    ensembler = ActionEnsembler(chunk, dim, m=m)
    chunks = {}
    for t in range(40):  # far past the ring's size: old slots are reused
        if t % every == 0:
            chunks[t] = rng.normal(size=(chunk, dim))
            ensembler.add(t, chunks[t])
        assert np.allclose(ensembler.action(t), direct_average(chunks, t, chunk, m))
    assert ensembler.action(40 + chunk) is None  # nothing reaches that far


def test_open_loop_chunks_play_the_newest_chunk_and_clear_forgets():
    ensembler = ActionEnsembler(4, 2, ensemble=False)
    first, second = np.arange(8.0).reshape(4, 2), -np.arange(8.0).reshape(4, 2)
    ensembler.add(0, first)
    assert np.array_equal(ensembler.action(2), first[2])
    ensembler.add(2, second)
    assert np.array_equal(ensembler.action(3), second[1])
    ensembler.clear()
    assert ensembler.action(3) is None
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        ensembler.add(5, np.zeros((3, 2)))


def test_wilson_interval():
    assert wilson(50, 50)[0] == pytest.approx(0.929, abs=1e-3) and wilson(50, 50)[1] == 1.0
    lo, hi = wilson(14, 50)
    assert lo == pytest.approx(0.175, abs=1e-3) and hi == pytest.approx(0.417, abs=1e-3)


# -- async inference --------------------------------------------------------------------------------------------
class HeldPredictor(ChunkPredictor):
    """The real predictor, held back until the test releases it: inference far slower than the loop."""

    def __init__(self, checkpoint) -> None:
        super().__init__(checkpoint)
        self.allowed = threading.Semaphore(0)  # calls the test lets through
        self.done = threading.Semaphore(0)
        self.results: list[tuple[int, np.ndarray]] = []

    def __call__(self, obs):
        assert self.allowed.acquire(timeout=60)
        chunk = super().__call__(obs)
        self.results.append((obs.step, chunk))
        self.done.release()
        return chunk


def test_async_inference_never_blocks_the_loop(sim_rig, checkpoint):
    world = SimWorldProcess(sim_rig, "transfer_cube", image_size=SIZE, cameras=["cam_high"], operator="off")
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        status = world.reset(3)
        predictor = HeldPredictor(load_checkpoint(checkpoint))
        inference = AsyncInference(predictor)
        layout = StateLayout.from_connected(connected)
        policy = PolicyActions(predictor, inference, ActionEnsembler(predictor.chunk_size, layout.dim), layout,
                               world.cameras)
        controller = DeployController(policy, connected.arms, connected.joint_maps())
        loop = ControlLoop(connected.arms, controller, connected.limits(), SimClock(world, status.time))
        try:
            controller.prepare_leaders()
            controller.start(loop)
            first = loop.read_all()
            for _ in range(30):  # the network has not answered once: the loop goes on, the followers hold
                step = loop.step()
                loop.wait_for_next()
            assert policy.uncovered_steps == 30 and not predictor.results
            for follower in layout.arms:
                assert np.allclose(step.desired[follower], first[follower].position, atol=0.02)
            predictor.allowed.release(2)
            for _ in range(2):  # step 0's chunk (too late to cover anything), then the newest: step 29's
                assert predictor.done.acquire(timeout=60)
            step = loop.step()  # posts step 30's observation, which stays with the held network
        finally:
            predictor.allowed.release(10)
            inference.close()
            loop.close()
        (stale_start, _), (start, chunk) = predictor.results[:2]
        assert (stale_start, start) == (0, 29)
        expected = layout.commands(chunk[step.index - start])  # aligned to the step it was conditioned on
        for follower in layout.arms:
            assert np.allclose(step.desired[follower], expected[follower])


# -- takeovers --------------------------------------------------------------------------------------------------
def test_a_pedal_press_hands_over_without_a_jump_records_the_correction_and_release_resumes(sim_rig, checkpoint,
                                                                                            tmp_path):
    down_at, up_at, steps, max_step = 39, 79, 120, 0.1
    world = SimWorldProcess(sim_rig, "transfer_cube", image_size=SIZE, operator="off")
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        status = world.reset(5)
        layout = StateLayout.from_connected(connected)
        sizes = dict.fromkeys(world.cameras, SIZE)
        dataset = open_dataset(str(tmp_path / "corrections"),
                               dataset_info(sim_rig, connected, sizes, True, "transfer_cube"))
        takeovers = TakeoverRecorder(dataset, layout, world.cameras, RecordOptions(), checkpoint=str(checkpoint),
                                     rate_hz=50, keep_rollout=True, seed=5)
        calls = iter(range(steps))

        def keys() -> list[str]:  # the person presses the (terminal) pedal key twice
            return ["space"] if next(calls) in (down_at, up_at) else []

        seen = []
        result = run_rollout(connected, ChunkPredictor(load_checkpoint(checkpoint)), world.cameras,
                             SimClock(world, status.time), DeployOptions(max_step_rad=max_step), steps=steps,
                             pedal=TogglePedal("space"), keys=keys, takeovers=takeovers,
                             observers=[lambda step: seen.append((step, takeovers.human))])
        saved = takeovers.finish("episode end")
    human = [i for i, (_, is_human) in enumerate(seen) if is_human]
    assert human == list(range(down_at + 1, up_at + 1))
    assert result.interventions == 1 and result.human_steps == 40 and result.uncovered_steps == 0

    # No jump: while the policy ran, the leaders followed the followers' commands (a step or two behind: one
    # step from read to write, one of motor travel), so the first step under the leaders asks for about what
    # the followers were already sent; the follower's change at the switch stays within the per-step bound.
    before, switch = seen[down_at][0], seen[down_at + 1][0]
    for leader, follower, joint_map in connected.joint_maps():
        lag = np.abs(before.states[leader].position - joint_map.inverse(before.commands[follower]))
        assert np.max(lag) < 2 * max_step, (leader, lag)
        assert np.max(np.abs(switch.desired[follower] - before.commands[follower])) < 2 * max_step
        assert np.max(np.abs(switch.commands[follower] - before.commands[follower])) <= max_step + 1e-9
    # The leaders are commanded (torqued, following) only while the policy drives.
    assert all(("leader_left" in s.desired) != is_human for s, is_human in seen)
    assert all(s.desired != {} for s, _ in seen[up_at + 1:])

    rollout, correction = sorted(saved, key=lambda e: e.kind, reverse=True)
    assert (rollout.kind, rollout.length, correction.kind, correction.length) == ("rollout", 120, "correction", 40)
    assert correction.rollout == rollout.index and correction.checkpoint == str(checkpoint)
    assert correction.rollout_step == down_at + 1 == result.takeover_steps[0]  # its first step in the rollout
    with EpisodeReader(dataset.path(correction.index)) as ep:  # the human's actions, as sent
        sent = np.stack([layout.action(seen[i][0].commands) for i in human])
        assert np.allclose(ep.action, sent, atol=1e-6) and ep.attrs["kind"] == "correction"
        assert ep.camera_names == ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
    with EpisodeReader(dataset.path(rollout.index)) as ep:
        assert np.flatnonzero(ep.array("/intervention")).tolist() == human
    assert [e.kind for e in Dataset.open(tmp_path / "corrections").episodes()] == ["rollout", "correction"]


def test_gated_takeovers_become_corrections_and_the_dataset_trains(demos, checkpoint, tmp_path, capsys):
    data = tmp_path / "demos"
    shutil.copytree(demos, data)
    report = tmp_path / "report.json"
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "100",
                      "--gate", "stalled:20", "--dataset", str(data), "--json", str(report),
                      "--videos", str(tmp_path / "videos")]) == 0
    out = capsys.readouterr().out
    assert "takeovers 1 (1.00 per episode, in 1 episode(s))" in out and "1 correction episode(s) saved" in out, out
    summary = json.loads(report.read_text())
    corrections = summary["per_episode"][0]["corrections"]
    assert summary["episodes"] == 1 and len(corrections) == 1
    info = Dataset.open(data).episode(corrections[0])
    assert info.kind == "correction" and info.checkpoint == str(checkpoint)
    assert info.length == summary["per_episode"][0]["human_steps"] > 0
    video = cv2.VideoCapture(str(tmp_path / "videos" / "transfer_cube_seed1000.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 100 and video.get(cv2.CAP_PROP_FRAME_WIDTH) == 4 * 320

    run = tmp_path / "round"
    assert train_main(["--dataset", str(data), "--out", str(run), *TINY, "--steps", "3",
                       "--correction-weight", "3"]) == 0
    assert corrections[0] in load_checkpoint(run / "last").meta.extra["train_episodes"]


def test_expert_labels_save_each_rollout_with_the_experts_action_for_every_visited_state(demos, checkpoint,
                                                                                        tmp_path, capsys):
    """Plain DAgger: the policy drives all 60 steps; the saved episode has the observations it met and, as
    actions, the expert's targets from each of those states: never further than the re-anchoring bound
    plus one step of the expert's motion, in the rig's units and arm order."""
    data = tmp_path / "demos"
    shutil.copytree(demos, data)
    report = tmp_path / "report.json"
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "60",
                      "--expert-labels", "--dataset", str(data), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "expert labels" in out and "1 correction episode(s) saved, 60 labelled steps" in out, out
    summary = json.loads(report.read_text())
    assert summary["expert_labels"] and summary["labelled_steps"] == 60
    index = summary["per_episode"][0]["corrections"][0]
    info = Dataset.open(data).episode(index)
    assert info.kind == "correction" and info.length == 60 and info.seed == 1000
    with EpisodeReader(data / info.file) as episode:
        assert episode.attrs["labels"] == "expert"
        qpos, action = episode.qpos, episode.action
    arm = np.r_[0:6, 7:13]
    gap = np.abs(action[:, arm] - qpos[:, arm]).max(axis=1)
    assert gap.max() <= LABEL_REANCHOR_RAD + JOINT_SPEED * CONTROL_DT + 1e-3, gap
    assert gap[0] <= JOINT_SPEED * CONTROL_DT + 1e-3  # the first label: one step of the expert from the start
    assert np.all((action[:, [6, 13]] > -0.05) & (action[:, [6, 13]] < 1.05))  # grippers 0 closed .. 1 open

    assert eval_main(["--checkpoint", str(checkpoint), "--expert-labels", "--gate", "drift"]) == 2
    assert "--expert-labels needs --dataset" in capsys.readouterr().err


def test_a_checkpoint_for_cameras_the_rig_lacks_is_refused(checkpoint, tmp_path, capsys):
    rig = tmp_path / "two_cams.yaml"
    text = (Path(robot.rig.__file__).parent / "rigs" / "sim.yaml").read_text()
    rig.write_text(text.replace("  cam_high: {device: sim, width: 640, height: 480, fps: 50}\n", ""))
    assert deploy_main(["--rig", str(rig), "--checkpoint", str(checkpoint), "--task", "transfer_cube"]) == 1
    err = capsys.readouterr().err
    assert "was trained with cameras [cam_high]" in err and "missing: cam_high" in err, err


def test_deploy_on_bare_virtual_arms_ramps_then_runs_in_real_time(demos, tmp_path, capsys):
    """The hardware path (RealClock, the start-pose ramp: the virtual grippers start wide open) with a
    state-only policy in async mode."""
    out = tmp_path / "state_only"
    assert train_main(["--dataset", str(demos), "--out", str(out), *TINY, "--steps", "2", "--cameras", "none"]) == 0
    rig = tmp_path / "arms_only.yaml"
    text = (Path(robot.rig.__file__).parent / "rigs" / "sim.yaml").read_text()
    rig.write_text(text[:text.index("cameras:")] + text[text.index("pedal:"):])
    assert deploy_main(["--rig", str(rig), "--checkpoint", str(out / "last"), "--seconds", "1", "--keys", "none",
                        "--pedal", "none", "--mode", "async", "--refuse-above", "2.5"]) == 0
    printed = capsys.readouterr().out
    assert "followers at the start pose" in printed and "episode 1: 50 steps" in printed, printed
