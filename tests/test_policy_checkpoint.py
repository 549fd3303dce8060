"""Checkpoints: save and load give the same actions, atomic replacement, compatibility and missing-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import policies.checkpoint as ckpt
from policies.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    CheckpointMismatchError,
    check_compatible,
    joint_layout,
    load_checkpoint,
    save_checkpoint,
)
from policies.config import preset
from policies.normalize import NormStats
from policies.registry import make_policy


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models step faster on one thread, and two OpenMP threads crawl when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stats() -> NormStats:
    rng = np.random.default_rng(0)
    return NormStats.from_arrays(rng.normal(size=(50, 14)), rng.normal(size=(50, 14)))


def trained_policy(name: str = "act", cameras: tuple[str, ...] = ("cam_high", "cam_low")):
    """A tiny policy after two optimizer steps, so weights, buffers and optimizer state are not the defaults."""
    torch.manual_seed(0)
    config = preset("tiny", policy=name, camera_names=cameras)
    policy = make_policy(config).train()
    optimizer = torch.optim.AdamW(policy.param_groups())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)
    batch = {"qpos": torch.randn(2, 14), "action": torch.randn(2, config.chunk_size, 14),
             "is_pad": torch.zeros(2, config.chunk_size, dtype=torch.bool),
             "images": torch.rand(2, len(cameras), 3, 64, 64)}
    for _ in range(2):
        loss, _ = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return policy, optimizer, scheduler, batch


@pytest.mark.parametrize("name", ["act", "bc_convmlp"])
def test_save_then_load_predicts_the_same_actions(tmp_path: Path, name: str) -> None:
    policy, optimizer, scheduler, batch = trained_policy(name)
    path = save_checkpoint(tmp_path / "ckpt", policy, policy.config, stats(), step=2, dataset_digest="sha256:abc",
                           optimizer=optimizer, scheduler=scheduler, extra={"episodes": 3})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "meta.json", "model.safetensors",
                                                      "optimizer.pt", "stats.json"]
    loaded = load_checkpoint(path)
    assert not loaded.policy.training and loaded.config == policy.config
    torch.testing.assert_close(loaded.policy.predict(batch["qpos"], batch["images"]),
                               policy.predict(batch["qpos"], batch["images"]), rtol=0, atol=0)
    np.testing.assert_array_equal(loaded.stats.action_std, stats().action_std)

    meta = loaded.meta
    assert meta.camera_names == ("cam_high", "cam_low") and meta.image_size == (64, 64)
    assert meta.state_names[:2] == ("left_waist", "left_shoulder") and meta.state_names[6] == "left_gripper"
    assert meta.action_names[7] == "right_waist" and meta.action_names[13] == "right_gripper"
    assert (meta.step, meta.dataset_digest, meta.extra) == (2, "sha256:abc", {"episodes": 3})
    with pytest.raises(CheckpointMismatchError, match=f"checkpoint {path} was trained with cameras"):
        loaded.check_compatible(["cam_high"], 14, 14)

    state = loaded.optimizer_state()
    resumed = torch.optim.AdamW(loaded.policy.param_groups())
    resumed.load_state_dict(state["optimizer"])
    assert resumed.state_dict()["state"][0]["step"] == 2
    assert state["scheduler"]["last_epoch"] == 2


def test_saving_again_replaces_the_checkpoint_and_a_failed_save_keeps_the_old_one(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    policy, *_ = trained_policy(cameras=())
    target = tmp_path / "latest"
    save_checkpoint(target, policy, policy.config, stats(), step=1, dataset_digest="d")
    save_checkpoint(target, policy, policy.config, stats(), step=2, dataset_digest="d")
    assert load_checkpoint(target).meta.step == 2
    assert not (target / "optimizer.pt").exists() and load_checkpoint(target).optimizer_state() is None

    def crash(path: Path, data: bytes) -> None:
        if path.name == "stats.json":
            raise OSError("disk full")
        path.write_bytes(data)

    monkeypatch.setattr(ckpt, "_write", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, policy, policy.config, stats(), step=3, dataset_digest="d")
    assert load_checkpoint(target).meta.step == 2
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temporary directories left behind


def test_mismatched_rig_is_refused_saying_what_differs() -> None:
    meta = CheckpointMeta(policy="act", camera_names=("cam_high", "cam_low"), image_size=(240, 320),
                          state_names=joint_layout(14), action_names=joint_layout(14), dataset_digest="d", step=0)
    check_compatible(meta, ["cam_low", "cam_high", "cam_left_wrist"], 14, 14)  # extra cameras stay unused
    with pytest.raises(CheckpointMismatchError) as info:
        check_compatible(meta, ["cam_high"], 12, 14, source="rig aloha", checkpoint="runs/a/step_100")
    assert str(info.value) == (
        "checkpoint runs/a/step_100 was trained with cameras [cam_high, cam_low]; rig aloha has [cam_high] "
        "(missing: cam_low); it was trained with state dimension 14; rig aloha has 12")
    with pytest.raises(CheckpointMismatchError, match="action dimension 14; the rig has 16"):
        check_compatible(meta, ["cam_high", "cam_low"], 14, 16)


def test_missing_or_broken_files_are_named(tmp_path: Path) -> None:
    policy, *_ = trained_policy(cameras=())
    path = save_checkpoint(tmp_path / "c", policy, policy.config, stats(), step=0, dataset_digest="d")
    (path / "stats.json").unlink()
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is incomplete: missing stats.json"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint directory at"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / ".nowhere.old-1a2b3c4d").mkdir()  # what a crash between the two renames of a replace leaves
    with pytest.raises(CheckpointError, match=r"interrupted while replacing it: the previous one is at .*old-1a2b"):
        load_checkpoint(tmp_path / "nowhere")

    path = save_checkpoint(tmp_path / "d", policy, policy.config, stats(), step=0, dataset_digest="d")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "hidden_dim": 32}))
    with pytest.raises(CheckpointError, match="model.safetensors do not fit the act policy"):
        load_checkpoint(path)
    (path / "config.json").write_text(json.dumps({**config, "hiden_dim": 64}))
    with pytest.raises(CheckpointError, match=r"config.json: unknown field\(s\) hiden_dim"):
        load_checkpoint(path)


def test_save_refuses_a_config_that_is_not_the_policys(tmp_path: Path) -> None:
    policy, *_ = trained_policy(cameras=())
    with pytest.raises(ValueError, match="chunk_size: 8 vs 4"):
        save_checkpoint(tmp_path / "c", policy, policy.config.replace(chunk_size=4), stats(), step=0,
                        dataset_digest="d")
    assert not (tmp_path / "c").exists()


def test_the_checkpoint_keeps_the_datasets_joint_names_and_a_rig_of_other_joints_is_refused(tmp_path: Path) -> None:
    from deploy.compat import check_rig
    from robot.rig import load_rig

    koch = tuple(f"left_{j}" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll",
                                       "gripper"))
    torch.manual_seed(0)
    policy = make_policy(preset("tiny", camera_names=(), state_dim=6, action_dim=6))
    six = NormStats.from_arrays(np.random.default_rng(0).normal(size=(50, 6)), np.zeros((50, 6)))
    with pytest.raises(ValueError, match="7 state names .* for the policy's state dimension 6"):
        save_checkpoint(tmp_path / "c", policy, policy.config, six, step=0, dataset_digest="d",
                        state_names=(*koch, "left_extra"), action_names=koch)
    path = save_checkpoint(tmp_path / "c", policy, policy.config, six, step=0, dataset_digest="d", state_names=koch,
                           action_names=koch)
    checkpoint = load_checkpoint(path)
    assert checkpoint.meta.state_names == checkpoint.meta.action_names == koch
    with pytest.raises(CheckpointMismatchError) as info:
        check_rig(checkpoint, load_rig("sim"))
    message = str(info.value)
    assert "only the checkpoint has left_shoulder_pan, left_shoulder_lift, left_elbow_flex" in message
    assert "only the rig has left_waist, left_shoulder, left_elbow" in message and "right_gripper" in message
    assert f"checkpoint: {', '.join(koch)}; rig: left_waist," in message
    # without names (a dataset recorded without them) a 14-wide policy gets ALOHA's layout, as before
    policy, *_ = trained_policy(cameras=())
    assert load_checkpoint(save_checkpoint(tmp_path / "a", policy, policy.config, stats(), step=0,
                                           dataset_digest="d")).meta.state_names == joint_layout(14)
