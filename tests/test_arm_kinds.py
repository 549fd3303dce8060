"""Arm kinds as data: the built-in kinds, a rig file's own kinds, and a Koch pair through calibration and teleop."""

import copy
import math

import numpy as np
import pytest
import yaml
from rig_files import rig_refused

from calibration.connection import connect
from calibration.procedure import calibrate_arm
from recording.layout import StateLayout, joint_layout
from robot.arm import Arm
from robot.arm_kinds import builtin_kinds
from robot.clock import RealClock
from robot.loop import ControlLoop
from robot.rig import RigFileError, load_rig
from robot.sim.hand import Mount, pose_arm
from robot.sim.virtual_rig import virtual_buses
from teleop.controller import TeleopController

ALOHA_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
KOCH_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def test_the_aloha_kinds_hold_the_values_tandem_always_had():
    kinds = builtin_kinds()
    viperx, widowx = kinds["viperx_300_6dof"], kinds["widowx_250_6dof"]
    for spec, big, small, wrist in ((viperx, "XM540-W270", "XM430-W350", "XM430-W350"),
                                    (widowx, "XM430-W350", "XL430-W250", "XL430-W250")):
        assert spec.joint_names == ALOHA_JOINTS and spec.gripper == "gripper"
        assert [(j.motor_id, j.model, j.shadow_id, j.shadow_reversed) for j in spec.joints] == [
            (1, big, None, True), (2, big, 3, True), (4, big, 5, True), (6, big, None, True), (7, big, None, True),
            (8, small, None, True), (9, wrist, None, True)]
        assert [m.motor_id for m in spec.motors()] == list(range(1, 10))
        assert dict(spec.limits) == {"waist": (-math.pi, math.pi), "shoulder": (-1.95, 1.95), "elbow": (-2.2, 1.75),
                                     "forearm_roll": (-math.pi, math.pi), "wrist_angle": (-2.0, 2.25),
                                     "wrist_rotate": (-math.pi, math.pi)}
        assert spec.rest_angles() == dict.fromkeys(ALOHA_JOINTS[:6], 0.0)  # the virtual arms start at 0
        poses = spec.calibration
        assert poses.reference_angles() == dict.fromkeys(ALOHA_JOINTS[:6], 0.0)
        assert poses.second_angles() == {"waist": math.pi / 2, "shoulder": math.pi / 4, "elbow": -math.pi / 4,
                                         "forearm_roll": math.pi / 2, "wrist_angle": math.pi / 2,
                                         "wrist_rotate": math.pi / 2}
        assert poses.reference_prompt() == (
            "REFERENCE POSE: upper arm straight up, forearm level and pointing forward, wrist straight and "
            "level, forearm and hand not rolled, waist facing forward, gripper fully CLOSED.")
        assert poses.second_prompt(spec.gripper).splitlines() == [
            "SECOND POSE, from the reference pose:",
            "  waist: turned a quarter turn to the arm's left (counter-clockwise seen from above)",
            "  shoulder: upper arm tilted 45 degrees forward",
            "  elbow: forearm raised 45 degrees (hand up)",
            "  forearm_roll: forearm rolled a quarter turn counter-clockwise, seen from behind",
            "  wrist_angle: hand bent 90 degrees down",
            "  wrist_rotate: hand rolled a quarter turn counter-clockwise, seen from behind",
            "  gripper: fully OPEN"]
    assert (viperx.gripper_closed, viperx.gripper_open) == (-0.6213, 1.4910)
    assert (widowx.gripper_closed, widowx.gripper_open) == (-1.65, -0.8)
    assert joint_layout(14) == tuple(f"{side}_{j}" for side in ("left", "right") for j in ALOHA_JOINTS)


def test_the_koch_kinds_are_lerobots_motors():
    follower, leader = builtin_kinds()["koch_follower"], builtin_kinds()["koch_leader"]
    assert follower.joint_names == leader.joint_names == KOCH_JOINTS
    assert [(j.motor_id, j.model, j.shadow_id) for j in follower.joints] == [
        (1, "XL430-W250", None), (2, "XL430-W250", None), *((i, "XL330-M288", None) for i in range(3, 7))]
    assert [(j.motor_id, j.model, j.shadow_id) for j in leader.joints] == [(i, "XL330-M077", None)
                                                                          for i in range(1, 7)]
    assert follower.calibration == leader.calibration  # one pose table: leader and follower agree joint for joint
    assert set(follower.calibration.second_angles().values()) == {math.pi / 2}  # LeRobot's rotated position


def test_kinds_are_read_only():
    spec = builtin_kinds()["koch_follower"]
    with pytest.raises(TypeError):
        spec.limits["elbow_flex"] = (-9.0, 9.0)


