"""PolicyConfig presets and JSON round trip; normalization statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policies.config import PRESETS, PolicyConfig, preset
from policies.normalize import NormStats


def test_paper_preset_is_the_papers_settings() -> None:
    c = preset("paper")
    assert (c.chunk_size, c.hidden_dim, c.dim_feedforward, c.enc_layers, c.dec_layers, c.nheads) == \
        (100, 512, 3200, 4, 7, 8)
    assert (c.kl_weight, c.lr, c.lr_backbone, c.batch_size, c.dropout, c.latent_dim) == (10, 1e-5, 1e-5, 8, 0.1, 32)
    assert c.image_size == (480, 640) and len(c.camera_names) == 4


def test_cpu_preset_is_small_on_the_top_camera_with_a_trained_backbone() -> None:
    c = preset("cpu")
    assert c.camera_names == ("cam_high",) and c.lr_backbone == c.lr  # the ResNet trains from scratch
    assert c.replace(camera_names=PRESETS["small"].camera_names, lr_backbone=PRESETS["small"].lr_backbone) == \
        preset("small")


def test_presets_round_trip_through_json() -> None:
    for config in PRESETS.values():
        assert PolicyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_preset_overrides_and_unknown_names() -> None:
    c = preset("small", chunk_size=20, camera_names=["cam_high"])
    assert c.chunk_size == 20 and c.camera_names == ("cam_high",) and c.hidden_dim == PRESETS["small"].hidden_dim
    with pytest.raises(ValueError, match="unknown policy preset 'huge'; available presets: paper, small, cpu, tiny"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown field"):
        preset("small", chunk=20)


def test_from_dict_refuses_unknown_fields_and_wrong_types() -> None:
    with pytest.raises(ValueError, match=r"cfg.json: unknown field\(s\) chunksize, hiden_dim; known fields are: "):
        PolicyConfig.from_dict({"chunksize": 10, "hiden_dim": 3}, source="cfg.json")
    with pytest.raises(ValueError, match="field chunk_size must be an integer, got '100'"):
        PolicyConfig.from_dict({"chunk_size": "100"})
    with pytest.raises(ValueError, match="field image_size must be a list of integers"):
        PolicyConfig.from_dict({"image_size": [240.0, 320.0]})
    assert PolicyConfig.from_dict({"lr": 1}).lr == 1.0


def test_invalid_sizes_are_refused_with_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        PolicyConfig(hidden_dim=30, nheads=4, chunk_size=0, camera_names=("a", "a"))
    message = str(info.value)
    for part in ("chunk_size must be >= 1", "divisible by nheads", "multiple of 4", "duplicates"):
        assert part in message
    with pytest.raises(ValueError, match="backbone_norm must be one of frozen_batch, group, got 'batch'"):
        PolicyConfig(backbone_norm="batch")
    with pytest.raises(ValueError, match="image_shift must be >= 0"):
        PolicyConfig(image_shift=-1)


def test_norm_stats_floor_round_trip_and_dict() -> None:
    rng = np.random.default_rng(0)
    qpos = rng.normal(size=(500, 14)).astype(np.float32)
    qpos[:, 3] = 0.25  # a joint that never moved
    action = rng.normal(2.0, 3.0, size=(500, 14)).astype(np.float32)
    stats = NormStats.from_arrays(qpos, action)
    assert stats.qpos_std[3] == pytest.approx(1e-2) and stats.qpos_std.dtype == np.float32
    assert stats.action_min.shape == (14,) and np.all(stats.action_min <= stats.action_max)

    normalized = stats.normalize_action(action)
    assert np.abs(normalized.mean(axis=0)).max() < 1e-3 and np.allclose(normalized.std(axis=0), 1, atol=1e-3)
    np.testing.assert_allclose(stats.unnormalize_action(normalized), action, atol=1e-4)
    t = torch.from_numpy(qpos)
    torch.testing.assert_close(stats.normalize_qpos(t), torch.from_numpy(stats.normalize_qpos(qpos)))
    torch.testing.assert_close(stats.unnormalize_qpos(stats.normalize_qpos(t)), t)

    again = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    for name in stats.to_dict():
        np.testing.assert_array_equal(getattr(again, name), getattr(stats, name))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['action_max'\]"):
        NormStats.from_dict({k: v for k, v in stats.to_dict().items() if k != "action_max"})
    with pytest.raises(ValueError, match="NaN or inf, first at rows \\[7\\]"):
        qpos[7, 0] = np.nan
        NormStats.from_arrays(qpos, action)
