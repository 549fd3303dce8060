"""The live view (--display) and tandem-inspect --rerun: real sessions, real .rrd files read back with Rerun's API."""

from __future__ import annotations

import re
import threading
import uuid
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
import rerun as rr
from rerun.chunk import RrdReader

from recording.dataset import Dataset
from recording.reader import EpisodeReader
from robot.clock import RealClock
from robot.commands import DISPLAY_AUTO, command_parser
from robot.display import JointGroup, LiveView, open_recording
from robot.loop import ControlLoop, JointLimits
from robot.rig import load_rig

SIDES = ("left", "right")


def read_rrd(path):
    """What a .rrd holds, per entity: scalar rows {step: values}, series names, image count, text lines."""
    scalars, names, images, texts = defaultdict(dict), {}, defaultdict(int), defaultdict(list)
    for chunk in RrdReader(path).stream().to_chunks():
        batch = chunk.to_record_batch()
        entity = chunk.entity_path.lstrip("/")
        columns = set(batch.schema.names)
        steps = batch.column("step").to_pylist() if "step" in columns else [None] * batch.num_rows
        for name in columns & {"Scalars:scalars", "SeriesLines:names", "EncodedImage:blob", "TextLog:text"}:
            values = batch.column(name).to_pylist()
            for step, value in zip(steps, values, strict=True):
                if value is None:
                    continue
                if name == "Scalars:scalars":
                    scalars[entity][step] = value
                elif name == "SeriesLines:names":
                    names[entity] = value
                elif name == "EncodedImage:blob":
                    images[entity] += 1
                elif name == "TextLog:text":
                    texts[entity].extend(value)
    return scalars, names, images, texts


def joint_entities(rig_name="sim"):
    rig = load_rig(rig_name)
    return [f"joints/{a.side}/{j}" for a in rig.followers for j in a.spec.joint_names]


# -- a short sim teleop with --display FILE.rrd ------------------------------------------------------------------
def test_a_sim_teleop_display_file_holds_every_camera_and_joint(tmp_path, capsys):
    from teleop.cli import main as teleop_main

    rrd = tmp_path / "teleop.rrd"
    assert teleop_main(["--rig", "sim", "--task", "transfer_cube", "--episode-steps", "30", "--display",
                        str(rrd)]) == 0
    out = capsys.readouterr().out
    assert f"display: saving to {rrd}" in out and f"`rerun {rrd}`" in out
    shown, total = map(int, re.search(r"display: (\d+) of (\d+) steps shown", out).groups())
    assert total == 30 and shown > 0

    scalars, names, images, texts = read_rrd(rrd)
    for camera in (c.name for c in load_rig("sim").cameras):
        assert images[f"cameras/{camera}"] >= 1, camera
    for entity in joint_entities():
        assert names[entity] == ["leader", "follower", "command"], entity
        rows = scalars[entity]
        assert len(rows) == shown, entity
        assert all(len(v) == 3 and np.all(np.isfinite(v)) for v in rows.values()), entity
    # the scripted operator moves the leaders: the followers' commands follow them
    shoulder = np.array([v for _, v in sorted(scalars["joints/left/shoulder"].items())])
    assert np.ptp(shoulder[:, 0]) > 0 and np.ptp(shoulder[:, 2]) > 0
    assert len(scalars["loop/period_error_ms"]) == shown
    assert set(scalars["control/person"]) == set(scalars["joints/left/waist"])
    assert texts["control"] == ["person drives"]


# -- a slow display never holds the loop ------------------------------------------------------------------------
class HeldRecording:
    """A real Rerun recording whose batches wait until released: a display thread far behind the loop."""

    def __init__(self, recording):
        self.recording = recording
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.recording, name)

    def send_record_batch(self, batch):
        self.entered.set()
        self.release.wait()
        self.recording.send_record_batch(batch)


class Hold:
    def targets(self, states):
        return {"follower_left": states["follower_left"].position}


