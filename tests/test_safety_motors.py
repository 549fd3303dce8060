"""Safety at the motors: nothing non-finite is written, every stop releases every motor it can.

Through the real driver on virtual buses, the real loop and a real tiny policy made to output NaN.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import safetensors.torch

from calibration.connection import connect
from deploy.inference import ChunkPredictor
from deploy.rollout import DeployOptions, run_rollout
from deploy.runner import PolicyStalledError
from policies.checkpoint import MODEL_FILE, CheckpointError, load_checkpoint
from robot.arm import Arm, NonFiniteCommandError, rad_to_ticks
from robot.arm_kinds import builtin_kinds
from robot.clock import RealClock
from robot.dynamixel.errors import TorqueReleaseError
from robot.loop import ControlLoop, JointLimits
from robot.rig import load_rig
from robot.sim.sim_clock import SimClock
from robot.sim.virtual_arm import virtual_arm_bus
from robot.sim.virtual_rig import virtual_buses
from robot.sim.world_process import SimWorldProcess
from teleop.controller import TeleopController
from teleop.pedal import ScriptedPedal

TINY = ["--preset", "tiny", "--workers", "0", "--no-progress", "--device", "cpu", "--val-fraction", "0"]
NAN = float("nan")


# -- the last line of defence: radians to ticks ------------------------------------------------------------------
@pytest.mark.parametrize("bad", [NAN, float("inf"), -float("inf")])
def test_rad_to_ticks_refuses_non_finite_values(bad):
    with pytest.raises(NonFiniteCommandError):
        rad_to_ticks(np.array([0.0, bad]))


def test_an_arm_never_writes_a_non_finite_goal_and_names_the_joint(follower):
    arm, vbus = follower
    before = vbus.get(2, "Goal Position")
    goal = np.zeros(7)
    goal[1] = NAN
    with pytest.raises(NonFiniteCommandError, match=r"follower_left .*shoulder"):
        arm.write_positions(goal)
    assert vbus.get(2, "Goal Position") == before


# -- the loop refuses a non-finite target and is never poisoned --------------------------------------------------
class Scripted:
    """A controller that asks for the given targets, one per step."""

    def __init__(self, name: str, targets: list[np.ndarray]) -> None:
        self.name, self.targets_left = name, list(targets)

    def targets(self, states):
        return {self.name: self.targets_left.pop(0)}


def test_a_nan_target_holds_the_arm_and_the_next_finite_target_moves_it(follower, caplog):
    arm, vbus = follower
    arm.set_torque(True)
    start = arm.read().position
    nan, moved = np.full(7, NAN), start + 0.05
    nan_one_joint = start.copy()
    nan_one_joint[4] = NAN
    controller = Scripted(arm.name, [start, nan, nan_one_joint, nan, moved])
    limits = {arm.name: JointLimits(np.full(7, -3.0), np.full(7, 3.0))}
    loop = ControlLoop({arm.name: arm}, controller, limits, RealClock(), max_step_rad=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="robot.loop"):
            steps = [loop.step() for _ in range(5)]
    finally:
        loop.close()
    for step in steps[1:4]:  # held: the last good command, never NaN
        assert np.array_equal(step.commands[arm.name], steps[0].commands[arm.name])
    assert np.allclose(steps[4].commands[arm.name], moved)  # the clamp state was not poisoned
    assert loop.non_finite == {arm.name: 3}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "follower_left" in warnings[0] and "waist" in warnings[0], warnings
    assert np.all(np.isfinite(loop.commands[arm.name]))
    assert vbus.get(1, "Goal Position") > -100_000  # never -2147483648


def test_nan_joint_limits_never_reach_the_motors(follower):
    arm, vbus = follower
    start = arm.read().position
    lower = np.full(7, -3.0)
    lower[0] = NAN  # e.g. a calibration file's NaN limit, had it got past the parser
    loop = ControlLoop({arm.name: arm}, Scripted(arm.name, [start + 0.02]), {arm.name: JointLimits(lower,
                       np.full(7, 3.0))}, RealClock())
    try:
        step = loop.step()
    finally:
        loop.close()
    assert np.array_equal(step.commands[arm.name], start) and loop.non_finite == {arm.name: 1}


def test_nan_pair_offsets_leave_the_followers_holding(tmp_path):
    """A rig whose pair offsets are NaN (had the rig file got past the parser): teleop writes nothing bad."""
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    with virtual_buses(rig) as (live, buses), connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
        maps = connected.joint_maps()
        for _, _, joint_map in maps:
            joint_map.offset = np.full_like(joint_map.offset, NAN)
        loop = ControlLoop(connected.arms, TeleopController(maps), connected.limits(), RealClock())
        try:
            first = loop.read_all()
            steps = [loop.step() for _ in range(3)]
        finally:
            loop.close()
    for step in steps:
        for follower in ("follower_left", "follower_right"):
            assert np.array_equal(step.commands[follower], first[follower].position)
    assert loop.non_finite == {"follower_left": 3, "follower_right": 3}


# -- a policy that outputs NaN --------------------------------------------------------------------------------------
class NanPredictor(ChunkPredictor):
    """The real predictor whose every chunk is NaN (as NaN weights or broken statistics would make it)."""

    def __call__(self, obs):
        return np.full_like(super().__call__(obs), NAN)


def test_a_nan_policy_is_dropped_where_chunks_enter_a_takeover_still_drives_and_the_rollout_stops_named(
        checkpoint):
    world = SimWorldProcess(load_rig("sim"), "transfer_cube", image_size=(48, 64), cameras=["cam_high"],
                            operator="gated")
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        world.set_gate("stalled:10")  # the operator takes over when the followers stop moving
        status = world.reset(7)
        seen = []
        with pytest.raises(PolicyStalledError, match=r"no usable action for 51 steps .* dropped as NaN"):
            run_rollout(connected, NanPredictor(load_checkpoint(checkpoint)), world.cameras,
                        SimClock(world, status.time), DeployOptions(max_uncovered_s=1.0), steps=400,
                        pedal=ScriptedPedal(world), observers=[seen.append])
    commands = np.array([np.concatenate([s.commands[f] for f in ("follower_left", "follower_right")])
                         for s in seen])
    assert np.all(np.isfinite(commands))
    human = [s for s in seen if "leader_left" not in s.commands]  # the leaders are commanded only when autonomous
    assert human, "the gate never took over"
    travelled = np.abs(np.diff(commands, axis=0)).sum()
    assert travelled > 0.5, travelled  # the followers moved under the operator although the policy gave NaN


# -- a checkpoint that cannot give finite actions is refused at load -------------------------------------------------
def _copy(checkpoint, tmp_path):
    import shutil

    out = tmp_path / "ckpt"
    shutil.copytree(checkpoint, out)
    return out, safetensors.torch.load_file(str(out / MODEL_FILE))


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(checkpoint, tmp_path):
    out, weights = _copy(checkpoint, tmp_path)
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name].view(-1)[0] = NAN
    safetensors.torch.save_file(weights, str(out / MODEL_FILE))
    with pytest.raises(CheckpointError, match=rf"NaN or infinite values .*{name}"):
        load_checkpoint(out)


def test_a_checkpoint_whose_finite_weights_overflow_is_refused(checkpoint, tmp_path):
    out, weights = _copy(checkpoint, tmp_path)
    for name, value in weights.items():
        if value.is_floating_point() and value.dim() == 2:  # every linear layer: finite, and far too large
            weights[name] = value.sign() * 3e38 + 3e38 * (value == 0)
    safetensors.torch.save_file(weights, str(out / MODEL_FILE))
    with pytest.raises(CheckpointError, match="neutral observation gives non-finite actions"):
        load_checkpoint(out)


# -- every stop releases every motor it can ----------------------------------------------------------------------
@pytest.fixture
def torqued_arm():
    spec = builtin_kinds()["viperx_300_6dof"]
    with virtual_arm_bus("follower_left", spec) as vbus:
        arm = Arm.on_port("follower_left", spec, vbus.port, read_deadline_s=0.2,
                          transaction_attempts=2).open()
        arm.set_torque(True)
        yield arm, vbus
        arm.close()


def test_torque_off_after_a_hardware_error_reaches_every_motor(torqued_arm):
    arm, vbus = torqued_arm
    vbus.set_hardware_error(4, 0x20)  # overload on the elbow: its firmware drops its torque
    arm.set_torque(False)  # the alert on motor 4 no longer stops the loop over the others
    assert [vbus.get(i, "Torque Enable") for i in arm.bus.ids] == [0] * 9


def test_torque_off_with_a_silent_motor_releases_the_rest_and_names_it(torqued_arm):
    arm, vbus = torqued_arm
    vbus.silence(4)
    with pytest.raises(TorqueReleaseError) as err:
        arm.set_torque(False)
    assert err.value.motor_ids == [4]
    assert "motor 4 (elbow)" in str(err.value) and "may still be torqued" in str(err.value)
    assert [vbus.get(i, "Torque Enable") for i in arm.bus.ids] == [0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_hold_goes_motor_by_motor_when_the_group_read_fails(torqued_arm):
    arm, vbus = torqued_arm
    old_goal = vbus.get(1, "Goal Position")
    arm.set_torque(False)
    for motor_id in (1, 7):
        vbus.set_position(motor_id, old_goal + 300)  # the arm was pushed: hold must mean here, not the old goal
    vbus.silence(4)
    with pytest.raises(TorqueReleaseError) as err:
        arm.hold()
    assert err.value.motor_ids == [4]
    for motor_id in (1, 7):
        assert abs(vbus.get(motor_id, "Goal Position") - (old_goal + 300)) <= 2


def test_the_rig_release_reports_each_motor_left_torqued_and_stops_the_others(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    said = []
    with virtual_buses(rig) as (live, buses):
        with connect(live, say=said.append, read_deadline_s=0.2, transaction_attempts=2):
            buses["follower_left"].silence(4)
            buses["follower_right"].set_hardware_error(2, 0x20)
        torque = {name: [bus.get(i, "Torque Enable") for i in range(1, 10)] for name, bus in buses.items()}
    assert torque["follower_left"] == [0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert torque["follower_right"] == [0] * 9
    assert torque["leader_left"] == torque["leader_right"] == [0] * 9
    warnings = [s for s in said if s.startswith("WARNING")]
    assert any("follower_left" in w and "motor 4 (elbow)" in w and "may still be torqued" in w for w in warnings)
    assert not any("follower_right: could not turn torque off" in w for w in warnings), warnings


def test_an_infinite_target_is_refused_not_clamped_to_a_joint_limit(follower):
    arm, vbus = follower
    start = arm.read().position
    target = start.copy()
    target[0] = float("inf")  # np.clip would make this the upper limit: a drive to the end stop
    loop = ControlLoop({arm.name: arm}, Scripted(arm.name, [target, target]),
                       {arm.name: JointLimits(np.full(7, -3.0), np.full(7, 3.0))}, RealClock())
    try:
        steps = [loop.step() for _ in range(2)]
        with pytest.raises(NonFiniteCommandError, match="waist"):
            ControlLoop({arm.name: arm}, Scripted(arm.name, [target]), loop.limits, RealClock()).approach(0.5, 1.5)
    finally:
        loop.close()
    assert all(np.array_equal(s.commands[arm.name], start) for s in steps) and loop.non_finite == {arm.name: 2}


def test_an_unplugged_adapter_does_not_keep_the_other_arms_from_being_released(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    said = []
    with virtual_buses(rig) as (live, buses):
        with connect(live, say=said.append, read_deadline_s=0.2, transaction_attempts=2) as connected:
            connected.arms["follower_left"].bus.port.ser.close()  # the serial device is gone: OSError, not a bus error
        torque = {name: [bus.get(i, "Torque Enable") for i in range(1, 10)] for name, bus in buses.items()}
    assert torque["follower_right"] == torque["leader_left"] == torque["leader_right"] == [0] * 9
    assert any(w.startswith("WARNING: follower_left") for w in said), said
