"""Pushes on the simulated followers (DART-style demos): the offsets themselves, and tandem-record --perturb."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recording.cli import main as record_main
from recording.dataset import Dataset
from recording.reader import EpisodeReader
from robot.sim.perturbation import Perturbation

FREE, HELD = {"left": True, "right": True}, {"left": False, "right": False}


def offsets(p: Perturbation, steps: list[dict[str, bool]]) -> np.ndarray:
    return np.array([np.concatenate([o.copy() for o in p.step(free).values()]) for free in steps])


def test_pushes_follow_from_the_seed_with_the_asked_spread():
    p = Perturbation(0.03, seconds=0.1)
    p.reset(7)
    first = offsets(p, [FREE] * 3000)
    p.reset(7)
    assert np.array_equal(offsets(p, [FREE] * 3000), first)  # the same episode seed, the same pushes
    p.reset(8)
    assert not np.allclose(offsets(p, [FREE] * 10), first[:10])
    assert first[500:].std() == pytest.approx(0.03, rel=0.15)  # stationary spread after the start
    # smooth: one step keeps exp(-dt/seconds) of the offset, where independent draws would keep none
    kept = np.corrcoef(first[500:-1].ravel(), first[501:].ravel())[0, 1]
    assert kept == pytest.approx(math.exp(-0.02 / 0.1), abs=0.03)


def test_a_push_fades_where_the_expert_needs_precision():
    p = Perturbation(0.03, seconds=0.3)
    p.reset(1)
    pushed = offsets(p, [FREE] * 200)[-1]
    left_held = offsets(p, [{"left": False, "right": True}] * 15)  # 0.3 s at 50 Hz: one time constant
    assert np.allclose(left_held[-1, :6], pushed[:6] * math.exp(-1.0))  # the held arm's push fades
    assert not np.allclose(left_held[-1, 6:], pushed[6:] * math.exp(-1.0))  # the free one is pushed on
    assert np.abs(offsets(p, [HELD] * 100)[-1]).max() < 0.03 * math.exp(-100 * 0.02 / 0.3) * 5


@pytest.mark.parametrize("std, seconds", [(-0.01, 0.3), (math.nan, 0.3), (0.02, 0.0), (0.02, math.inf)])
def test_bad_numbers_are_refused(std, seconds):
    with pytest.raises(ValueError, match="perturbation"):
        Perturbation(std, seconds)


def test_recorded_actions_are_the_operators_while_the_followers_are_pushed(tmp_path, capsys):
    """Pushed, the followers go elsewhere while the recorded actions (the expert's targets on its way to the same
    part, before it reacts to where the hand went) stay as they were; each episode says how hard it was pushed."""
    runs = {}
    for push in (0.0, 0.05):
        data = tmp_path / f"push_{push}"
        code = record_main(["--dataset", str(data), "--task", "insertion", "--episodes", "1", "--seconds", "0.4",
                            "--image-size", "24x32", "--seed", "3", "--perturb", str(push)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert ("followers pushed by 0.05 rad" in out) == (push > 0)
        dataset = Dataset.open(data)
        with EpisodeReader(dataset.path(0)) as episode:
            assert episode.attrs.get("perturb_rad") == (push or None)
            names = list(episode.attrs["state_names"])
            qpos, action = episode.qpos, episode.action
        arms = [i for i, name in enumerate(names) if not name.endswith("gripper")]
        runs[push] = qpos[:, arms], action[:, arms]
    (qpos, action), (pushed_qpos, pushed_action) = runs[0.0], runs[0.05]
    assert np.abs(pushed_qpos - qpos).max() > 0.03  # rad
    assert np.abs(pushed_action - action).max() < 1e-3


def test_the_expert_frees_an_arm_only_where_millimetres_do_not_count():
    """Insertion, physics only: the peg's arm is free while it reaches and carries, never while it lines up or
    inserts; the socket's arm is held still then too."""
    from robot.sim.expert import Expert
    from robot.sim.world import World, gripper_angle_from_normalized

    world = World("insertion")
    expert = Expert(world)
    world.reset(2)
    expert.reset()
    seen = []
    for _ in range(300):
        for side, (q, g) in expert.act().items():
            world.set_targets(side, q, gripper_angle_from_normalized(g))
        seen.append((expert.phase, dict(expert.free)))
        world.step()
    world.close()
    assert world.success
    careful = [free for phase, free in seen if phase in ("line up", "insert", "inserted")]
    assert careful and not any(free["left"] or free["right"] for free in careful)
    carrying = [free for phase, free in seen if phase == "carry"]
    assert carrying and all(free["right"] for free in carrying)
    assert seen[0][1] == {"left": True, "right": True}  # both start far from their parts
    assert any(phase == "pick" and not free["right"] for phase, free in seen)  # down to the peg: held


def test_perturb_is_refused_on_a_rig_without_a_simulated_world(tmp_path, capsys):
    assert record_main(["--rig", "aloha", "--dataset", str(tmp_path / "d"), "--perturb", "0.03"]) == 2
    assert "--perturb pushes the simulated rig's followers" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything was opened


def test_the_world_pushes_the_scripted_operators_episodes_only():
    """Pushes only while the scripted operator drives: not while a policy does, though the expert plans along
    (gated, its pedal never down)."""
    from calibration.connection import connect
    from robot.rig import load_rig
    from robot.sim.world_process import SimWorldProcess

    def joints_after(world, push: float, operator: str) -> np.ndarray:
        world.set_operator(operator)
        world.set_perturbation(push)
        start = world.reset(3)  # no loop writes the followers' goals: they hold where the episode starts
        world.advance(start.time + 0.4)
        return np.array([world.status().joints[side][:6] for side in ("left", "right")])

    world = SimWorldProcess(load_rig("sim"), "insertion", cameras=False, operator="off")
    with world as live, connect(live, **world.bus_options):  # the followers' torque on: only those are pushed
        # the same seed, with and without pushes: the world is deterministic, so any difference is the pushes
        assert np.abs(joints_after(world, 0.05, "gated") - joints_after(world, 0.0, "gated")).max() < 1e-9
        assert np.abs(joints_after(world, 0.05, "expert") - joints_after(world, 0.0, "expert")).max() > 0.02
