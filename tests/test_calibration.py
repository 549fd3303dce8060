import json
import math

import numpy as np
import pytest

from calibration.file import ArmCalibration, CalibrationError
from calibration.procedure import calibrate_arm, check_arm
from robot.arm import RAD_PER_TICK, Arm
from robot.arm_kinds import builtin_kinds
from robot.sim.hand import Mount, pose_arm
from robot.sim.virtual_arm import virtual_arm_bus

# An arm as it might come out of the box: every motor's zero somewhere else, some mounted reversed.
MOUNTING = {
    1: Mount(1, 1000), 2: Mount(-1, 3000), 3: Mount(1, 1500), 4: Mount(1, 2500), 5: Mount(-1, 2100),
    6: Mount(-1, 700), 7: Mount(1, 3900), 8: Mount(-1, 2048), 9: Mount(1, 2048),
}
GRIPPER_CLOSED, GRIPPER_OPEN = -0.4, 0.9
WIDOWX = builtin_kinds()["widowx_250_6dof"]


def _person(vbus, spec, mounting, poses):
    """Answers each prompt by putting the virtual arm in the next pose."""
    poses = iter(poses)
    prompts = []

    def prompt(text):
        prompts.append(text)
        pose_arm(vbus, spec, next(poses), mounting)

    return prompt, prompts


def _reference():
    return {**WIDOWX.calibration.reference_angles(), "gripper": GRIPPER_CLOSED}


def _second():
    return {**WIDOWX.calibration.second_angles(), "gripper": GRIPPER_OPEN}


@pytest.fixture
def raw_arm():
    with virtual_arm_bus("leader_left", WIDOWX) as vbus:
        arm = Arm.on_port("leader_left", WIDOWX, vbus.port, read_deadline_s=0.05).open()
        yield arm, vbus
        arm.close()


def test_two_poses_give_the_mounting_directions_and_offsets(raw_arm):
    arm, vbus = raw_arm
    prompt, prompts = _person(vbus, arm.spec, MOUNTING, [_reference(), _second()])
    calibration = calibrate_arm(arm, prompt)
    assert len(prompts) == 2 and "REFERENCE" in prompts[0] and "SECOND" in prompts[1]

    by_id = {m.motor_id: m for m in calibration.motors}
    for motor_id, mount in MOUNTING.items():
        if motor_id == 9:
            continue
        assert by_id[motor_id].reverse == (mount.sign < 0), motor_id
        # the firmware's frame (virtual motor): forward shows raw + h, reverse shows 4096 - raw + h
        expected = 2048 - mount.zero if mount.sign > 0 else mount.zero - 2048
        assert by_id[motor_id].homing_offset == pytest.approx(expected, abs=1), motor_id
    assert calibration.gripper_closed == pytest.approx(GRIPPER_CLOSED, abs=0.002)
    assert calibration.gripper_open == pytest.approx(GRIPPER_OPEN, abs=0.002)

    # any pose now reads as its joint angles, shadows agreeing with their primaries
    pose = {"waist": -1.0, "shoulder": 0.5, "elbow": -0.7, "forearm_roll": 2.0, "wrist_angle": -1.2,
            "wrist_rotate": 0.3, "gripper": 0.1}
    pose_arm(vbus, arm.spec, pose, MOUNTING)
    state = arm.read()
    np.testing.assert_allclose(state.position, [pose[j] for j in arm.joint_names], atol=2 * RAD_PER_TICK)


def test_rerunning_is_safe_and_the_file_restores_the_motors(raw_arm, tmp_path):
    arm, vbus = raw_arm
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), _second(), _reference(), _second()])
    first = calibrate_arm(arm, prompt)
    second = calibrate_arm(arm, prompt)
    assert [m.reverse for m in first.motors] == [m.reverse for m in second.motors]
    np.testing.assert_allclose([m.homing_offset for m in first.motors], [m.homing_offset for m in second.motors],
                               atol=1)

    path = tmp_path / "leader_left.json"
    first.save(path)
    loaded = ArmCalibration.load(path)
    assert loaded == first and loaded.digest() == first.digest()

    # something else wrote the motors (a factory reset, another tool): applying the file puts them back
    arm.bus.configure(4, reverse=True, homing_offset=0)
    assert 4 in loaded.apply(arm.bus)
    pose_arm(vbus, arm.spec, {"elbow": 0.6}, MOUNTING)
    assert arm.read().position[2] == pytest.approx(0.6, abs=2 * RAD_PER_TICK)
    assert loaded.apply(arm.bus) == []  # nothing differs: EEPROM left alone


