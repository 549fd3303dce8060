"""The teleop loop through the real driver against four virtual buses."""

import dataclasses
import math

import numpy as np
import pytest

from calibration.connection import connect
from robot.clock import RealClock
from robot.dynamixel.errors import NoResponseError
from robot.loop import ControlLoop, TooFarError
from robot.rig import load_rig
from robot.sim.hand import pose_arm
from robot.sim.virtual_arm import gripper_angle
from robot.sim.virtual_rig import virtual_buses
from teleop.controller import TeleopController

TRACKING_TOLERANCE_RAD = 0.01  # ~6 ticks, once the follower has caught up


@pytest.fixture
def rig(tmp_path):
    """The sim rig on in-process virtual buses (the test's hand reaches the motors), factory calibration."""
    with virtual_buses(dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)) as (live, buses):
        # tracking, not timing: a loose read deadline keeps a loaded machine from failing these tests
        with connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
            yield connected, buses


def _loop(connected, **options):
    loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(), RealClock(),
                       rate_hz=50.0, **options)
    return loop


def _pose(arm_cfg, fraction_open, **joints):
    spec = arm_cfg.spec
    gripper = spec.gripper_closed + fraction_open * (spec.gripper_open - spec.gripper_closed)
    return {**dict.fromkeys(spec.joint_names, 0.0), **joints, spec.gripper: gripper}


def test_followers_track_the_leaders(rig):
    connected, buses = rig
    leader = connected.rig.arm("leader_left")
    pose = _pose(leader, 0.25, waist=0.3, shoulder=-0.2, elbow=0.25, forearm_roll=-0.1, wrist_angle=0.15,
                 wrist_rotate=0.05)
    pose_arm(buses["leader_left"], leader.spec, pose)
    loop = _loop(connected)
    try:
        loop.run(lambda step: False, max_steps=75)
        states = loop.read_all()
    finally:
        loop.close()
    follower = states["follower_left"].position
    joints = connected.arms["follower_left"].joint_names
    np.testing.assert_allclose(follower[:6], [pose[j] for j in joints[:6]], atol=TRACKING_TOLERANCE_RAD)
    # the gripper went through its normalized value: a quarter open on the leader, a quarter open here
    spec = connected.rig.arm("follower_left").spec
    closed, open_ = spec.gripper_closed, spec.gripper_open
    assert (follower[6] - closed) / (open_ - closed) == pytest.approx(0.25, abs=0.01)
    assert np.abs(states["follower_right"].position[:6]).max() < TRACKING_TOLERANCE_RAD  # its leader rests


def test_a_far_leader_triggers_the_slow_approach(rig):
    connected, buses = rig
    leader = connected.rig.arm("leader_right")
    pose_arm(buses["leader_right"], leader.spec, _pose(leader, 1.0, elbow=0.6, wrist_rotate=-0.5))
    changes = []
    loop = _loop(connected, max_step_rad=0.1,
                 observers=[lambda step: changes.append(step.commands["follower_right"].copy())])
    speed = 0.5
    start = connected.arms["follower_right"].read().position
    try:
        steps = loop.approach(speed_rad_s=speed, refuse_above_rad=1.5)
    finally:
        loop.close()
    step_rad = speed / 50.0
    assert steps >= (0.6 - 0.1) / step_rad  # moved at the bounded speed, not in one jump
    moves = np.abs(np.diff(np.vstack([start, *changes]), axis=0))
    assert moves.max() <= step_rad + 1e-9
    assert abs(changes[-1][2] - 0.6) <= 0.1  # the elbow arrived within one normal step of the leader


def test_too_far_is_refused_naming_the_joints_and_nothing_moves(rig):
    connected, buses = rig
    leader = connected.rig.arm("leader_left")
    pose_arm(buses["leader_left"], leader.spec, _pose(leader, 1.0, shoulder=1.8))
    loop = _loop(connected)
    try:
        with pytest.raises(TooFarError, match=r"follower_left\.shoulder: at \+0\.00 rad, target \+1\.80"):
            loop.approach(speed_rad_s=0.5, refuse_above_rad=1.5)
    finally:
        loop.close()
    assert loop.stats.steps == 0
    assert abs(connected.arms["follower_left"].read().position[1]) < 0.01


