"""Strict input: calibration files and rig files are refused, naming the file and the field, when a value
has the wrong type, is not finite, is out of order or out of range, belongs to another arm, or would become
a path; the shipped rigs and the calibrations the simulated rig makes still load."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rig_files import rig_refused

from calibration.file import CalibrationError, calibration_path
from calibration.store import factory_calibration, load_calibration
from robot.rig import load_rig, preset_names

SIM = load_rig("sim")


# -- calibration files -------------------------------------------------------------------------------
@pytest.fixture
def rig(tmp_path):
    """The sim rig with its calibration files in tmp_path, each as the factory calibration saves it."""
    rig = dataclasses.replace(SIM, calibration_dir=tmp_path)
    for arm in rig.arms:
        factory_calibration(arm).save(calibration_path(tmp_path, arm.name))
    return rig


def _edit(rig, arm, change):
    """Rewrites arm's calibration file through `change(data)`, or `change(text)` when it returns a string."""
    path = calibration_path(rig.calibration_dir, arm)
    data = json.loads(path.read_text())
    out = change(data)
    path.write_text(out if isinstance(out, str) else json.dumps(data))
    return path


def _refused(rig, arm, path, *fragments):
    with pytest.raises(CalibrationError) as info:
        load_calibration(rig, rig.arm(arm))
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_calibrations_of_the_sim_rig_load_and_fit_their_arms(rig):
    for arm in rig.arms:
        calibration, source = load_calibration(rig, arm)
        assert source == str(calibration_path(rig.calibration_dir, arm.name))
        assert calibration == factory_calibration(arm)


def test_a_string_is_not_true_or_false(rig):
    path = _edit(rig, "leader_left", lambda d: d["motors"][0].update(reverse="false"))
    _refused(rig, "leader_left", path, "motors[0].reverse", "expected true/false, got the string 'false'")


@pytest.mark.parametrize("field, value", [("homing_offset", True), ("motor_id", "1"), ("homing_offset", 12.0)])
def test_motor_numbers_are_integers(rig, field, value):
    path = _edit(rig, "follower_left", lambda d: d["motors"][2].update({field: value}))
    _refused(rig, "follower_left", path, f"motors[2].{field}", "expected an integer")


def test_a_homing_offset_of_more_than_a_turn_is_refused(rig):
    path = _edit(rig, "follower_left", lambda d: d["motors"][0].update(homing_offset=100_000))
    _refused(rig, "follower_left", path, "motors[0].homing_offset", "more than a turn")


@pytest.mark.parametrize("joint, limits", [
    ("waist", [1.0, -1.0]),         # inverted
    ("shoulder", [-1e6, 1e6]),      # no limit at all
    ("elbow", [0.5, 0.5]),          # empty
    ("gripper", [0.9, -0.6]),       # an inverted gripper range
    ("wrist_angle", [-1.0]),        # not a pair
    ("wrist_rotate", [False, 1.0]),  # a bool is not a number
    ("forearm_roll", [0, 10**400]),  # an integer too big for a float
])
def test_limits_are_ordered_pairs_within_a_turn(rig, joint, limits):
    path = _edit(rig, "leader_right", lambda d: d["limits"].update({joint: limits}))
    _refused(rig, "leader_right", path, f"limits.{joint}")


def _with_literal(place, literal):
    """A change that puts a bare JSON literal (NaN, Infinity, 1e400) where `place(data, marker)` puts a marker."""
    def change(data):
        place(data, "@@")
        return json.dumps(data).replace('"@@"', literal)
    return change


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field, place", [
    ("gripper_open", lambda d, v: d.update(gripper_open=v)),
    ("limits.shoulder", lambda d, v: d["limits"]["shoulder"].__setitem__(1, v)),
    ("motors[1].homing_offset", lambda d, v: d["motors"][1].update(homing_offset=v)),
])
def test_non_finite_numbers_are_refused_even_where_python_json_accepts_them(rig, literal, field, place):
    path = _edit(rig, "leader_left", _with_literal(place, literal))
    assert literal in path.read_text()
    _refused(rig, "leader_left", path, field)


def test_gripper_open_and_closed_must_differ(rig):
    path = _edit(rig, "follower_right", lambda d: d.update(gripper_open=d["gripper_closed"]))
    _refused(rig, "follower_right", path, "gripper_open", "gripper_closed")


def test_a_calibration_file_for_another_arm_is_refused(rig):
    leader_left = calibration_path(rig.calibration_dir, "leader_left")
    leader_left.write_text(calibration_path(rig.calibration_dir, "leader_right").read_text())  # same kind, same IDs
    _refused(rig, "leader_left", leader_left, ": arm: ", "calibration of arm leader_right, not of arm leader_left")