def test_a_display_thread_that_falls_behind_drops_the_oldest_steps_and_never_blocks_the_loop(follower, tmp_path):
    arm, _ = follower
    rrd = tmp_path / "held.rrd"
    recording = rr.RecordingStream("tandem-test", recording_id=uuid.uuid4())
    recording.save(rrd)
    held = HeldRecording(recording)
    lines = []
    group = JointGroup("left", "follower_left", arm.joint_names)
    view = LiveView(held, [group], {}, capacity=10, tick_hz=100.0, say=lines.append)
    n = len(arm.joint_names)
    limits = {"follower_left": JointLimits(np.full(n, -np.pi), np.full(n, np.pi))}
    loop = ControlLoop({"follower_left": arm}, Hold(), limits, RealClock(), observers=[view])
    try:
        loop.step()
        assert held.entered.wait(60)  # the display thread holds step 0 and is stuck in the sink
        stepping = threading.Thread(target=lambda: [loop.step() for _ in range(50)])
        stepping.start()
        stepping.join(60)
        assert not stepping.is_alive()  # the loop went on while the display was stuck
        assert view.steps == 51 and view.dropped == 40  # the queue kept the newest 10
    finally:
        held.release.set()
        view.close()
        loop.close()
    assert view.shown == 11 and not view.error
    assert "11 of 51 steps shown, 40 update(s) dropped (the display fell behind" in lines[-1]
    scalars, names, _, _ = read_rrd(rrd)
    rows = scalars["joints/left/waist"]
    assert sorted(rows) == [0, *range(41, 51)]  # step 0, then the newest ten: the oldest were dropped
    assert names["joints/left/waist"] == ["follower", "command"]  # no leader in this loop


# -- where it goes --------------------------------------------------------------------------------------------------
def test_without_a_display_the_flag_alone_saves_a_file_and_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    recording, sink = open_recording(DISPLAY_AUTO, name="test", fallback=tmp_path / "here.rrd")
    recording.log("loop/period_error_ms", rr.Scalars(0.5))
    recording.flush()
    recording.disconnect()
    assert (sink.kind, sink.where, sink.why) == ("file", str(tmp_path / "here.rrd"), "no display here")
    assert "rerun " + str(tmp_path / "here.rrd") in sink.line()
    assert 0.5 in [v[0] for v in read_rrd(tmp_path / "here.rrd")[0]["loop/period_error_ms"].values()]


def test_a_display_the_viewer_cannot_open_falls_back_to_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPLAY", "nowhere.invalid:0")  # set, but no X server answers there
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)  # nor a Wayland one, on a desktop
    recording, sink = open_recording(DISPLAY_AUTO, name="test", fallback=tmp_path / "here.rrd")
    recording.log("loop/period_error_ms", rr.Scalars(0.5))
    recording.flush()
    recording.disconnect()
    assert (sink.kind, sink.why) == ("file", "the viewer did not start: its message is above")
    assert read_rrd(tmp_path / "here.rrd")[0]["loop/period_error_ms"]


@pytest.mark.parametrize("value, message", [("out.txt", "is neither a .rrd file nor serve"),
                                            ("/nowhere/out.rrd", "no such folder /nowhere")])
def test_a_bad_display_value_is_a_usage_error_naming_it(value, message, capsys):
    from robot.commands import add_display_argument

    parser = command_parser("tandem-x", "")
    add_display_argument(parser)
    assert parser.parse_args(["--display"]).display == DISPLAY_AUTO
    assert parser.parse_args(["--display", "serve"]).display == "serve"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--display", value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


