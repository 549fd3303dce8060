"""The Koch and ALOHA 2 presets run virtual through the real commands: a six-joint and a seven-joint arm on virtual
buses with the presets' motor models and IDs, synthetic cameras with the presets' names, calibration files in
the rig's `virtual` folder (under a HOME in tmp), episodes, a tiny ACT, deploy's rig check and replay."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from calibration.cli import main as calibrate_main
from deploy.cli import deploy_main
from policies.cli import main as train_main
from recording.cli import main as record_main
from recording.dataset import Dataset
from recording.reader import EpisodeReader
from recording.replay import main as replay_main
from robot.cli import scan_main
from robot.rig import load_rig, preset_names
from teleop.cli import main as teleop_main

SIDE_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
KOCH_STATE = tuple(f"left_{j}" for j in SIDE_JOINTS)
ALOHA_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
ALOHA_STATE = tuple(f"{side}_{j}" for side in ("left", "right") for j in ALOHA_JOINTS)
ALOHA2_CAMERAS = ("camera_high", "camera_low", "camera_wrist_left", "camera_wrist_right")

# The motors each arm kind must answer with, as the arms are built (LeRobot's Koch, Trossen's ALOHA 2): ID -> model
KOCH_LEADER = dict.fromkeys(range(1, 7), "XL330-M077")
KOCH_FOLLOWER = {1: "XL430-W250", 2: "XL430-W250", 3: "XL330-M288", 4: "XL330-M288", 5: "XL330-M288",
                 6: "XL330-M288"}
ALOHA2_LEADER = {**dict.fromkeys(range(1, 9), "XM430-W350"), 9: "XC430-W150"}
ALOHA2_FOLLOWER = {**dict.fromkeys(range(1, 8), "XM540-W270"), 8: "XM430-W350", 9: "XM430-W350"}
SCANNED = {
    "koch": {"leader": KOCH_LEADER, "follower": KOCH_FOLLOWER},
    "koch_bimanual": {"leader_left": KOCH_LEADER, "leader_right": KOCH_LEADER,
                      "follower_left": KOCH_FOLLOWER, "follower_right": KOCH_FOLLOWER},
    "aloha2": {"leader_left": ALOHA2_LEADER, "leader_right": ALOHA2_LEADER,
               "follower_left": ALOHA2_FOLLOWER, "follower_right": ALOHA2_FOLLOWER},
}
ARM_LINE = re.compile(r"^(\w+) \((leader|follower), (\w+)\) on ")
MOTOR_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s+\d+\s+(\w+)\s.*\bok$")


def _virtual_calibrations(home: Path, rig: str) -> Path:
    """Where --virtual keeps a preset's calibrations: the rig's folder (under HOME), then `virtual`."""
    return home / ".local/share/tandem/calibration" / rig / "virtual"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME: the presets' calibration folders land in tmp, never in ~/.local."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def koch_dataset(tmp_path_factory) -> Path:
    """Two 2 s episodes recorded on the Koch preset run virtual (the leaders' sine starts each)."""
    root = tmp_path_factory.mktemp("koch")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(root))
        assert record_main(["--rig", "koch", "--virtual", "--dataset", str(root / "koch"), "--episodes", "2",
                            "--seconds", "2", "--keys", "none"]) == 0
    return root / "koch"


@pytest.fixture(scope="module")
def koch_checkpoint(koch_dataset, tmp_path_factory) -> Path:
    """A tiny ACT on the Koch episodes' laptop camera after two steps: that it loads and runs is the point."""
    out = tmp_path_factory.mktemp("koch_act") / "run"
    assert train_main(["--dataset", str(koch_dataset), "--out", str(out), "--preset", "tiny", "--steps", "2",
                       "--cameras", "laptop", "--workers", "0", "--no-progress", "--device", "cpu",
                       "--val-fraction", "0"]) == 0
    return out / "last"


# -- the presets as files ----------------------------------------------------------------------------------------
def test_every_preset_loads_virtual_and_is_listed_in_help(capsys):
    assert {"aloha", "aloha2", "koch", "koch_bimanual", "sim"} <= set(preset_names())
    for name in preset_names():
        rig = load_rig(name).as_virtual()
        assert rig.virtual and all(c.type in ("synthetic", "sim") for c in rig.cameras), name
    with pytest.raises(SystemExit):
        teleop_main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the list
    assert f"preset ({', '.join(preset_names())})" in shown


def test_aloha2_cameras_are_realsense_by_serial():
    cameras = load_rig("aloha2").cameras
    assert tuple(c.name for c in cameras) == ALOHA2_CAMERAS
    assert all(c.type == "realsense" and c.device.isdigit() for c in cameras)


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    (tmp_path / "koch").mkdir()  # e.g. a dataset recorded with --dataset koch
    monkeypatch.chdir(tmp_path)
    assert load_rig("koch").name == "koch"


# -- scan and calibrate ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(SCANNED))
def test_scan_finds_every_motor_with_its_model(preset, home, capsys):
    assert scan_main(["--rig", preset, "--virtual"]) == 0
    found: dict[str, dict[int, str]] = {}
    arm = None
    for line in capsys.readouterr().out.splitlines():
        if m := ARM_LINE.match(line):
            arm = found.setdefault(m[1], {})
        elif (m := MOTOR_LINE.match(line)) and arm is not None:
            arm[int(m[1])] = m[2]
    assert found == SCANNED[preset]