def test_a_calibration_file_for_another_kind_of_arm_is_refused(rig):
    path = _edit(rig, "leader_left", lambda d: d.update(kind="viperx_300_6dof"))
    _refused(rig, "leader_left", path, "kind", "viperx_300_6dof", "leader_left is a widowx_250_6dof")


def test_a_calibration_file_for_other_joints_is_refused(rig):
    path = _edit(rig, "leader_left", lambda d: d["limits"].update(tail=[-1.0, 1.0]))
    _refused(rig, "leader_left", path, "limits.tail", "unknown field")
    path = _edit(rig, "leader_left", lambda d: (d["limits"].pop("tail"), d["limits"].pop("wrist_rotate")))
    _refused(rig, "leader_left", path, "limits.wrist_rotate", "no limits")


@pytest.mark.parametrize("field, change", [
    ("arm", lambda d: d.update(arm="../../etc")),
    ("motors[3].joint", lambda d: d["motors"][3].update(joint="elbow/..")),
    ("version", lambda d: d.update(version=True)),
    ("motors", lambda d: d["motors"].append(dict(d["motors"][0]))),
    ("motors[0].speed", lambda d: d["motors"][0].update(speed=3)),
])
def test_names_versions_and_repeats_are_exact(rig, field, change):
    path = _edit(rig, "follower_left", change)
    _refused(rig, "follower_left", path, field)


def test_a_key_given_twice_in_a_calibration_file_is_refused(rig):
    path = _edit(rig, "leader_left", lambda d: json.dumps(d).replace('"reverse": false', '"reverse": false, '
                                                                     '"reverse": true', 1))
    _refused(rig, "leader_left", path, "'reverse' is given twice")


def test_a_calibration_file_that_is_not_utf8_is_named(rig):
    path = calibration_path(rig.calibration_dir, "leader_left")
    path.write_bytes(path.read_bytes().replace(b'"leader_left"', b'"leader_\xe9left"', 1))
    _refused(rig, "leader_left", path, "not UTF-8")