# -- tandem-inspect --episode K --rerun -------------------------------------------------------------------------
def test_inspect_rerun_sends_every_frame_and_the_recorded_joints(demos, tmp_path, capsys):
    from recording.inspect import main as inspect_main

    rrd = tmp_path / "episode.rrd"
    assert inspect_main(["--dataset", str(demos), "--episode", "1", "--no-video", "--out", str(tmp_path),
                         "--rerun", str(rrd)]) == 0
    assert f"saving to {rrd}" in capsys.readouterr().out
    scalars, names, images, texts = read_rrd(rrd)
    with EpisodeReader(demos / "episode_1.hdf5") as episode:
        qpos, action, cameras, length = episode.qpos, episode.action, episode.camera_names, episode.length
        state_names = [str(n) for n in episode.attrs["state_names"]]
    assert len(cameras) == 4 and all(images[f"cameras/{c}"] == length for c in cameras)
    for j, name in enumerate(state_names):
        side, _, joint = name.partition("_")
        rows = scalars[f"joints/{side}/{joint}"]
        assert names[f"joints/{side}/{joint}"] == ["follower", "command"]
        recorded = np.array([rows[s] for s in range(length)])
        np.testing.assert_allclose(recorded, np.stack([qpos[:, j], action[:, j]], axis=1), rtol=1e-6)
    assert texts["control"] == ["person drives"]  # a demonstration: a person drove every step


def test_inspect_rerun_needs_an_episode(demos, capsys):
    from recording.inspect import main as inspect_main

    assert inspect_main(["--dataset", str(demos), "--rerun"]) == 2
    assert "--rerun shows one episode (add --episode K)" in capsys.readouterr().err


# -- deploy and eval: who drives, the policy's actions -----------------------------------------------------------
def test_a_gated_eval_display_shows_the_policy_the_takeover_and_both_actions(demos, checkpoint, tmp_path, capsys):
    from deploy.cli import eval_main
    from recording.inspect import main as inspect_main

    # the dataset corrections join records only the policy's camera: the view shows every camera all the same
    data = tmp_path / "demos"
    recorded = Dataset.open(demos).info
    with Dataset.create_or_open(data, replace(recorded, cameras=["cam_high"], episodes=[],
                                              image_size={"cam_high": recorded.image_size["cam_high"]}),
                                say=lambda _: None):
        pass
    rrd = tmp_path / "eval.rrd"
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "30",
                      "--gate", "stalled:5", "--dataset", str(data), "--keep-rollouts", "--display", str(rrd)]) == 0
    assert "display: 30 of 30 steps shown" in capsys.readouterr().out
    scalars, names, images, texts = read_rrd(rrd)
    assert texts["control"] == ["policy drives", "person drives"]
    person = scalars["control/person"]
    taken = min(s for s, v in person.items() if v == [1.0])
    assert 0 < taken < 30 and all(person[s] == [0.0] for s in range(taken))
    for entity in joint_entities():
        side, joint = entity.split("/")[1:]
        for row in ("policy_action", "ensembled"):
            steps = scalars[f"deploy/{row}/{side}/{joint}"]
            assert steps and max(steps) < taken, (row, entity)  # only while the policy drove
            assert names[f"deploy/{row}/{side}/{joint}"] == [row]
    assert all(images[f"cameras/{c.name}"] >= 1 for c in load_rig("sim").cameras)

    # the rollout episode it saved reads the same way in tandem-inspect --rerun: the same step changes hands
    rollout = next(e for e in Dataset.open(data).episodes(["rollout"]))
    with EpisodeReader(data / rollout.file) as episode:
        assert list(episode.camera_names) == ["cam_high"]  # what the dataset records, not what the view showed
    episode_rrd = tmp_path / "rollout.rrd"
    assert inspect_main(["--dataset", str(data), "--episode", str(rollout.index), "--no-video", "--out",
                         str(tmp_path), "--rerun", str(episode_rrd)]) == 0
    recorded, _, _, recorded_texts = read_rrd(episode_rrd)
    assert recorded_texts["control"] == ["policy drives", "person drives"]
    assert min(s for s, v in recorded["control/person"].items() if v == [1.0]) == taken
