"""The simulated rig holds up as the hardware path does: a loaded machine, a fresh calibration check, Ctrl-C,
a child that fails to start."""

from __future__ import annotations

import pytest

from calibration.cli import main as calibrate_main
from robot.arm import ticks_to_rad
from robot.rig import load_rig
from robot.sim.virtual_arm import gripper_angle, gripper_range, start_positions


@pytest.mark.parametrize("arm", load_rig("sim").arm_names)
def test_fresh_sim_rig_passes_its_own_calibration_check(arm, tmp_path, capsys):
    assert calibrate_main(["--rig", "sim", "--arm", arm, "--check", "--calibration-dir", str(tmp_path)]) == 0
    assert "all joints ok" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["viperx_300_6dof", "widowx_250_6dof"])
def test_virtual_gripper_rests_inside_its_range(kind):
    spec = next(a.spec for a in load_rig("sim").arms if a.spec.kind == kind)
    closed, open_ = sorted(gripper_range(spec))
    for opening in (0.0, 1.0):
        assert closed <= gripper_angle(spec, opening) <= open_
    assert gripper_angle(spec, 1.0) == pytest.approx(gripper_range(spec)[1], abs=0.002)  # one tick at most
    assert float(ticks_to_rad(start_positions(spec)["gripper"])) == gripper_angle(spec, 1.0)  # starts open