def test_the_per_step_clamp_holds_when_the_leader_jumps(rig):
    connected, buses = rig
    leader = connected.rig.arm("leader_left")
    loop = _loop(connected, max_step_rad=0.05)
    commands, clamped = [], []
    loop.observers.append(lambda step: (commands.append(step.commands["follower_left"].copy()),
                                        clamped.append(step.clamped)))
    try:
        loop.run(lambda step: False, max_steps=5)
        pose_arm(buses["leader_left"], leader.spec, _pose(leader, 1.0, waist=1.0))  # a 1 rad jump in one step
        loop.run(lambda step: False, max_steps=40)
    finally:
        loop.close()
    waist = np.array([c[0] for c in commands])
    assert np.abs(np.diff(waist)).max() <= 0.05 + 1e-9
    assert waist[-1] == pytest.approx(1.0, abs=1e-3)  # the leader reads in whole ticks
    assert any(clamped)


def test_targets_are_held_within_the_calibrated_limits(rig):
    connected, buses = rig
    leader = connected.rig.arm("leader_left")
    loop = _loop(connected, max_step_rad=0.5)
    lower, upper = connected.limits()["follower_left"].lower, connected.limits()["follower_left"].upper
    pose_arm(buses["leader_left"], leader.spec, _pose(leader, 1.0, shoulder=upper[1] - 0.2))
    try:
        loop.run(lambda step: False, max_steps=10)
        pose_arm(buses["leader_left"], leader.spec, _pose(leader, 1.0, shoulder=upper[1] + 0.3))
        last = loop.run(lambda step: False, max_steps=5)
    finally:
        loop.close()
    assert last.commands["follower_left"][1] == pytest.approx(upper[1])
    assert lower[1] < 0 < upper[1]


def test_stop_leaves_followers_holding_then_torque_off_and_leaders_limp(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    with virtual_buses(rig) as (live, buses):
        with connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
            assert buses["follower_left"].get(1, "Torque Enable") == 1
            assert buses["leader_left"].get(1, "Torque Enable") == 0
            # the gripper runs in current-based position mode under its current limit: 807 mA is ALOHA's 300 units
            assert buses["follower_left"].get(9, "Operating Mode") == 5
            assert live.arm("follower_left").gripper_current_limit == 807
            assert buses["follower_left"].get(9, "Current Limit") == 300
            connected.arms["follower_left"].write_positions(np.array([0.2, 0, 0, 0, 0, 0, 0.5]))
        for name, bus in buses.items():
            assert all(bus.get(i, "Torque Enable") == 0 for i in bus.motors), name
        goal = buses["follower_left"].get(1, "Goal Position")
        assert abs(goal - buses["follower_left"].get(1, "Present Position")) <= 2  # held where it was

        with connect(live, say=lambda _: None, torque_off_at_exit=False):
            pass
        assert buses["follower_right"].get(2, "Torque Enable") == 1  # --on-exit hold
        assert buses["leader_right"].get(2, "Torque Enable") == 0


def test_a_motor_that_stops_answering_stops_the_loop_naming_it_and_the_rest_is_released(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    with virtual_buses(rig) as (live, buses):
        with pytest.raises(NoResponseError, match=r"motor 7 \(wrist_angle\)") as info:
            with connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
                loop = _loop(connected)
                try:
                    loop.run(lambda step: False, max_steps=5)
                    buses["follower_right"].silence(7)
                    loop.run(lambda step: False, max_steps=50)
                finally:
                    loop.close()
        assert buses["follower_right"].port in str(info.value)
        assert buses["follower_left"].get(1, "Torque Enable") == 0
        assert buses["follower_right"].get(1, "Torque Enable") == 0  # the rest of that arm still answered


def test_sine_motion_is_smooth_and_starts_at_rest():
    from robot.sim.rig_process import sine_pose

    arm = load_rig("sim").arm("leader_left")
    rest = sine_pose(arm, 0.0)
    assert all(rest[j] == 0.0 for j in arm.spec.joint_names[:6])
    assert rest[arm.spec.gripper] == pytest.approx(gripper_angle(arm.spec, 1.0))
    speeds = [abs(sine_pose(arm, t + 0.02)["waist"] - sine_pose(arm, t)["waist"]) / 0.02 for t in np.arange(0, 20, 0.1)]
    assert max(speeds) < 0.4 * 2 * math.pi * 0.3 * 1.2


def test_the_gripper_current_limit_is_milliamps_on_every_motor_model():
    from calibration.connection import current_units
    from robot.dynamixel.control_table import get_model

    assert current_units(807, get_model("XM430-W350"), "g") == 300  # 2.69 mA a unit: ALOHA's register value
    assert current_units(300, get_model("XL330-M288"), "g") == 300  # 1 mA a unit
    with pytest.raises(ValueError, match=r"follower gripper: gripper_current_limit 5000 mA is more than a XL330-M288"):
        current_units(5000, get_model("XL330-M288"), "follower gripper")
