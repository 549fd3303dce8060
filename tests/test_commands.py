"""Every console script answers the same way: usage errors exit 2 with one line naming the problem, --help shows
every default, Ctrl-C exits 130 saying "interrupted". Run as a user runs them: the installed console scripts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recording.dataset import Dataset

MISSING = "/nonexistent/tandem/rig.yaml"


def _script(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e .)")
    return path


def _run(args: list[str], tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(tmp_path)}  # calibration files under a fresh home
    return subprocess.run([_script(args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _usage_error(result: subprocess.CompletedProcess, prog: str) -> str:
    """The one line that names the problem (argparse prints the usage synopsis above it)."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{prog}: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# (command, its other required arguments); tmp is replaced with a fresh folder
COMMANDS = [
    pytest.param("tandem-scan", [], id="scan"),
    pytest.param("tandem-calibrate", ["--arm", "leader_left"], id="calibrate"),
    pytest.param("tandem-teleop", ["--keys", "none"], id="teleop"),
    pytest.param("tandem-record", ["--dataset", "tmp"], id="record"),
    pytest.param("tandem-replay", ["--dataset", "tmp", "--episode", "0"], id="replay"),
    pytest.param("tandem-deploy", ["--checkpoint", "tmp"], id="deploy"),
    pytest.param("tandem-eval", ["--checkpoint", "tmp"], id="eval"),
]
ALL = [*COMMANDS,
       pytest.param("tandem-inspect", ["--dataset", "tmp"], id="inspect"),
       pytest.param("tandem-train", ["--dataset", "tmp", "--out", "tmp/out"], id="train")]


def _fill(args: list[str], tmp_path: Path) -> list[str]:
    return [a.replace("tmp", str(tmp_path), 1) if a.startswith("tmp") else a for a in args]


@pytest.mark.parametrize("command, args", COMMANDS)
def test_a_missing_rig_file_is_a_usage_error(command, args, tmp_path):
    line = _usage_error(_run([command, "--rig", MISSING, *_fill(args, tmp_path)], tmp_path), command)
    assert MISSING in line and "no such rig file" in line


@pytest.mark.parametrize("command, args", [
    pytest.param("tandem-inspect", [], id="inspect"),
    pytest.param("tandem-replay", ["--episode", "0"], id="replay"),
    pytest.param("tandem-train", ["--out", "tmp/out"], id="train"),
])
def test_a_missing_dataset_is_a_usage_error(command, args, tmp_path):
    missing = str(tmp_path / "no_such_dataset")
    line = _usage_error(_run([command, "--dataset", missing, *_fill(args, tmp_path)], tmp_path), command)
    assert missing in line and "--dataset" in line


@pytest.mark.parametrize("command, args", ALL)
def test_a_bad_flag_is_a_usage_error(command, args, tmp_path):
    line = _usage_error(_run([command, *_fill(args, tmp_path), "--no-such-flag"], tmp_path), command)
    assert "--no-such-flag" in line


