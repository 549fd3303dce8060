import numpy as np
import pytest

from calibration.joint_map import JointMap
from calibration.store import factory_calibration
from robot.rig import Pairing, load_rig


@pytest.fixture
def arms():
    rig = load_rig("sim")
    return (factory_calibration(rig.arm("leader_left")), factory_calibration(rig.arm("follower_left")),
            rig.arm("follower_left").spec)


def test_arm_joints_copy_and_the_gripper_goes_through_its_normalized_value(arms):
    leader, follower, spec = arms
    assert spec.joint_names == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
    joint_map = JointMap(spec, leader, follower)
    for fraction in (0.0, 0.3, 1.0):
        pose = np.array([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, leader.gripper_radians(fraction)])
        out = joint_map(pose)
        np.testing.assert_allclose(out[:6], pose[:6])
        assert follower.gripper_normalized(out[6]) == pytest.approx(fraction)
        np.testing.assert_allclose(joint_map.inverse(out), pose)
    # the two grippers' ranges differ: closed leader (-1.65 rad) is closed follower (-0.62 rad)
    assert joint_map(np.r_[np.zeros(6), leader.gripper_closed])[6] == pytest.approx(follower.gripper_closed)


def test_per_joint_sign_and_offset(arms):
    leader, follower, spec = arms
    joint_map = JointMap(spec, leader, follower, Pairing("leader_left", "follower_left",
                                                          offsets={"wrist_rotate": 0.2}, signs={"waist": -1}))
    out = joint_map(np.array([0.3, 0.1, 0.0, 0.0, 0.0, 0.5, leader.gripper_open]))
    assert out[0] == pytest.approx(-0.3) and out[5] == pytest.approx(0.7) and out[1] == pytest.approx(0.1)