def test_a_calibration_that_loading_would_refuse_is_not_saved(tmp_path):
    calibration = factory_calibration(SIM.arm("leader_left"))
    bad = dataclasses.replace(calibration, limits={**calibration.limits, "elbow": (float("nan"), 1.0)})
    path = tmp_path / "leader_left.json"
    with pytest.raises(CalibrationError) as info:
        bad.save(path)
    assert str(path) in str(info.value) and "limits.elbow" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_tandem_calibrate_reports_a_bad_file_and_exits_1(rig, tmp_path):
    path = _edit(rig, "leader_left", lambda d: d["motors"][0].update(reverse="false"))
    result = subprocess.run([sys.executable, "-m", "calibration.cli", "--rig", "sim", "--arm", "leader_left",
                             "--check", "--no-pose", "--calibration-dir", str(tmp_path)],
                            env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert str(path) in result.stderr and "motors[0].reverse" in result.stderr


# -- rig files ---------------------------------------------------------------------------------------
ALOHA = Path(load_rig("aloha").source)
FOLLOWER_LEFT_PORT = "    port: /dev/ttyDXL_puppet_left\n"


def _rig_with(tmp_path, old, new, text=None):
    text = ALOHA.read_text() if text is None else text
    assert old in text
    path = tmp_path / "rig.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path, text):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_shipped_rigs_load():
    for name in preset_names():
        rig = load_rig(name)
        assert rig.arms and rig.pairs
    # the sim rig's placeholders repeat: every arm's port is `virtual`, every camera's device `sim`
    assert {a.port for a in SIM.arms} == {"virtual"} and {c.device for c in SIM.cameras} == {"sim"}
    assert len(SIM.arms) == 4 and len(SIM.cameras) == 4


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = _rig_with(tmp_path, "    port: /dev/ttyDXL_puppet_left\n",
                     "    port: /dev/ttyDXL_puppet_left\n    port: /dev/ttyDXL_puppet_right\n")
    line = _line_of(path, "port: /dev/ttyDXL_puppet_right")
    rig_refused(path, f"line {line}", "'port' is given twice", f"line {line - 1}")


def test_a_key_given_twice_in_a_flow_mapping_is_refused(tmp_path):
    path = _rig_with(tmp_path, "{leader: leader_left, follower: follower_left}",
                     "{leader: leader_left, follower: follower_left, follower: follower_right}")
    rig_refused(path, f"line {_line_of(path, 'follower: follower_right}')}", "'follower' is given twice")


def test_a_merge_key_may_be_overridden(tmp_path):
    path = _rig_with(tmp_path, "  leader_right:\n    role: leader\n    side: right\n",
                     "  leader_right:\n    <<: {role: follower, side: right}\n    role: leader\n")
    assert load_rig(path).arm("leader_right").role == "leader"


def test_two_arms_on_one_port_are_refused(tmp_path):
    path = _rig_with(tmp_path, "/dev/ttyDXL_puppet_right", "/dev/ttyDXL_puppet_left")
    rig_refused(path, "arms.follower_right.port", "/dev/ttyDXL_puppet_left is also the port of follower_left")


def test_two_names_of_one_port_are_one_port(tmp_path):
    adapter = tmp_path / "ttyUSB0"
    adapter.touch()
    (tmp_path / "ttyDXL_a").symlink_to(adapter)
    (tmp_path / "ttyDXL_b").symlink_to(adapter)
    text = ALOHA.read_text().replace("/dev/ttyDXL_puppet_left", str(tmp_path / "ttyDXL_a"))
    path = _rig_with(tmp_path, "/dev/ttyDXL_puppet_right", str(tmp_path / "ttyDXL_b"), text)
    rig_refused(path, "arms.follower_right.port", "also the port of follower_left")


def test_two_cameras_on_one_device_are_refused(tmp_path):
    path = _rig_with(tmp_path, "/dev/CAM_LOW", "/dev/CAM_HIGH")
    rig_refused(path, "cameras.cam_low.device", "/dev/CAM_HIGH is also the device of cam_high", "own device")


def test_a_camera_index_and_its_device_file_are_one_camera(tmp_path):
    text = ALOHA.read_text().replace("device: /dev/CAM_HIGH", "device: 0")
    path = _rig_with(tmp_path, "/dev/CAM_LOW", "/dev/video0", text)
    rig_refused(path, "cameras.cam_low.device", "also the device of cam_high")


@pytest.mark.parametrize("old, new, where", [
    ("  follower_right:\n", "  ../../..:\n", "arms.../../.."),
    ("  follower_right:\n", "  follower right:\n", "arms.follower right"),
    ("  cam_low:", "  ../cam:", "cameras.../cam"),
    ("  cam_low:", "  2cam:", "cameras.2cam"),
])
def test_names_that_would_become_paths_are_refused(tmp_path, old, new, where):
    rig_refused(_rig_with(tmp_path, old, new), where, "is not a name")


def test_a_joint_name_that_is_not_a_joint_is_refused(tmp_path):
    path = _rig_with(tmp_path, FOLLOWER_LEFT_PORT,
                     FOLLOWER_LEFT_PORT + "    joints: {../x: {id: 1, model: XM430-W350}}\n")
    rig_refused(path, "arms.follower_left.joints.../x", "unknown joint; a viperx_300_6dof has joints waist")


def test_a_rig_name_that_would_become_a_path_is_refused(tmp_path):
    rig_refused(_rig_with(tmp_path, "name: aloha", "name: ../../outside"), "name", "not a rig name")


def test_a_rig_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_bytes(ALOHA.read_bytes().replace(b"# ALOHA", b"# ALOHA \xff\xfe", 1))
    rig_refused(path, "", "not UTF-8")


@pytest.mark.parametrize("value, problem", [
    (".nan", "finite"), (".inf", "finite"), ("-.inf", "finite"), ("7.0", "outside"), ("true", "expected a number"),
    ("1" + "0" * 400, "finite"),
])
def test_pair_offsets_are_finite_and_within_a_turn(tmp_path, value, problem):
    path = _rig_with(tmp_path, "{leader: leader_left, follower: follower_left}",
                     f"{{leader: leader_left, follower: follower_left, offsets: {{waist: {value}}}}}")
    rig_refused(path, "pairs[0].offsets.waist", problem)


@pytest.mark.parametrize("old, new, where", [
    (FOLLOWER_LEFT_PORT,
     FOLLOWER_LEFT_PORT + "    joints: {waist: {id: 1, model: XM540-W270, shadow_reversed: 'false'}}\n",
     "arms.follower_left.joints.waist.shadow_reversed"),
    ("    baud: 1000000", "    baud: true", "arms.leader_left.baud"),
    ("control_hz: 50", "control_hz: .nan", "control_hz"),
])
def test_rig_types_are_exact(tmp_path, old, new, where):
    rig_refused(_rig_with(tmp_path, old, new), where, "expected")


def test_tandem_calibrate_reports_a_bad_rig_file(tmp_path):
    path = _rig_with(tmp_path, "/dev/ttyDXL_puppet_right", "/dev/ttyDXL_puppet_left")
    result = subprocess.run([sys.executable, "-m", "calibration.cli", "--rig", str(path), "--arm", "leader_left"],
                            env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert str(path) in result.stderr and "arms.follower_right.port" in result.stderr
