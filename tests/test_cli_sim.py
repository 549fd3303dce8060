"""tandem-teleop and tandem-calibrate on the sim rig as a user runs them: subprocesses, no hardware."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def _run(args, tmp_path, **kwargs):
    env = {**os.environ, "HOME": str(tmp_path)}  # calibration files under a fresh home
    return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=120,
                          **kwargs)


def _children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_teleop_runs_the_sim_rig_and_prints_period_statistics(tmp_path):
    result = _run(["teleop.cli", "--rig", "sim", "--seconds", "2", "--keys", "none"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "virtual Dynamixel buses started" in result.stdout
    assert "keys: none" in result.stdout
    assert "stopped:" in result.stdout and "Hz: period mean" in result.stdout and "overrun" in result.stdout


def test_teleop_stops_on_sigint_and_leaves_no_process(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "teleop.cli", "--rig", "sim", "--keys", "none"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    line = ""
    while "teleop at" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
    children = _children_of(proc.pid)
    assert children  # the virtual rig's bus process
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # Ctrl-C: the shell's convention for an interrupted command
    assert "stopped:" in out and "interrupted" in err
    # the rig's process notices its parent is gone and exits on its own: give it a moment, not forever
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(child) for child in children):
        time.sleep(0.05)
    assert not any(_alive(child) for child in children)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_calibrate_then_check_on_the_sim_rig(tmp_path):
    result = _run(["calibration.cli", "--rig", "sim", "--arm", "leader_right",
                   "--calibration-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "leader_right.json").read_text())
    assert saved["arm"] == "leader_right" and len(saved["motors"]) == 9
    check = _run(["calibration.cli", "--rig", "sim", "--arm", "leader_right", "--check",
                  "--calibration-dir", str(tmp_path)], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "all joints ok" in check.stdout
    # a second run keeps the first file as .bak
    again = _run(["calibration.cli", "--rig", "sim", "--arm", "leader_right",
                  "--calibration-dir", str(tmp_path)], tmp_path)
    assert again.returncode == 0 and (tmp_path / "leader_right.json.bak").exists()


@pytest.mark.parametrize("args, message", [
    (["--rig", "nowhere"], "nowhere: no such rig file, and not a preset"),
    (["--rig", "sim", "--arm", "elbow_left"], "no arm named 'elbow_left'"),
])
def test_calibrate_bad_input_is_named(tmp_path, args, message):
    result = _run(["calibration.cli", *args] + ([] if "--arm" in args else ["--arm", "leader_left"]), tmp_path)
    assert result.returncode == 2  # a usage error: nothing was opened
    assert message in result.stderr
