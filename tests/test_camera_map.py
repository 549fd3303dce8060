"""--camera-map: a checkpoint trained on cameras with other names (ACT's and gym-aloha's `top`) runs on tandem's rig."""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import pytest
from aloha_files import aloha_raw

from deploy.cli import eval_main
from deploy.compat import camera_sources, check_rig
from deploy.inference import ChunkPredictor
from policies.checkpoint import CheckpointMismatchError, load_checkpoint
from robot.commands import UsageError, camera_map
from robot.rig import load_rig

RUN = ["--episodes", "1", "--episode-steps", "10", "--task", "transfer_cube"]


@pytest.fixture(scope="module")
def top_checkpoint(tmp_path_factory):
    """A tiny ACT trained on episodes laid out as ACT's record_sim_episodes.py writes them: one camera, `top`."""
    from policies.cli import main as train_main

    data = tmp_path_factory.mktemp("act_sim") / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        path = data / f"episode_{i}.hdf5"
        aloha_raw(path, steps=12, cams=("top",), effort=False)
        with h5py.File(path, "r+") as f:  # joint values of a real arm (the helper's are counters)
            f["/observations/qpos"][...] = rng.normal(0.0, 0.1, (12, 14))
            f["/action"][...] = rng.normal(0.0, 0.1, (12, 14))
    out = tmp_path_factory.mktemp("top_act") / "run"
    assert train_main(["--dataset", str(data), "--out", str(out), "--preset", "tiny", "--cameras", "top",
                       "--workers", "0", "--no-progress", "--device", "cpu", "--val-fraction", "0",
                       "--steps", "2"]) == 0
    return out / "last"


def test_the_map_parses_pairs_and_refuses_what_is_not_one():
    assert camera_map("top=cam_high") == {"top": "cam_high"}
    assert camera_map("top = cam_high,angle=cam_low") == {"top": "cam_high", "angle": "cam_low"}
    for bad, why in (("top", "POLICY_CAMERA=RIG_CAMERA"), ("top=", "POLICY_CAMERA=RIG_CAMERA"),
                     ("=cam_high", "POLICY_CAMERA=RIG_CAMERA"), ("top=cam_high,top=cam_low", "mapped twice")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            camera_map(bad)
    assert camera_sources(("top", "cam_low"), {"top": "cam_high"}) == {"top": "cam_high", "cam_low": "cam_low"}


def test_a_malformed_map_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        eval_main(["--checkpoint", "whatever", "--camera-map", "top:cam_high"])
    assert exit_.value.code == 2 and "--camera-map" in capsys.readouterr().err


def test_without_a_map_the_checkpoint_is_refused_and_told_about_the_map(top_checkpoint, capsys):
    assert eval_main(["--checkpoint", str(top_checkpoint), *RUN]) == 1
    err = capsys.readouterr().err
    assert "missing: top" in err and "--camera-map top=<rig camera>" in err and "cam_high" in err, err


@pytest.mark.parametrize(("mapping", "named"), [("front=cam_high", "has no camera 'front'"),
                                                ("top=cam_front", "has no camera 'cam_front'")])
def test_a_map_naming_a_camera_the_checkpoint_or_rig_lacks_is_a_usage_error(top_checkpoint, mapping, named, capsys):
    assert eval_main(["--checkpoint", str(top_checkpoint), "--camera-map", mapping, *RUN]) == 2
    assert named in capsys.readouterr().err


def test_with_the_map_the_policy_runs_on_the_rigs_camera(top_checkpoint, capsys):
    checkpoint = load_checkpoint(top_checkpoint)
    rig = load_rig("sim")
    with pytest.raises(CheckpointMismatchError):
        check_rig(checkpoint, rig)
    with pytest.raises(UsageError):
        check_rig(checkpoint, rig, {"top": "nowhere"})
    check_rig(checkpoint, rig, {"top": "cam_high"})
    assert ChunkPredictor(checkpoint, camera_map={"top": "cam_high"}).camera_sources == {"top": "cam_high"}

    assert eval_main(["--checkpoint", str(top_checkpoint), "--camera-map", "top=cam_high", *RUN]) == 0
    out = capsys.readouterr().out
    assert "cameras top <- cam_high" in out and "episode 1/1 seed 1000" in out, out
