"""An arm in radians over the virtual bus: conversions, shadows, goals."""

import dataclasses
import math
import time

import numpy as np
import pytest

from robot.arm import Arm, ticks_to_rad
from robot.arm_kinds import builtin_kinds
from robot.dynamixel.errors import ShadowMismatchError
from robot.sim.virtual_arm import gripper_angle, virtual_arm_bus


def test_ticks_and_radians():
    assert ticks_to_rad(np.array([2048, 3072, 1024])).tolist() == pytest.approx([0.0, math.pi / 2, -math.pi / 2])


def test_arm_reads_joints_in_radians_and_moves_to_goals(follower):
    arm, vbus = follower
    state = arm.read()
    assert state.position.shape == (7,)
    assert state.position == pytest.approx([0, 0, 0, 0, 0, 0, gripper_angle(arm.spec, 1.0)], abs=1e-3)  # at rest, open
    arm.set_torque(True)
    goal = np.array([0.3, -0.5, 0.4, 0.1, -0.2, 0.25, 0.6])
    arm.write_positions(goal)
    time.sleep(0.5)
    assert arm.read().position == pytest.approx(goal, abs=2 * 2 * math.pi / 4096)
    # the shoulder's shadow followed its primary through Secondary ID, in reverse drive mode
    assert vbus.get(3, "Present Position") == vbus.get(2, "Present Position")
    assert vbus.get(3, "Goal Position") == vbus.get(2, "Goal Position")


def test_shadow_that_disagrees_stops_the_read(follower):
    arm, vbus = follower
    arm.read()
    vbus.offset_position(5, 200)  # the elbow's shadow slipped
    with pytest.raises(ShadowMismatchError) as err:
        arm.read()
    message = str(err.value)
    assert "elbow" in message and "shadow motor 5" in message and "motor 4" in message
    assert vbus.port in message


def test_configure_shadows_sets_secondary_id_and_reverse(follower):
    arm, vbus = follower
    arm.configure_shadows()
    assert (vbus.get(3, "Secondary ID"), vbus.get(3, "Drive Mode")) == (2, 1)
    assert (vbus.get(5, "Secondary ID"), vbus.get(5, "Drive Mode")) == (4, 1)


def test_a_shadow_at_motor_id_0_is_checked_like_any_other():
    """Kinds are data now: a rig file may put a shadow on ID 0, and its disagreement must still stop the read."""
    spec = builtin_kinds()["viperx_300_6dof"]
    spec = dataclasses.replace(spec, joints=tuple(dataclasses.replace(j, shadow_id=0) if j.name == "elbow" else j
                                                  for j in spec.joints))
    with virtual_arm_bus("follower_left", spec) as vbus:
        arm = Arm.on_port("follower_left", spec, vbus.port, read_deadline_s=0.05).open()
        try:
            arm.read()
            vbus.offset_position(0, 200)
            with pytest.raises(ShadowMismatchError, match="shadow motor 0"):
                arm.read()
        finally:
            arm.close()