# -- a rig file's own kinds --------------------------------------------------------------------------------------------
SIX = {
    "description": "a six-joint arm",
    "joints": {"base": {"id": 1, "model": "XL430-W250"}, "lift": {"id": 2, "model": "XL430-W250", "shadow": 7},
               "elbow": {"id": 3, "model": "XL330-M288"}, "flex": {"id": 4, "model": "XL330-M288"},
               "roll": {"id": 5, "model": "XL330-M288"}, "grip": {"id": 6, "model": "XL330-M288"}},
    "gripper": {"joint": "grip", "closed": 0.2, "open": 1.2},
    "rest": {"lift": 1.5, "elbow": -1.2},
    "limits": {"base": [-3.0, 3.0], "lift": [-0.5, 2.5], "elbow": [-2.5, 0.5], "flex": [-1.8, 1.8],
               "roll": [-3.0, 3.0]},
    "calibration": {
        "reference": "everything straight up, gripper closed",
        "joints": {"base": {"reference_deg": 0, "second_deg": 90, "how": "base a quarter turn left"},
                   "lift": {"reference_deg": 0, "second_deg": 45, "how": "upper arm 45 degrees forward"},
                   "elbow": {"reference_deg": 0, "second_deg": -60, "how": "forearm 60 degrees up"},
                   "flex": {"reference_deg": 0, "second_deg": 90, "how": "hand bent down"},
                   "roll": {"reference_deg": 0, "second_deg": 90, "how": "hand rolled a quarter turn"}}},
}
RIG = {
    "kinds": {"six": SIX},
    "arms": {"leader_left": {"role": "leader", "port": "virtual", "kind": "six"},
             "follower_left": {"role": "follower", "port": "virtual", "kind": "six",
                               "joints": {"roll": {"id": 8, "model": "XL330-M077"}}}},
    "pairs": [{"leader": "leader_left", "follower": "follower_left", "signs": {"base": -1}}],
}


def _write(tmp_path, data):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_rig_file_defines_its_own_kind(tmp_path):
    rig = load_rig(_write(tmp_path, RIG))
    leader, follower = rig.arm("leader_left").spec, rig.arm("follower_left").spec
    assert leader.kind == follower.kind == "six" and leader.description == "a six-joint arm"
    assert leader.joint_names == ("base", "lift", "elbow", "flex", "roll", "grip") and leader.gripper == "grip"
    assert [m.motor_id for m in leader.motors()] == [1, 2, 3, 4, 5, 6, 7]
    assert (follower.joints[4].motor_id, follower.joints[4].model) == (8, "XL330-M077")  # the arm's override
    assert leader.joints[4].motor_id == 5  # the kind itself is untouched
    assert leader.rest_angles() == {"base": 0.0, "lift": 1.5, "elbow": -1.2, "flex": 0.0, "roll": 0.0}
    assert leader.calibration.second_angles()["elbow"] == pytest.approx(math.radians(-60))
    assert dict(leader.limits)["elbow"] == (-2.5, 0.5) and rig.pairs[0].signs == {"base": -1}


def _kind(change):
    def apply(data):
        change(data["kinds"]["six"])
    return apply


