"""Rig files: presets, validation that names file, field and allowed values."""

import pytest
import yaml
from rig_files import rig_refused

from robot.arm_kinds import builtin_kinds
from robot.rig import RigFileError, load_rig, preset_names

GOOD = {
    "name": "bench",
    "arms": {
        "leader_left": {"role": "leader", "port": "/dev/ttyUSB0", "kind": "widowx_250_6dof"},
        "follower_left": {"role": "follower", "port": "/dev/ttyUSB1", "kind": "viperx_300_6dof", "baud": 4000000},
    },
    "pairs": [{"leader": "leader_left", "follower": "follower_left", "signs": {"waist": -1},
               "offsets": {"wrist_rotate": 0.1}}],
    "cameras": {"cam_high": {"device": 0, "fps": 60}},
    "pedal": {"backend": "evdev", "device": "/dev/input/event3", "key": "b"},
}


def _write(tmp_path, data):
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_presets_describe_aloha():
    assert {"aloha", "sim"} <= set(preset_names())
    for name in ("aloha", "sim"):
        rig = load_rig(name)
        assert rig.arm_names == ("leader_left", "leader_right", "follower_left", "follower_right")
        assert [c.name for c in rig.cameras] == ["cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"]
        assert [(p.leader, p.follower) for p in rig.pairs] == [("leader_left", "follower_left"),
                                                                ("leader_right", "follower_right")]
        assert rig.control_hz == 50.0
        assert rig.arm("follower_left").spec.kind == "viperx_300_6dof"
        assert rig.arm("leader_right").spec.joints[1].shadow_id == 3
    assert load_rig("sim").virtual and not load_rig("aloha").virtual
    assert load_rig("aloha").cameras[0].fourcc == "MJPG"


def test_a_user_file_loads_with_overrides(tmp_path):
    data = {**GOOD, "arms": {**GOOD["arms"]}}
    data["arms"]["leader_left"] = {**GOOD["arms"]["leader_left"],
                                   "joints": {"gripper": {"id": 9, "model": "XL330-M288"}}}
    rig = load_rig(_write(tmp_path, data))
    assert rig.arm("leader_left").spec.joints[6].model == "XL330-M288"
    assert rig.arm("follower_left").baud == 4_000_000
    assert rig.pairs[0].signs == {"waist": -1} and rig.pairs[0].offsets == {"wrist_rotate": 0.1}
    assert rig.cameras[0].device == "0" and rig.pedal.backend == "evdev"
    assert rig.calibration_dir.name == "bench"


