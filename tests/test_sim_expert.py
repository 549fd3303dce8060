"""The scripted operator in the world, in-process: its gate rules, and taking over from a perturbed state."""

from __future__ import annotations

import numpy as np
import pytest

from robot.sim.gate import GateInput, parse_gate
from robot.sim.sim_clock import SimClock


def step_input(reward=0, max_reward=0, drift=0.0, lifted=False, held=False, success=False):
    return GateInput(reward, max_reward, success, drift, lifted, held)


def test_drift_presses_after_its_step_count_and_releases_after_progress():
    gate = parse_gate("drift:0.3:3")
    assert [gate.update(step_input(drift=d)) for d in (0.5, 0.5, 0.1, 0.5, 0.5)] == [False] * 5  # not 3 running
    assert gate.update(step_input(drift=0.5)) is True
    assert gate.presses == 1
    gate.hold = 5
    held = [gate.update(step_input(reward=1, drift=0.0)) for _ in range(4)]
    assert held == [True] * 4  # a person holds control for `hold` steps before handing back
    assert gate.update(step_input(reward=1)) is False  # hold reached and the reward rose since the press


def test_no_release_without_progress_until_max_hold():
    gate = parse_gate("stalled:2")
    gate.hold, gate.max_hold = 2, 6
    downs = [gate.update(step_input(max_reward=0)) for _ in range(10)]
    # no progress for 2 steps: pressed at the 2nd; no reward rise, so held until max_hold, then handed back
    assert downs[0] is False and downs[1:7] == [True] * 6 and downs[7] is False


def test_dropped_fires_when_a_lifted_object_lands_unheld():
    gate = parse_gate("dropped")
    assert not gate.update(step_input(lifted=False, held=False))  # never lifted: resting is no drop
    assert not gate.update(step_input(lifted=True, held=True))
    assert not gate.update(step_input(lifted=False, held=True))  # put down while held
    assert gate.update(step_input(lifted=False, held=False))


def test_never_and_success_never_press():
    assert not any(parse_gate("never").update(step_input(drift=9)) for _ in range(20))
    gate = parse_gate("drift:0.1:1")
    assert not gate.update(step_input(drift=9, success=True))


@pytest.mark.parametrize("spec", ["drift:x", "stalled:1:2", "dropped:3", "nope", "drift:-1"])
def test_bad_gate_specs_are_refused_with_the_rules(spec):
    with pytest.raises(ValueError, match="gate rule|drift"):
        parse_gate(spec)


def test_sim_clock_advances_the_world_to_each_deadline():
    class World:
        calls: list[float] = []

        def advance(self, t):
            self.calls.append(t)
            return round(t / 0.02) * 0.02  # the world lands on its own step grid

    world = World()
    clock = SimClock(world, 0.0)
    clock.sleep_until(0.0199999)
    clock.sleep_until(0.01)  # already past: nothing to run
    assert world.calls == [0.0199999] and clock.now() == pytest.approx(0.02)


def test_expert_takes_over_from_a_perturbed_state():
    from robot.sim.expert import Expert
    from robot.sim.world import World, gripper_angle_from_normalized

    world = World("transfer_cube")
    expert = Expert(world)
    world.reset(5)
    rng = np.random.default_rng(0)
    for t in range(520):
        if 90 <= t < 120:  # mid hand-over, something else shoves both arms and opens the grippers
            if t == 90:
                shove = {s: world.read_arm(s).position[:6] + rng.uniform(-0.4, 0.4, 6) for s in ("left", "right")}
            for side in ("left", "right"):
                world.set_targets(side, shove[side], gripper_angle_from_normalized(1.0))
            continue_from_here = t == 119
        else:
            continue_from_here = False
            for side, (q, g) in expert.act().items():
                world.set_targets(side, q, gripper_angle_from_normalized(g))
        world.step()
        if continue_from_here:
            assert world.reward() < 4
            expert.reset()
            world.max_reward = 0
    world.close()
    assert world.success, f"expert ended in phase {expert.phase} with max reward {world.max_reward}"