@pytest.mark.parametrize("change, where, message", [
    (_kind(lambda k: k["joints"]["elbow"].update(id=2)), "kinds.six.joints", "motor ID(s) [2] are used twice"),
    (_kind(lambda k: k["joints"]["roll"].update(id=7)), "kinds.six.joints", "motor ID(s) [7] are used twice"),
    (_kind(lambda k: k["joints"]["elbow"].update(model="XL999")), "kinds.six.joints.elbow.model",
     "'XL999' is not one of"),
    (_kind(lambda k: k["gripper"].update(joint="claw")), "kinds.six.gripper.joint",
     "'claw' is not one of the kind's joints: base, lift, elbow, flex, roll, grip"),
    (_kind(lambda k: k["gripper"].update(open=0.25)), "kinds.six.gripper.open", "within 0.1 rad of closed"),
    (_kind(lambda k: k["calibration"]["joints"].update(wrist={"reference_deg": 0, "second_deg": 90, "how": "x"})),
     "kinds.six.calibration.joints.wrist", "unknown joint; the kind's joints are base, lift, elbow"),
    (_kind(lambda k: k["calibration"]["joints"].pop("flex")), "kinds.six.calibration.joints.flex",
     "no calibration pose for joint(s) flex"),
    (_kind(lambda k: k["calibration"]["joints"].update(grip={"reference_deg": 0, "second_deg": 90, "how": "x"})),
     "kinds.six.calibration.joints.grip", "leave the gripper out"),
    (_kind(lambda k: k["calibration"]["joints"]["lift"].update(second_deg=10)),
     "kinds.six.calibration.joints.lift.second_deg", "within 20 of reference_deg"),
    (_kind(lambda k: k["calibration"]["joints"]["elbow"].update(second_deg=60)),
     "kinds.six.calibration.joints.elbow.second_deg", "60 degrees is outside the joint's limits [-2.5, 0.5] rad"),
    (_kind(lambda k: k["calibration"]["joints"]["base"].update(how=" ")), "kinds.six.calibration.joints.base.how",
     "say how a person gets"),
    (_kind(lambda k: k["limits"].update(lift=[2.5, -0.5])), "kinds.six.limits.lift", "is not lower < upper"),
    (_kind(lambda k: k["limits"].update(lift=[0.0])), "kinds.six.limits.lift", "expected [lower, upper]"),
    (_kind(lambda k: k["limits"].pop("roll")), "kinds.six.limits.roll", "no limits for joint(s) roll"),
    (_kind(lambda k: k["rest"].update(lift=3.0)), "kinds.six.rest.lift", "outside the joint's limits"),
    (_kind(lambda k: k.update(joints={})), "kinds.six.joints", "at least one joint"),
    (_kind(lambda k: k["joints"].update(lift_shadow={"id": 9, "model": "XL330-M288"})),
     "kinds.six.joints.lift_shadow", "may not end in _shadow"),
    (lambda d: d["arms"].update(follower_2={"role": "follower", "port": "virtual", "kind": "six"}),
     "arms.follower_2.side", "left (unset: right where the name has 'right', else left) is also the side of "
                             "follower follower_left"),
    (_kind(lambda k: k.update(colour="red")), "kinds.six.colour", "unknown field"),
    (lambda d: d["kinds"].update(koch_leader=d["kinds"]["six"]), "kinds.koch_leader",
     "'koch_leader' is the name of a built-in kind (Koch v1.1 leader"),
    (lambda d: d["arms"]["leader_left"].update(kind="seven"), "arms.leader_left.kind",
     f"'seven' is not one of {', '.join(builtin_kinds())}, six"),
    (lambda d: d["arms"]["follower_left"]["joints"].update(wrist={"id": 9, "model": "XL330-M077"}),
     "arms.follower_left.joints.wrist", "unknown joint; a six has joints base, lift, elbow, flex, roll, grip"),
    (lambda d: d["pairs"][0]["signs"].update(waist=-1), "pairs[0].signs.waist",
     "unknown joint; follower follower_left (six) has joints base, lift, elbow, flex, roll"),
])
def test_bad_kinds_are_refused_naming_the_field(tmp_path, change, where, message):
    data = copy.deepcopy(RIG)
    change(data)
    rig_refused(_write(tmp_path, data), where, message)


def test_a_leader_and_follower_with_other_joints_are_not_paired(tmp_path):
    data = {"arms": {"leader_left": {"role": "leader", "port": "virtual", "kind": "koch_leader"},
                     "follower_left": {"role": "follower", "port": "virtual", "kind": "viperx_300_6dof"}},
            "pairs": [{"leader": "leader_left", "follower": "follower_left"}]}
    with pytest.raises(RigFileError) as info:
        load_rig(_write(tmp_path, data))
    assert info.value.where == "pairs[0].leader"
    assert info.value.problem.startswith(
        "leader_left is a koch_leader (joints shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, "
        "gripper; gripper gripper) and follower_left a viperx_300_6dof (joints waist, shoulder, elbow, forearm_roll, "
        "wrist_angle, wrist_rotate, gripper; gripper gripper)")


# -- a Koch pair on virtual buses ------------------------------------------------------------------------------------
KOCH_RIG = {
    "name": "koch_test",
    "arms": {"leader_left": {"role": "leader", "port": "virtual", "kind": "koch_leader"},
             "follower_left": {"role": "follower", "port": "virtual", "kind": "koch_follower"}},
    "pairs": [{"leader": "leader_left", "follower": "follower_left"}],
    "calibration_dir": "calibration",
    "read_deadline_ms": 1000,  # virtual buses in a child process on a loaded machine, as the sim rig
}
# As the arms might come out of the box: each motor's zero somewhere else, some mounted reversed.
MOUNTING = {
    "leader_left": {1: Mount(1, 1500), 2: Mount(-1, 3000), 3: Mount(-1, 2200), 4: Mount(1, 1000), 5: Mount(1, 2600),
                    6: Mount(-1, 2300)},
    "follower_left": {1: Mount(-1, 2500), 2: Mount(1, 1200), 3: Mount(1, 2900), 4: Mount(-1, 3100),
                      5: Mount(-1, 1900), 6: Mount(1, 1700)},
}


