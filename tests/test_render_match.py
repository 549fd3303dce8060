"""--render aloha: the simulated cameras as gym-aloha renders them; the style kept in datasets and checkpoints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deploy.cli import eval_main
from deploy.render import render_settings
from policies.checkpoint import read_meta
from recording.cli import main as record_main
from recording.dataset import Dataset, DatasetError, DatasetInfo
from recording.reader import EpisodeReader
from robot.commands import UsageError
from robot.sim.gym_aloha_frames import frame_difference, gym_aloha_frames
from robot.sim.world import World

SIZE = (60, 80)


def test_the_aloha_style_renders_what_gym_aloha_renders_and_the_fast_one_does_not():
    """One state, one camera: gym-aloha's own environment against tandem's world in each style."""
    worlds = {name: World("insertion", image_size=SIZE, render=name) for name in ("fast", "aloha")}
    try:
        worlds["fast"].reset(7)
        state = (worlds["fast"].data.qpos.copy(), worlds["fast"].data.qvel.copy())
        worlds["aloha"].data.qpos[:], worlds["aloha"].data.qvel[:] = state
        ((theirs,), _) = gym_aloha_frames("insertion", [state], ["cam_high"], SIZE)
        fast = frame_difference(worlds["fast"].render("cam_high"), theirs["cam_high"])
        aloha = frame_difference(worlds["aloha"].render("cam_high"), theirs["cam_high"])
    finally:
        for world in worlds.values():
            world.close()
    assert theirs["cam_high"].mean() > 20  # a picture, not a black frame
    assert aloha[0] < 0.1 and aloha[1] < 1e-3, aloha  # the same pixels (0 on Mesa's EGL)
    assert fast[0] > 0.5 and fast[0] > 10 * max(aloha[0], 0.01), (fast, aloha)


def test_an_unknown_style_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown render 'pretty'; choose one of: fast, aloha"):
        World("insertion", image_size=SIZE, render="pretty")


def test_the_style_is_kept_in_the_dataset_and_every_episode_and_a_mix_is_refused(tmp_path, capsys):
    data = tmp_path / "d"
    assert record_main(["--dataset", str(data), "--seconds", "0.1", "--image-size", "24x32", "--raw",
                        "--render", "aloha"]) == 0
    dataset = Dataset.open(data)
    assert dataset.info.render == "aloha"
    with EpisodeReader(dataset.path(0)) as ep:
        assert ep.attrs["render"] == "aloha"
    assert record_main(["--dataset", str(data), "--seconds", "0.1", "--image-size", "24x32", "--raw"]) == 1
    assert "render: the dataset has 'aloha', this session 'fast'" in capsys.readouterr().err


def test_a_dataset_recorded_before_the_style_was_kept_takes_either(tmp_path):
    old = DatasetInfo(rig="sim", cameras=["cam_high"], image_size={"cam_high": [24, 32]})
    with Dataset.create_or_open(tmp_path, old, say=lambda _: None):
        pass
    for style in ("aloha", "fast"):
        with Dataset.create_or_open(tmp_path, replace(old, render=style), say=lambda _: None) as dataset:
            assert dataset.info.render == ""  # still unknown: its earlier episodes were not told
    with pytest.raises(DatasetError, match="render: the dataset has 'fast', this session 'aloha'"):
        Dataset(tmp_path, replace(old, render="fast")).check_matches(replace(old, render="aloha"))


def test_a_policy_run_renders_as_its_data_unless_told_and_says_when_that_differs():
    rig_cameras = ["cam_high", "cam_low"]
    trained = DatasetInfo(render="aloha", image_size={"cam_high": [24, 32]})
    settings = render_settings(["cam_high"], (24, 32), rig_cameras, trained_on=trained)
    assert (settings.render, settings.render_from, settings.warning) == ("aloha", "the policy's training images", "")
    settings = render_settings(["cam_high"], (24, 32), rig_cameras, policy_render="aloha")
    assert settings.render == "aloha"
    told = render_settings(["cam_high"], (24, 32), rig_cameras, trained_on=trained, requested_render="fast")
    assert told.render == "fast" and "trained on images rendered 'aloha', this run renders 'fast'" in told.warning
    joined = DatasetInfo(cameras=["cam_high"], render="fast", image_size={"cam_high": [24, 32]})
    assert render_settings(["cam_high"], (24, 32), rig_cameras, existing=joined).render == "fast"
    with pytest.raises(UsageError, match="--render aloha: the dataset was rendered 'fast'"):
        render_settings(["cam_high"], (24, 32), rig_cameras, existing=joined, requested_render="aloha")
    assert render_settings(["cam_high"], (24, 32), rig_cameras).render == "fast"  # nothing known: the default


def test_the_checkpoint_remembers_its_style_and_eval_warns_on_another(checkpoint, capsys):
    assert read_meta(checkpoint).extra["render"] == "fast"  # the demos were recorded with the default
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "5",
                      "--render", "aloha"]) == 0
    out = capsys.readouterr().out
    assert "warning: the policy was trained on images rendered 'fast', this run renders 'aloha'" in out
    assert "render aloha (--render)" in out