def test_every_registered_task_has_a_scene_a_plan_and_a_gym_aloha_twin_and_an_unknown_one_is_refused():
    from robot.sim.expert import PLANS
    from robot.sim.tasks import TASKS, UnknownTaskError, sim_task
    from robot.sim.world import TASKS as SCENES
    from robot.sim.world import World

    assert set(TASKS) == set(SCENES) == set(PLANS)
    for task in TASKS.values():
        assert task.gym_env.startswith("gym_aloha/") and len(task.reward_stages) == 4 and task.episode_steps > 0
    with pytest.raises(UnknownTaskError, match="unknown simulated task 'stack_cups'; known tasks: transfer_cube, "
                                               "insertion"):
        sim_task("stack_cups")
    with pytest.raises(UnknownTaskError, match="known tasks"):
        World("stack_cups")


def run_insertion(seed: int, steps: int = 400, take_over=lambda t, first_success, reward: False):
    """The insertion expert on the world, physics only (as bench/insertion_demos.py runs it). `take_over` says on
    which steps the operator takes over afresh (expert.reset(), as the gate does). Per step: the reward after it,
    the expert's phase and both gripper commands; the step of the first success; the steps taken over on."""
    from robot.sim.expert import Expert
    from robot.sim.world import World, gripper_angle_from_normalized

    world = World("insertion")
    expert = Expert(world)
    world.reset(seed)
    expert.reset()
    log, first_success, taken_over, reward = [], None, [], 0
    for t in range(steps):
        if take_over(t, first_success, reward):
            expert.reset()
            taken_over.append((t, reward))
        commands = expert.act()
        for side, (q, g) in commands.items():
            world.set_targets(side, q, gripper_angle_from_normalized(g))
        reward = world.step()
        log.append((reward, expert.phase, commands["left"][1], commands["right"][1]))
        if reward == 4 and first_success is None:
            first_success = t
    world.close()
    return log, first_success, taken_over


def assert_held_after(log, first_success):
    assert first_success is not None, f"no success; max reward {max(r for r, *_ in log)}"
    after = log[first_success + 1:]
    assert [t for t, (_, phase, *_) in enumerate(after, first_success + 1) if phase == "pick"] == []
    assert all(left == right == 0.0 for _, _, left, right in after), "a gripper opened after the insertion"
    assert log[-1][0] == 4, f"reward at the last step {log[-1][0]}, phases after success " \
                            f"{sorted({phase for _, phase, *_ in after})}"


@pytest.mark.parametrize("seed", [0, 7])
def test_a_finished_insertion_is_held_to_the_episode_end(seed):
    log, first_success, _ = run_insertion(seed)
    assert_held_after(log, first_success)
    assert first_success < 200


def test_a_takeover_from_a_finished_insertion_holds_it():
    # taken over just after the success, on the first step after that whose pin contact is off, and later on
    off_taken: list[int] = []

    def take_over(t, first_success, reward):
        if first_success is None:
            return False
        if t > first_success + 1 and reward < 4 and not off_taken:
            off_taken.append(t)
            return True
        return t - first_success in (1, 200)

    log, first_success, taken_over = run_insertion(0, take_over=take_over)
    assert_held_after(log, first_success)
    assert any(reward < 4 for _, reward in taken_over), "no takeover landed on a step without the pin contact"


def test_a_takeover_mid_insertion_still_picks():
    from robot.sim.expert import Expert
    from robot.sim.world import World, gripper_angle_from_normalized

    world = World("insertion")
    expert = Expert(world)
    world.reset(3)
    phases_after = []
    for t in range(520):
        if 70 <= t < 100:  # both parts lifted: something opens the grippers and drops them
            for side in ("left", "right"):
                world.set_targets(side, world.read_arm(side).position[:6], gripper_angle_from_normalized(1.0))
            if t == 99:
                expert.reset()
                world.max_reward = 0
        else:
            for side, (q, g) in expert.act().items():
                world.set_targets(side, q, gripper_angle_from_normalized(g))
            phases_after.append(expert.phase) if t >= 100 else None
        world.step()
    world.close()
    assert phases_after[0] == "pick" and world.success, f"max reward {world.max_reward}, phase {expert.phase}"