def _person(vbus, spec, mounting):
    """Answers the procedure's two prompts by putting the virtual arm in the kind's poses, through its mounting."""
    poses = iter([{**spec.calibration.reference_angles(), spec.gripper: spec.gripper_closed},
                  {**spec.calibration.second_angles(), spec.gripper: spec.gripper_open}])
    prompts = []

    def prompt(text):
        prompts.append(text)
        pose_arm(vbus, spec, next(poses), mounting)

    return prompt, prompts


def test_a_koch_pair_is_calibrated_connected_and_teleoperated(tmp_path):
    rig = load_rig(_write(tmp_path, KOCH_RIG))
    with virtual_buses(rig) as (live, buses):
        for arm_cfg in live.arms:
            spec, mounting = arm_cfg.spec, MOUNTING[arm_cfg.name]
            prompt, prompts = _person(buses[arm_cfg.name], spec, mounting)
            with Arm.on_port(arm_cfg.name, spec, arm_cfg.port, read_deadline_s=0.2) as arm:
                calibration = calibrate_arm(arm, prompt)
            assert "shoulder_lift: upper arm raised a quarter turn" in prompts[1]
            assert [m.reverse for m in calibration.motors[:5]] == [mounting[i].sign < 0 for i in range(1, 6)]
            assert set(calibration.limits) == set(KOCH_JOINTS)
            calibration.save(rig.calibration_dir / f"{arm_cfg.name}.json")

        with connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
            layout = StateLayout.from_connected(connected)
            assert layout.names == tuple(f"left_{j}" for j in KOCH_JOINTS)
            [(leader_name, follower_name, joint_map)] = connected.joint_maps()
            # the person moves the leader: every joint reads its angle, the follower is told the same
            leader_spec = connected.arms[leader_name].spec
            pose = {"shoulder_pan": 0.4, "shoulder_lift": 1.2, "elbow_flex": 0.9, "wrist_flex": -0.5,
                    "wrist_roll": 0.7, "gripper": leader_spec.gripper_closed + 0.25 * (leader_spec.gripper_open -
                                                                                       leader_spec.gripper_closed)}
            pose_arm(buses[leader_name], leader_spec, pose, MOUNTING[leader_name])
            reading = connected.arms[leader_name].read().position
            np.testing.assert_allclose(reading[:5], [pose[j] for j in KOCH_JOINTS[:5]], atol=0.01)
            # the gripper reads in its motor's own frame; its calibrated range says how far open it is
            assert connected.calibrations[leader_name].gripper_normalized(reading[5]) == pytest.approx(0.25, abs=0.01)
            target = joint_map(reading)
            np.testing.assert_allclose(target[:5], reading[:5])
            follower_calibration = connected.calibrations[follower_name]
            assert follower_calibration.gripper_normalized(target[5]) == pytest.approx(0.25, abs=0.01)

            loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                               RealClock(), rate_hz=50.0)
            try:
                loop.run(lambda step: False, max_steps=75)
                follower = loop.read_all()[follower_name].position
            finally:
                loop.close()
            np.testing.assert_allclose(follower[:5], target[:5], atol=0.02)
            assert layout.qpos({follower_name: connected.arms[follower_name].read()})[5] == pytest.approx(0.25,
                                                                                                          abs=0.02)


@pytest.mark.slow
def test_a_koch_rig_records_trains_and_its_policy_is_refused_on_aloha(tmp_path, capsys):
    """The commands on a Koch rig file: calibrate, record, train; the checkpoint names the Koch joints."""
    from calibration.cli import main as calibrate_main
    from deploy.compat import check_rig
    from policies.checkpoint import CheckpointMismatchError, load_checkpoint
    from policies.cli import main as train_main
    from recording.cli import main as record_main

    path = _write(tmp_path, KOCH_RIG)
    for arm in ("leader_left", "follower_left"):
        assert calibrate_main(["--rig", str(path), "--arm", arm]) == 0
    assert calibrate_main(["--rig", str(path), "--arm", "follower_left", "--check"]) == 0
    assert "all joints ok" in capsys.readouterr().out
    data = tmp_path / "demos"
    assert record_main(["--rig", str(path), "--dataset", str(data), "--episodes", "2", "--seconds", "0.5",
                        "--keys", "none"]) == 0
    assert train_main(["--dataset", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny", "--workers", "0",
                       "--no-progress", "--device", "cpu", "--cameras", "none", "--steps", "2"]) == 0
    checkpoint = load_checkpoint(tmp_path / "run" / "last")
    assert checkpoint.meta.state_names == tuple(f"left_{j}" for j in KOCH_JOINTS) == checkpoint.meta.action_names
    assert checkpoint.config.state_dim == checkpoint.config.action_dim == 6
    check_rig(checkpoint, load_rig(path))
    with pytest.raises(CheckpointMismatchError, match="only the checkpoint has left_shoulder_pan"):
        check_rig(checkpoint, load_rig("sim"))