@pytest.mark.parametrize("command, args", ALL)
def test_help_shows_every_default_once(command, args, tmp_path):
    result = _run([command, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps: judge the words, not the lines
    assert "(default: " in text
    assert not re.search(r"\(default [^:]", text), "a hand-written default next to argparse's"
    assert not re.search(r"default:[^)]*\) \(default: ", text), "a default shown twice"


@pytest.mark.parametrize("flag, value", [("--episodes", "0"), ("--jpeg-quality", "101"), ("--seconds", "-1")])
def test_record_refuses_bad_numbers_before_opening_anything(flag, value, tmp_path):
    line = _usage_error(_run(["tandem-record", "--dataset", str(tmp_path / "d"), flag, value], tmp_path),
                        "tandem-record")
    assert flag in line
    assert not (tmp_path / "d").exists()


def test_scan_baud_without_port_is_a_usage_error(tmp_path):
    line = _usage_error(_run(["tandem-scan", "--baud", "all"], tmp_path), "tandem-scan")
    assert "--baud all needs --port" in line


def test_calibrate_an_unknown_arm_is_a_usage_error(tmp_path):
    line = _usage_error(_run(["tandem-calibrate", "--arm", "elbow_left"], tmp_path), "tandem-calibrate")
    assert "no arm named 'elbow_left'" in line and "leader_left" in line  # and which arms there are


# -- a small simulated dataset, recorded once for the tests below ----------------------------------------------
@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("commands") / "d"
    result = _run(["tandem-record", "--dataset", str(root), "--episodes", "1", "--seconds", "2",
                   "--image-size", "24x32", "--seed", "3"], root.parent, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "max reward" in result.stdout and "/4" in result.stdout
    return root


def test_inspect_shows_the_rate_of_simulated_episodes(sim_dataset, tmp_path):
    result = _run(["tandem-inspect", "--dataset", str(sim_dataset)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    header, row = result.stdout.splitlines()[1:3]
    columns = dict(zip(header.split(), row.split(), strict=False))
    assert columns["episode"] == "0" and columns["steps"] == "100"
    assert columns["fps"] == "50.0"  # simulated time: exactly the rig's rate


def test_a_replay_of_a_missing_episode_names_it(sim_dataset, tmp_path):
    result = _run(["tandem-replay", "--dataset", str(sim_dataset), "--episode", "7"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("tandem-replay: ") and "7" in result.stderr


# -- Ctrl-C: 130 and "interrupted", from a running command -------------------------------------------------------
def _interrupt_after(args: list[str], ready: str, tmp_path: Path) -> tuple[int, str, str]:
    """Start a console script, wait for the line `ready` on stdout, send SIGINT; (exit status, stdout, stderr)."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}  # each line as it is printed
    proc = subprocess.Popen([_script(args[0]), *args[1:]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if ready in line:
                break
        assert any(ready in line for line in seen), "".join(seen) + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(seen) + out, err


def test_teleop_interrupted(tmp_path):
    code, out, err = _interrupt_after(["tandem-teleop", "--keys", "none"], "teleop at", tmp_path)
    assert code == 130, err
    assert "tandem-teleop: interrupted" in err
    assert "keys: none" in out and "stop with q" not in out  # no key backend listens: q is not offered


def test_record_interrupted_keeps_finished_episodes(tmp_path):
    data = tmp_path / "d"
    code, out, err = _interrupt_after(["tandem-record", "--dataset", str(data), "--episodes", "50", "--seconds",
                                       "0.4", "--image-size", "24x32"], "episode 0 (seed 0)", tmp_path)
    assert code == 130, err
    assert "tandem-record: interrupted" in err
    kept = Dataset.open(data).episodes()
    assert kept and all(e.length == 20 for e in kept)  # finished episodes only, each whole


SWALLOWED = """
import signal, sys, time
from robot.commands import run_command, setup_process

class InterruptedWhileCollected:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the KeyboardInterrupt is raised inside a finalizer: Python ignores it

def body():
    InterruptedWhileCollected()
    for _ in range(200):  # 20 s of work that the interrupt must stop
        time.sleep(0.1)
    return 0

setup_process()
sys.exit(run_command("demo", body))
"""


def test_an_interrupt_inside_a_finalizer_still_stops_the_command():
    result = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=120)
    assert result.returncode == 130, result.stderr
    assert result.stderr == "demo: interrupted; arms released\n"  # no "Exception ignored" traceback either


def test_replay_interrupted(sim_dataset, tmp_path):
    code, out, err = _interrupt_after(["tandem-replay", "--dataset", str(sim_dataset), "--episode", "0",
                                       "--realtime"], "replaying episode 0", tmp_path)
    assert code == 130, out + err
    assert "tandem-replay: interrupted" in err


# -- files a user shares get the mode the episodes get (the umask's), not mkstemp's 0600 ------------------------
def test_dataset_json_has_the_episodes_mode(sim_dataset):
    episode = next(sim_dataset.glob("episode_*.hdf5"))
    assert (sim_dataset / "dataset.json").stat().st_mode & 0o777 == episode.stat().st_mode & 0o777
    assert episode.stat().st_mode & 0o044  # the group and others may read (under the usual umask 022)


def test_a_calibration_file_has_the_episodes_mode(sim_dataset, tmp_path):
    result = _run(["tandem-calibrate", "--arm", "leader_left", "--calibration-dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    episode = next(sim_dataset.glob("episode_*.hdf5"))
    assert (tmp_path / "leader_left.json").stat().st_mode & 0o777 == episode.stat().st_mode & 0o777