@pytest.mark.parametrize("change, where, message", [
    (lambda d: d["arms"]["leader_left"].update(role="master"), "arms.leader_left.role",
     "'master' is not one of leader, follower"),
    (lambda d: d["arms"]["leader_left"].update(prot="x"), "arms.leader_left.prot", "unknown field; allowed: role"),
    (lambda d: d["arms"]["leader_left"].update(baud=250000), "arms.leader_left.baud", "250000 is not one of"),
    (lambda d: d["arms"]["leader_left"].update(kind="ur5"), "arms.leader_left.kind", "'ur5' is not one of"),
    (lambda d: d["arms"]["leader_left"].update(joints={"shoulder": {"id": 2, "model": "XM430-W350"}}),
     "arms.leader_left.joints.shoulder.shadow", "a widowx_250_6dof's shoulder has a shadow motor (ID 3)"),
    (lambda d: d["arms"]["leader_left"].pop("port"), "arms.leader_left.port", "required field is missing"),
    (lambda d: d["arms"]["leader_left"].pop("kind"), "arms.leader_left.kind",
     f"required field is missing: name the arm's kind, a built-in one ({', '.join(builtin_kinds())}), or define "
     "one under a top-level `kinds:` section"),
    (lambda d: d["arms"]["leader_left"].update(joints={"wrist": {"id": 1, "model": "XM430-W350"}}),
     "arms.leader_left.joints.wrist", "unknown joint; a widowx_250_6dof has joints waist, shoulder, elbow, "
     "forearm_roll, wrist_angle, wrist_rotate, gripper"),
    (lambda d: d["pairs"][0]["offsets"].update(wrist=0.1), "pairs[0].offsets.wrist",
     "unknown joint; follower follower_left (viperx_300_6dof) has joints waist, shoulder, elbow, forearm_roll, "
     "wrist_angle, wrist_rotate"),
    (lambda d: d["pairs"][0]["signs"].update(gripper=-1), "pairs[0].signs.gripper", "the gripper maps through"),
    (lambda d: d["arms"]["leader_left"].update(joints={"waist": {"id": 2, "model": "XM430-W350"}}),
     "arms.leader_left.joints", "motor ID(s) [2] are used twice"),
    (lambda d: d["arms"]["leader_left"].update(joints={"waist": {"id": 1, "model": "XM999"}}),
     "arms.leader_left.joints.waist.model", "'XM999' is not one of"),
    (lambda d: d["pairs"][0].update(leader="follower_left"), "pairs[0].leader",
     "'follower_left' is not a leader arm of this rig; the leaders are leader_left"),
    (lambda d: d["pairs"][0]["signs"].update(waist=2), "pairs[0].signs.waist", "2 is not one of 1, -1"),
    (lambda d: d["cameras"]["cam_high"].update(fourcc="MJPEG"), "cameras.cam_high.fourcc", "four-character"),
    (lambda d: d["cameras"]["cam_high"].update(width=-1), "cameras.cam_high.width", "must be positive"),
    (lambda d: d["pedal"].update(backend="usb"), "pedal.backend", "'usb' is not one of auto, pynput"),
    (lambda d: d.update(control_hz="fast"), "control_hz", "expected a number"),
    (lambda d: d.update(control_hz=5000), "control_hz", "outside 1..1000"),
])
def test_bad_fields_name_the_file_the_field_and_the_allowed_values(tmp_path, change, where, message):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    change(data)
    rig_refused(_write(tmp_path, data), where, message)


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ValueError, match="unknown rig 'alhoa'.*aloha"):
        load_rig("alhoa")
    path = tmp_path / "rig.yaml"
    path.write_text("arms: [\n")
    with pytest.raises(RigFileError, match="not valid YAML"):
        load_rig(path)


def test_as_virtual_keeps_the_rig_and_moves_its_calibrations_into_virtual(tmp_path):
    rig = load_rig(_write(tmp_path, GOOD))
    virtual = rig.as_virtual()
    assert all(a.virtual and a.port == "virtual" for a in virtual.arms)
    assert [(a.name, a.role, a.spec, a.baud, a.side) for a in virtual.arms] == \
        [(a.name, a.role, a.spec, a.baud, a.side) for a in rig.arms]
    assert [(c.name, c.width, c.height, c.fps, c.type) for c in virtual.cameras] == \
        [(c.name, c.width, c.height, c.fps, "synthetic") for c in rig.cameras]
    assert virtual.control_hz == rig.control_hz and virtual.pairs == rig.pairs
    assert virtual.calibration_dir == rig.calibration_dir / "virtual"
    # the emulator's bus timing, even where the file sets the hardware's
    timed = load_rig(_write(tmp_path, {**GOOD, "read_deadline_ms": 12, "bus_latency_ms": 1})).as_virtual()
    assert (timed.read_deadline_ms, timed.bus_latency_ms) == (1000.0, 20.0)
    # one arm already virtual: the hardware follower's calibration must still not be the virtual one's
    mixed = {**GOOD, "arms": {**GOOD["arms"], "leader_left": {**GOOD["arms"]["leader_left"], "port": "virtual"}}}
    rig = load_rig(_write(tmp_path, mixed))
    assert rig.virtual and rig.as_virtual().calibration_dir == rig.calibration_dir / "virtual"
    assert load_rig("sim").as_virtual().calibration_dir == load_rig("sim").calibration_dir  # all virtual already
