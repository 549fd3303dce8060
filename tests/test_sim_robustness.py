"""The simulated rig holds up as the hardware path does: a loaded machine, a fresh calibration check, Ctrl-C,
a child that fails to start."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest

from calibration.cli import main as calibrate_main
from calibration.connection import connect
from robot.arm import ticks_to_rad
from robot.rig import load_rig
from robot.sim.child_process import ChildProcess, ChildStartError
from robot.sim.virtual_arm import gripper_angle, start_positions
from robot.sim.virtual_rig import virtual_buses
from robot.sim.world_process import SimWorldProcess


@pytest.mark.parametrize("arm", load_rig("sim").arm_names)
def test_fresh_sim_rig_passes_its_own_calibration_check(arm, tmp_path, capsys):
    assert calibrate_main(["--rig", "sim", "--arm", arm, "--check", "--calibration-dir", str(tmp_path)]) == 0
    assert "all joints ok" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["viperx_300_6dof", "widowx_250_6dof"])
def test_virtual_gripper_rests_inside_its_range(kind):
    spec = next(a.spec for a in load_rig("sim").arms if a.spec.kind == kind)
    closed, open_ = sorted((spec.gripper_closed, spec.gripper_open))
    for opening in (0.0, 1.0):
        assert closed <= gripper_angle(spec, opening) <= open_
    assert gripper_angle(spec, 1.0) == pytest.approx(spec.gripper_open, abs=0.002)  # one tick at most
    assert float(ticks_to_rad(start_positions(spec)[spec.gripper])) == gripper_angle(spec, 1.0)  # starts open


# -- a loaded machine ---------------------------------------------------------------------------------------
def _spin() -> None:
    while True:
        pass


@pytest.fixture
def busy_machine():
    """Four processes spinning, as other work on a 2-core machine."""
    ctx = mp.get_context("spawn")
    spinners = [ctx.Process(target=_spin, daemon=True) for _ in range(4)]
    for p in spinners:
        p.start()
    yield
    for p in spinners:
        p.kill()
        p.join()


def _teleop(seconds: float, tmp_path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path)}  # no calibration files: the virtual arms' factory ones
    return subprocess.run([sys.executable, "-m", "teleop.cli", "--rig", "sim", "--seconds", str(seconds),
                           "--keys", "none"], env=env, capture_output=True, text=True, timeout=120 + seconds, **kwargs)


def test_sim_teleop_survives_a_busy_machine(busy_machine, tmp_path):
    """Under this load the virtual buses answer tens of ms late; the sim rig file's bus latency makes the driver
    wait for the answer instead of retrying into a backlog (which failed one run in two at 12 ms and 1 ms)."""
    result = _teleop(4, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stopped:" in result.stdout and "no status packet" not in result.stderr


def test_scripted_sim_episodes_survive_a_busy_machine(busy_machine, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "teleop.cli", "--rig", "sim", "--task", "transfer_cube",
                             "--episodes", "2", "--episode-steps", "50", "--keys", "none"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "episode 2/2" in result.stdout and "no status packet" not in result.stderr


@pytest.mark.slow
def test_sim_teleop_survives_twenty_seconds_on_a_busy_machine(busy_machine, tmp_path):
    result = _teleop(20, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stopped:" in result.stdout and "no status packet" not in result.stderr


def test_sim_rig_buses_wait_as_long_as_its_file_says(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path)
    with virtual_buses(rig) as (live, _), connect(live, say=lambda _: None) as connected:
        for arm in connected.arms.values():  # what connect() opened, not just what the file parsed to
            assert arm.bus.read_deadline_s == 1.0 and arm.bus.port.latency_ms == 20.0
    assert load_rig("aloha").bus_options == {}  # hardware keeps the driver's deadline and the adapter's latency


# -- Ctrl-C --------------------------------------------------------------------------------------------------
def test_ctrl_c_to_the_process_group_exits_130_and_releases(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "--rig", "sim", "--seconds", "30", "--keys", "none"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own group, as a terminal's foreground job
    seen = []
    try:
        while not seen or ("teleop at" not in seen[-1] and seen[-1]):
            seen.append(proc.stdout.readline())
        assert "teleop at" in seen[-1], "".join(seen)
        time.sleep(0.5)  # some steps run
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
        out = "".join(seen) + proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "stopped:" in out  # the period statistics are not lost
    assert "readiness to read" not in out and "WARNING" not in out  # the buses lived until the arms were released


# -- a child that fails to start -----------------------------------------------------------------------------
def test_world_child_that_fails_to_start_shows_its_own_error():
    world = SimWorldProcess(load_rig("sim"), "no_such_task", cameras=False)
    with pytest.raises(ChildStartError, match="unknown simulated task 'no_such_task'; known tasks: transfer_cube"):
        world.start()
    assert world._child.process is None  # stopped, nothing left behind


def test_child_that_cannot_be_sent_its_arguments_raises_that_error():
    child = ChildProcess(_spin, (lambda: None,), "unpicklable")  # a lambda cannot reach a spawned child
    with pytest.raises(Exception, match="pickle"):
        child.start(timeout_s=5)
    child.stop()  # nothing was started: nothing to stop, and no AssertionError