@pytest.mark.parametrize("preset, arm, motors", [
    ("koch", "leader", 6), ("koch", "follower", 6), ("aloha2", "follower_left", 9), ("aloha2", "leader_right", 9),
])
def test_calibrate_writes_into_the_virtual_folder_and_checks_ok(preset, arm, motors, home, capsys):
    assert calibrate_main(["--rig", preset, "--virtual", "--arm", arm]) == 0
    saved = _virtual_calibrations(home, preset) / f"{arm}.json"
    data = json.loads(saved.read_text())
    assert data["arm"] == arm and len(data["motors"]) == motors  # shadows included
    assert not list((home / ".local/share/tandem/calibration" / preset).glob("*.json"))  # the hardware's untouched
    capsys.readouterr()
    assert calibrate_main(["--rig", preset, "--virtual", "--arm", arm, "--check"]) == 0
    assert "all joints ok" in capsys.readouterr().out


# -- teleop and record -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, hz", [("koch", 30), ("aloha2", 50)])
def test_teleop_runs_at_the_presets_rate(preset, hz, home, capsys):
    assert teleop_main(["--rig", preset, "--virtual", "--seconds", "2", "--keys", "none"]) == 0
    out = capsys.readouterr().out
    assert f"teleop at {hz} Hz" in out
    steps = re.search(r"stopped: (\d+) steps at [\d.]+ Hz: period mean", out)
    assert steps and int(steps[1]) > 0, out


def test_a_koch_recording_has_the_koch_joints_and_the_presets_cameras(koch_dataset):
    dataset = Dataset.open(koch_dataset)
    assert dataset.info.rig == "koch" and dataset.info.fps == 30
    assert dataset.info.cameras == ["laptop", "phone"]
    episodes = dataset.episodes()
    assert [e.length for e in episodes] == [60, 60]  # 2 s at 30 Hz
    for episode in episodes:
        with EpisodeReader(dataset.path(episode.index)) as reader:
            assert tuple(reader.attrs["state_names"]) == KOCH_STATE
            assert reader.qpos.shape == reader.action.shape == (60, 6)
            first, later = reader.image("laptop", 0), reader.image("laptop", 10)
            assert first.shape == (480, 640, 3) and reader.image("phone", 0).shape == (480, 640, 3)
            assert not np.array_equal(first, later)  # synthetic frames move


def test_an_aloha2_recording_has_its_four_cameras_and_seven_joint_arms(tmp_path, home):
    root = tmp_path / "aloha2"
    assert record_main(["--rig", "aloha2", "--virtual", "--dataset", str(root), "--episodes", "1", "--seconds", "1",
                        "--keys", "none"]) == 0
    dataset = Dataset.open(root)
    assert dataset.info.rig == "aloha2" and tuple(dataset.info.cameras) == ALOHA2_CAMERAS
    with EpisodeReader(dataset.path(0)) as reader:
        assert tuple(reader.attrs["state_names"]) == ALOHA_STATE
        assert reader.qpos.shape == (50, 14)
        assert all(reader.image(cam, 0).shape == (480, 640, 3) for cam in ALOHA2_CAMERAS)


# -- a Koch policy: refused by an ALOHA rig, run on the Koch rig; replay ---------------------------------------------
@pytest.mark.parametrize("preset", ["aloha", "aloha2"])
def test_a_koch_checkpoint_is_refused_by_an_aloha_rig_naming_the_joints(preset, koch_checkpoint, home, capsys):
    assert deploy_main(["--rig", preset, "--virtual", "--checkpoint", str(koch_checkpoint), "--keys", "none",
                        "--pedal", "none"]) == 1
    captured = capsys.readouterr()
    assert "virtual Dynamixel buses started" not in captured.out  # refused from the files, nothing opened
    message = captured.err
    assert message.startswith("tandem-deploy: ") and "trained on other joints" in message
    assert "left_shoulder_pan" in message and "left_waist" in message  # what only each side has


def test_a_koch_checkpoint_drives_the_koch_rig(koch_checkpoint, home, capsys):
    assert deploy_main(["--rig", "koch", "--virtual", "--checkpoint", str(koch_checkpoint), "--keys", "none",
                        "--pedal", "none", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"episode 1: 30 steps, 0 takeover\(s\)", out), out


def test_replay_of_a_koch_episode_on_the_koch_rig(koch_dataset, home, capsys):
    assert replay_main(["--rig", "koch", "--virtual", "--dataset", str(koch_dataset), "--episode", "1"]) == 0
    out = capsys.readouterr().out
    assert "replaying episode 1 (60 steps at 30 Hz)" in out and "done: 60 steps" in out


def test_replay_of_a_koch_episode_on_an_aloha2_rig_is_refused(koch_dataset, home, capsys):
    assert replay_main(["--rig", "aloha2", "--virtual", "--dataset", str(koch_dataset), "--episode", "0"]) == 1
    message = capsys.readouterr().err
    assert "state_names" in message and "left_shoulder_pan" in message