def test_a_reversed_joint_is_detected(raw_arm):
    arm, vbus = raw_arm
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), _second()])
    calibration = calibrate_arm(arm, prompt)
    assert all(c.verdict == "ok" for c in check_arm(arm, calibration, _second()))

    arm.bus.configure(7, reverse=not calibration.motors[6].reverse)  # wrist_angle flipped behind our back
    checks = {c.joint: c for c in check_arm(arm, calibration, _second())}
    assert checks["wrist_angle"].verdict.startswith("REVERSED: motor 7 drive mode")
    assert checks["waist"].verdict == "ok"


def test_a_joint_calibrated_the_wrong_way_looks_reversed(raw_arm):
    arm, vbus = raw_arm
    wrong_second = {**_second(), "wrist_angle": -math.pi / 2}  # the person bent the wrist up, not down
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), wrong_second])
    calibration = calibrate_arm(arm, prompt)
    pose_arm(vbus, arm.spec, _second(), MOUNTING)  # now held in the true second pose
    checks = {c.joint: c for c in check_arm(arm, calibration, _second())}
    assert checks["wrist_angle"].verdict.startswith("LOOKS REVERSED")
    assert checks["elbow"].verdict == "ok"


def test_a_joint_offset_by_a_turn_is_detected(raw_arm):
    arm, vbus = raw_arm
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), _second()])
    calibration = calibrate_arm(arm, prompt)
    waist = calibration.motors[0]
    arm.bus.write(1, "Homing Offset", waist.homing_offset + 4096)
    checks = {c.joint: c for c in check_arm(arm, calibration, _second())}
    assert "OFFSET BY +1 TURN" in checks["waist"].verdict
    assert "OFFSET BY A TURN" in checks["waist"].verdict


def test_a_pose_that_does_not_fit_is_refused_and_names_the_joint(raw_arm):
    arm, vbus = raw_arm
    lazy_second = {**_second(), "elbow": 0.0}  # the person forgot the elbow
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), lazy_second])
    with pytest.raises(CalibrationError, match="elbow \\(motor 4\\) moved \\+0 degrees"):
        calibrate_arm(arm, prompt)


def test_a_file_for_other_motors_is_refused(raw_arm, tmp_path):
    arm, vbus = raw_arm
    prompt, _ = _person(vbus, arm.spec, MOUNTING, [_reference(), _second()])
    calibration = calibrate_arm(arm, prompt)
    # the rig now says this arm is a ViperX 300 (bigger motors): the file does not fit
    with pytest.raises(CalibrationError, match="motor 1 XM540-W270 \\(waist\\)"):
        calibration.check_spec(builtin_kinds()["viperx_300_6dof"], "leader_left.json", arm="leader_left")
    # the live bus has a different model on ID 1 than the file says
    path = tmp_path / "leader_left.json"
    calibration.save(path)
    data = json.loads(path.read_text())
    data["motors"][0]["model"] = "XM540-W270"
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="motor 1 \\(waist\\) is a XM430-W350, the file says XM540-W270"):
        ArmCalibration.load(path).check_live(arm.bus, str(path))


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "not a tandem calibration file"),
    ('{"format": "tandem-calibration", "version": 99}', "version 99 is not supported"),
    ('{"format": "tandem-calibration", "version": 1, "arm": "a", "kind": "k"}', "motors: required field is missing"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "arm.json"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message) as info:
        ArmCalibration.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", sorted(builtin_kinds()))
def test_second_pose_moves_every_joint(kind):
    poses = builtin_kinds()[kind].calibration
    ref, second = poses.reference_angles(), poses.second_angles()
    assert all(abs(second[j] - ref[j]) >= math.pi / 4 for j in ref)
