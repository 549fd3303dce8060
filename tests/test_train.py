"""The episode loader and the trainer on a dataset recorded on the simulated rig, and on ALOHA's files."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from aloha_files import CAMS, aloha_compressed, scene

from policies.checkpoint import OPTIMIZER_FILE, load_checkpoint
from policies.cli import main as train_main
from policies.config import preset
from policies.dataset import EpisodeDataset, compute_stats, load_episodes, split_episodes, still_frames
from policies.train import WeightedSampler, adamw, autocast_for, fused_adamw_on, lr_factor
from recording.cli import main as record_main
from recording.dataset import Dataset

TINY = ["--preset", "tiny", "--workers", "0", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def sim_dataset(tmp_path_factory):
    """Two 4 s demonstrations by the scripted operator, four cameras at 48x64, JPEG."""
    root = tmp_path_factory.mktemp("sim") / "demos"
    assert record_main(["--dataset", str(root), "--episodes", "2", "--seconds", "4", "--image-size", "48x64"]) == 0
    return root


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_samples_cover_every_frame_with_chunks_padded_at_the_end(sim_dataset):
    dataset = Dataset.open(sim_dataset)
    episodes = load_episodes(dataset, [0, 1])
    stats = compute_stats(episodes)
    data = EpisodeDataset(dataset, [0, 1], camera_names=("cam_high", "cam_left_wrist"), image_size=(32, 40),
                          chunk_size=10, stats=stats)
    assert len(data) == 400 and data.locate(200) == (1, 0)
    sample = data[199]  # the last frame of episode 0: one real action, nine padded
    assert sample["images"].shape == (2, 3, 32, 40) and sample["images"].dtype == torch.float32
    assert 0.0 <= float(sample["images"].min()) and float(sample["images"].max()) <= 1.0
    assert sample["is_pad"].tolist() == [False] + [True] * 9
    expected = stats.normalize_action(episodes[0].action[199])
    assert np.allclose(sample["action"][0].numpy(), expected, atol=1e-6)
    assert np.allclose(sample["qpos"].numpy(), stats.normalize_qpos(episodes[0].qpos[199]), atol=1e-6)
    cached = EpisodeDataset(dataset, [0, 1], camera_names=("cam_high", "cam_left_wrist"), image_size=(32, 40),
                            chunk_size=10, stats=stats, cache_images=True)
    assert torch.equal(cached[123]["images"], data[123]["images"])  # the cache holds what decoding gives
    assert list((sim_dataset / ".cache").rglob("*.npy"))
    with pytest.raises(ValueError, match="has no cam_elsewhere"):
        EpisodeDataset(dataset, [0], camera_names=("cam_elsewhere",), image_size=(32, 40), chunk_size=10,
                       stats=stats)


def test_split_is_by_episode_and_seeded():
    train, val = split_episodes(range(20), 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == list(range(20))
    assert split_episodes(range(20), 0.2, seed=3) == (train, val)
    assert split_episodes(range(20), 0.2, seed=4) != (train, val)
    assert split_episodes([7], 0.5, seed=0) == ([7], [])


def test_the_loader_reads_aloha_compressed_files(tmp_path):
    for i in range(2):
        aloha_compressed(tmp_path / f"episode_{i}.hdf5", steps=12)
    dataset = Dataset.open(tmp_path)  # no dataset.json: indexed from the files
    stats = compute_stats(load_episodes(dataset, [0, 1]))
    data = EpisodeDataset(dataset, [0, 1], camera_names=CAMS, image_size=(48, 64), chunk_size=4, stats=stats)
    images = data[12 + 5]["images"]
    assert images.shape == (4, 3, 48, 64)
    original = torch.from_numpy(scene(5, 2)).permute(2, 0, 1).float() / 255
    assert (images[2] - original).abs().mean() < 0.03  # within JPEG tolerance


@pytest.mark.slow  # end to end, ~15-20 s: python3 -m pytest -m slow
def test_a_tiny_act_overfits_two_sim_episodes(sim_dataset, tmp_path):
    out = tmp_path / "run"
    code = train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "300",
                       "--val-fraction", "0", "--warmup-steps", "20", "--lr", "3e-3", "--kl-weight", "0.1",
                       "--lr-backbone", "0"])  # a frozen (random) ResNet: the transformer and heads still fit
    assert code == 0
    l1 = [m["l1"] for m in metrics(out) if "l1" in m]
    start, end = np.mean(l1[:2]), np.mean(l1[-3:])
    assert end < 0.35 * start, (start, end)
    checkpoint = load_checkpoint(out / "best")
    assert checkpoint.meta.step == 300 and checkpoint.meta.camera_names == ("cam_high",)


def test_resume_continues_from_the_saved_step(sim_dataset, tmp_path):
    out = tmp_path / "run"
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "20",
                       "--save-every", "10", "--val-every", "10"]) == 0
    first = load_checkpoint(out / "last")
    assert first.meta.step == 20
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "30", "--resume",
                       "--save-every", "10", "--val-every", "10"]) == 0
    steps = [m["step"] for m in metrics(out) if "loss" in m]
    assert steps == [10, 20, 30]  # the second run logged from step 21 on
    resumed = load_checkpoint(out / "last")
    assert resumed.meta.step == 30 and resumed.optimizer_state()["scheduler"]["last_epoch"] == 30
    assert json.dumps(resumed.stats.to_dict()) == json.dumps(first.stats.to_dict())  # the stats it began with
    assert resumed.meta.extra["train_seconds"] > first.meta.extra["train_seconds"] > 0  # both runs' time


def test_resume_without_a_checkpoint_is_refused(sim_dataset, tmp_path, capsys):
    assert train_main(["--dataset", str(sim_dataset), "--out", str(tmp_path / "none"), *TINY, "--resume"]) == 1
    assert "no checkpoint to resume from" in capsys.readouterr().err


@pytest.mark.slow  # two processes under torchrun, ~10 s
def test_two_gloo_processes_under_torchrun_keep_identical_parameters(sim_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", "-m", "policies.cli", "--dataset", str(sim_dataset),
                          "--out", str(out), *TINY, "--steps", "8", "--val-every", "4"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: parameters differ across the 2 processes by at most 0\n" in run.stdout
    assert load_checkpoint(out / "last").meta.step == 8  # rank 0 wrote it


def test_a_state_only_policy_and_the_bc_baseline_train(sim_dataset, tmp_path):
    for policy, cameras in (("act", "none"), ("bc_convmlp", "cam_high")):
        out = tmp_path / policy
        assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "5",
                           "--policy", policy, "--cameras", cameras]) == 0
        assert load_checkpoint(out / "last").config.policy == policy


def test_presets_build():
    assert preset("small").chunk_size < preset("paper").chunk_size == 100


def test_corrections_are_drawn_by_their_weight():
    weights = np.array([1.0] * 90 + [5.0] * 10)  # 90 demo frames, 10 correction frames weighted 5x
    sampler = WeightedSampler(weights, seed=1)
    drawn = []
    for epoch in range(40):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    share = np.mean(np.array(drawn) >= 90)
    assert abs(share - 50 / 140) < 0.03, share  # 10*5 of 90+50
    ranks = [list(WeightedSampler(weights, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == 50 and ranks[0] != ranks[1]


def test_still_frames_are_those_whose_next_chunk_barely_moves():
    action = np.zeros((30, 3), np.float32)
    action[:10, 0] = np.linspace(0.0, 0.9, 10)  # a reach for 10 steps, then a hold at 0.9
    action[10:, 0] = 0.9
    action[20, 2] = 0.005  # one twitch within the threshold
    still = still_frames(action, chunk_size=5, threshold=0.01)
    assert not still[:9].any() and still[9:].all()  # frame 8's chunk (8..12) still reaches 0.9; 9 onward holds
    assert still_frames(action, chunk_size=5, threshold=0.001)[9:].tolist() == [True] * 7 + [False] * 5 + [True] * 9


def test_still_frames_are_drawn_less_and_say_so(sim_dataset, tmp_path, capsys):
    dataset = Dataset.open(sim_dataset)
    episodes = load_episodes(dataset, [0, 1])
    data = EpisodeDataset(dataset, [0, 1], camera_names=(), image_size=(32, 40), chunk_size=10,
                          stats=compute_stats(episodes))
    still = data.still_mask()
    assert 0 < still.sum() < len(still)  # the scripted operator moves, then waits
    assert np.array_equal(data.frame_weights(still_weight=0.25, still=still), np.where(still, 0.25, 1.0))
    data.episodes[1] = dataclasses.replace(data.episodes[1], kind="correction")
    assert not data.still_mask()[200:].any() and np.array_equal(data.still_mask()[:200], still[:200])
    assert np.array_equal(data.frame_weights(2.0, 0.25, data.still_mask()),
                          np.concatenate([np.where(still[:200], 0.25, 1.0), np.full(200, 2.0)]))
    with pytest.raises(ValueError, match="chunk_size is 1"):
        EpisodeDataset(dataset, [0], camera_names=(), image_size=(32, 40), chunk_size=1,
                       stats=compute_stats(episodes)).still_mask()

    out = tmp_path / "run"
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "2",
                       "--still-weight", "0.25"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sampling:"))
    assert "of the training frames are still" in line and "weighted 0.25" in line, line
    # a resumed run with other flags says so, and the checkpoint keeps how each part of the run trained
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "3", "--resume"]) == 0
    assert "note: resumed with still_weight 1.0 (was 0.25)" in capsys.readouterr().out
    training = load_checkpoint(out / "last").meta.extra["training"]
    assert [(t["from_step"], t["still_weight"], t["precision"]) for t in training] == [(0, 0.25, "fp32"),
                                                                                      (2, 1.0, "fp32")]


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, 10, 100) for step in range(101)]
    assert factors[0] == 0.1 and factors[9] == 1.0 and factors[10] == 1.0
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False)) and factors[100] == 0.0



def test_the_fused_optimizer_makes_the_same_update_as_plain_adamw():
    from policies.registry import make_policy

    config = preset("tiny")
    torch.manual_seed(0)
    ours, plain = make_policy(config), make_policy(config)
    plain.load_state_dict(ours.state_dict())
    start = [p.detach().clone() for p in ours.parameters()]
    cpu = torch.device("cpu")
    optimizers = adamw(ours.param_groups(), 0.1, cpu), torch.optim.AdamW(plain.param_groups(), weight_decay=0.1)
    assert optimizers[0].defaults["fused"] is fused_adamw_on(cpu) is True  # torch 2.13 has the CPU kernel
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        batch = {"qpos": torch.randn(2, 14, generator=g), "action": torch.randn(2, config.chunk_size, 14, generator=g),
                 "is_pad": torch.zeros(2, config.chunk_size, dtype=torch.bool),
                 "images": torch.rand(2, 1, 3, *config.image_size, generator=g)}
        loss, _ = ours(batch)
        optimizers[0].zero_grad()
        loss.backward()
        for a, b in zip(ours.parameters(), plain.parameters(), strict=True):  # the same gradients into both
            b.grad = None if a.grad is None else a.grad.clone()
        for optimizer in optimizers:
            optimizer.step()
    pairs = list(zip(ours.parameters(), plain.parameters(), start, strict=True))
    assert max(float((a - b).abs().max()) for a, b, _ in pairs) < 1e-5
    assert max(float((a - s).abs().max()) for a, _, s in pairs) > 1e-3  # they did move


def test_precision_chooses_the_autocast():
    cpu = torch.device("cpu")
    linear = torch.nn.Linear(4, 4)
    with autocast_for("bf16", cpu):
        assert linear(torch.ones(1, 4)).dtype == torch.bfloat16
    for fp32 in ("auto", "fp32"):  # auto is bf16 on GPUs only
        with autocast_for(fp32, cpu):
            assert linear(torch.ones(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        autocast_for("fp16", cpu)


def test_bf16_on_the_cpu_trains_and_a_run_saved_without_the_fused_kernel_resumes_with_it(sim_dataset, tmp_path,
                                                                                        capsys):
    out = tmp_path / "run"
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "6", "--precision",
                       "bf16", "--save-every", "3", "--val-every", "3"]) == 0
    assert "bf16 autocast" in capsys.readouterr().out
    saved = out / "last" / OPTIMIZER_FILE
    state = torch.load(saved, weights_only=True)
    assert all(group["fused"] for group in state["optimizer"]["param_groups"])
    for group in state["optimizer"]["param_groups"]:  # as runs were saved before the fused kernel
        group["fused"] = None
    torch.save(state, saved)
    assert train_main(["--dataset", str(sim_dataset), "--out", str(out), *TINY, "--steps", "9", "--resume",
                       "--save-every", "3", "--val-every", "3"]) == 0
    resumed = torch.load(saved, weights_only=True)
    assert all(group["fused"] for group in resumed["optimizer"]["param_groups"])
    assert load_checkpoint(out / "last").meta.step == 9
    assert all(np.isfinite(m["loss"]) for m in metrics(out) if "loss" in m)


def test_a_run_copied_to_another_machine_resumes_there(sim_dataset, tmp_path):
    """What moving a run between machines amounts to: the dataset and OUT copied elsewhere, the source gone."""
    import shutil

    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(sim_dataset, here / "demos", ignore=shutil.ignore_patterns(".cache", ".lock*"))
    assert train_main(["--dataset", str(here / "demos"), "--out", str(here / "run"), *TINY, "--steps", "4",
                       "--save-every", "2", "--val-every", "2", "--cache-images"]) == 0
    shutil.copytree(here / "demos", there / "demos", ignore=shutil.ignore_patterns(".cache"))
    shutil.copytree(here / "run", there / "run")
    shutil.rmtree(here)
    assert train_main(["--dataset", str(there / "demos"), "--out", str(there / "run"), *TINY, "--steps", "6",
                       "--resume", "--save-every", "2", "--val-every", "2", "--cache-images"]) == 0
    resumed = load_checkpoint(there / "run" / "last")
    assert resumed.meta.step == 6 and resumed.optimizer_state()["scheduler"]["last_epoch"] == 6
    assert [m["step"] for m in metrics(there / "run") if "loss" in m] == [4, 6]  # metrics.jsonl came along
