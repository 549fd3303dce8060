"""A LeRobot-trained ACT checkpoint in tandem: detecting its folder, its features and statistics in tandem's terms,
the error without LeRobot; and, where LeRobot imports, the adapter's chunk against LeRobot's own pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow
import pyarrow.parquet
import pytest
import safetensors.torch
import torch

from policies.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from policies.config import preset
from policies.lerobot_act import lerobot_model_dir, lerobot_policy_type, read_lerobot_act
from policies.normalize import NormStats
from policies.registry import make_policy
from recording.layout import joint_layout

EPS = 1e-8
RNG = np.random.default_rng(0)
STATE_MEAN, STATE_STD = RNG.normal(size=14), RNG.uniform(0.05, 0.5, size=14)
ACTION_MIN = RNG.uniform(-1.0, 0.0, size=14)
ACTION_MAX = ACTION_MIN + RNG.uniform(0.1, 1.0, size=14)
ACTION_MAX[3] = ACTION_MIN[3]  # a joint that never moved: LeRobot divides by eps there
IMAGE_MEAN, IMAGE_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def features(cameras: dict[str, tuple[int, int]], state: int = 14) -> dict:
    inputs = {"observation.state": {"type": "STATE", "shape": [state]},
              "observation.velocity": {"type": "STATE", "shape": [state]}}  # a tandem export's: ACT ignores it
    inputs.update({f"observation.images.{cam}": {"type": "VISUAL", "shape": [3, h, w]}
                   for cam, (h, w) in cameras.items()})
    return inputs


def write_lerobot_folder(folder: Path, *, cameras: dict[str, tuple[int, int]] | None = None,
                         modes: dict[str, str] | None = None, **config: object) -> Path:
    """A pretrained_model folder laid out as lerobot-train 0.4.4 writes it (no weights: nothing here runs it)."""
    cameras = {"cam_high": (96, 128)} if cameras is None else cameras
    modes = modes or {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MIN_MAX"}
    inputs, outputs = features(cameras), {"action": {"type": "ACTION", "shape": [14]}}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "type": "act", "n_obs_steps": 1, "input_features": inputs, "output_features": outputs, "device": "cpu",
        "chunk_size": 50, "n_action_steps": 50, "normalization_mapping": modes, "vision_backbone": "resnet18",
        "pretrained_backbone_weights": "ResNet18_Weights.IMAGENET1K_V1", "pre_norm": False, "dim_model": 512,
        "n_heads": 8, "dim_feedforward": 3200, "n_encoder_layers": 4, "n_decoder_layers": 1, "latent_dim": 32,
        "dropout": 0.1, "kl_weight": 10.0, "optimizer_lr": 1e-05, "optimizer_weight_decay": 0.0001,
        "optimizer_lr_backbone": 1e-05, **config}, indent=4))
    stats = {"observation.state.mean": STATE_MEAN, "observation.state.std": STATE_STD,
             "observation.state.min": STATE_MEAN - 1, "observation.state.max": STATE_MEAN + 1,
             "observation.velocity.mean": np.zeros(14), "observation.velocity.std": np.ones(14),
             "action.min": ACTION_MIN, "action.max": ACTION_MAX,
             "action.mean": (ACTION_MIN + ACTION_MAX) / 2, "action.std": np.ones(14)}
    for cam in cameras:
        stats[f"observation.images.{cam}.mean"] = IMAGE_MEAN.reshape(3, 1, 1)
        stats[f"observation.images.{cam}.std"] = IMAGE_STD.reshape(3, 1, 1)
    tensors = {name: torch.as_tensor(value, dtype=torch.float32) for name, value in stats.items()}
    for pipeline, step, index, keys in (("policy_preprocessor", "normalizer_processor", 3, {**inputs, **outputs}),
                                        ("policy_postprocessor", "unnormalizer_processor", 0, outputs)):
        state_file = f"{pipeline}_step_{index}_{step}.safetensors"
        safetensors.torch.save_file(tensors, str(folder / state_file))
        steps = [{"registry_name": "device_processor", "config": {"device": "cpu"}}]
        steps.insert(0 if index == 0 else 1, {"registry_name": step, "config": {
            "eps": EPS, "features": keys, "norm_map": modes}, "state_file": state_file})
        (folder / f"{pipeline}.json").write_text(json.dumps({"name": pipeline, "steps": steps}))
    return folder


def lerobot_run(root: Path, step: int = 20) -> Path:
    """lerobot-train's output folder: checkpoints/<step>/pretrained_model and training_state, checkpoints/last."""
    model = write_lerobot_folder(root / "checkpoints" / f"{step:06d}" / "pretrained_model")
    state = model.parent / "training_state"
    state.mkdir()
    (state / "training_step.json").write_text(json.dumps({"step": step}))
    (root / "checkpoints" / "last").symlink_to(f"{step:06d}")
    return model


def test_lerobot_folders_are_told_from_tandem_checkpoints(tmp_path):
    model = lerobot_run(tmp_path / "run")
    assert lerobot_policy_type(model) == "act"
    assert lerobot_model_dir(model) == (model, None)
    for given in (tmp_path / "run", model.parent):  # the run folder, a checkpoint step
        folder, note = lerobot_model_dir(given)
        assert folder == model.resolve() and str(model.resolve()) in note
        assert lerobot_policy_type(given) == "act"

    config = preset("tiny")
    ours = save_checkpoint(tmp_path / "tandem", make_policy(config), config,
                           NormStats.from_arrays(RNG.normal(size=(20, 14)), RNG.normal(size=(20, 14))),
                           step=1, dataset_digest="x")
    assert lerobot_policy_type(ours) is None
    assert load_checkpoint(ours).config.policy == "act"  # tandem's own load path is untouched
    for other in (tmp_path / "missing", tmp_path):
        assert lerobot_policy_type(other) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert lerobot_policy_type(tmp_path / "broken") is None


def test_features_and_sizes_map_to_tandem_names(tmp_path):
    root = tmp_path / "export"  # the training dataset's info.json names the state's entries
    (root / "meta").mkdir(parents=True)
    names = [f"arm_{i}" for i in range(14)]
    (root / "meta" / "info.json").write_text(json.dumps({"features": {
        "observation.state": {"names": {"motors": names}}, "action": {"names": names}}}))
    (root / "data" / "chunk-000").mkdir(parents=True)  # two episodes' rows: their first states are averaged
    rows = {"frame_index": [0, 1, 2, 0, 1], "observation.state": [[float(i)] * 14 for i in (1, 5, 5, 3, 5)]}
    pyarrow.parquet.write_table(pyarrow.table(rows), root / "data" / "chunk-000" / "file-000.parquet")
    model = lerobot_run(tmp_path / "run", step=300)
    (model / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/cube", "root": str(root)}}))

    spec = read_lerobot_act(model)
    assert spec.config.policy == spec.meta.policy == "lerobot_act"
    assert spec.meta.camera_names == spec.config.camera_names == ("cam_high",)
    assert spec.image_keys == ("observation.images.cam_high",)
    assert spec.meta.image_size == spec.config.image_size == (96, 128)
    assert spec.config.chunk_size == 50 and (spec.config.state_dim, spec.config.action_dim) == (14, 14)
    assert (spec.config.hidden_dim, spec.config.dim_feedforward, spec.config.enc_layers, spec.config.dec_layers,
            spec.config.nheads, spec.config.lr) == (512, 3200, 4, 1, 8, 1e-5)
    assert spec.meta.state_names == spec.meta.action_names == tuple(names)
    assert spec.meta.step == 300 and spec.meta.extra["lerobot"]["dataset"] == "me/cube"
    assert spec.meta.extra["start_qpos"] == [2.0] * 14  # where tandem-deploy brings the followers first

    (root / "meta" / "info.json").unlink()  # the dataset is not on this disk: ALOHA's names for 14 entries
    two = write_lerobot_folder(tmp_path / "two", cameras={"top": (480, 640), "angle": (480, 640)})
    spec = read_lerobot_act(two)
    assert spec.meta.camera_names == ("top", "angle") and spec.meta.image_size == (480, 640)
    assert spec.meta.state_names == joint_layout(14) and spec.meta.step == 0
    assert "start_qpos" not in spec.meta.extra  # no dataset on this disk: no start pose, no ramp
    check_compatible(spec.meta, ["top", "angle", "cam_low"], 14, 14)
    with pytest.raises(CheckpointError, match="missing: top, angle"):
        check_compatible(spec.meta, ["cam_high"], 14, 14)


def test_statistics_follow_lerobot_formulas(tmp_path):
    """State MEAN_STD, action MIN_MAX (one joint with max == min), images MEAN_STD: LeRobot's formulas, written out."""
    spec = read_lerobot_act(write_lerobot_folder(tmp_path / "model"))
    x = RNG.normal(size=(5, 14))
    np.testing.assert_allclose(spec.stats.normalize_qpos(x), (x - STATE_MEAN) / (STATE_STD + EPS), rtol=1e-5)
    n = RNG.uniform(-1, 1, size=(5, 14))
    span = np.where(ACTION_MAX == ACTION_MIN, EPS, ACTION_MAX - ACTION_MIN)
    np.testing.assert_allclose(spec.stats.unnormalize_action(n), (n + 1) / 2 * span + ACTION_MIN, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(spec.image_centre[0].ravel(), IMAGE_MEAN, rtol=1e-6)
    np.testing.assert_allclose(spec.image_scale[0].ravel(), IMAGE_STD + EPS, rtol=1e-6)

    spec = read_lerobot_act(write_lerobot_folder(tmp_path / "identity", modes={"ACTION": "MEAN_STD"}))
    np.testing.assert_allclose(spec.stats.normalize_qpos(x), x, rtol=1e-6)  # no STATE mode: passed through
    np.testing.assert_allclose(spec.image_scale, 1.0)


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "diffusion"}, "LeRobot 'diffusion' policy; tandem runs LeRobot's ACT"),
    ({"input_features": {"observation.environment_state": {"type": "ENV", "shape": [4]}}},
     "observation.environment_state, which a rig does not measure"),
    ({"input_features": {"observation.images.top": {"type": "VISUAL", "shape": [3, 64, 64]}}},
     "needs a STATE feature 'observation.state'"),
    ({"chunk_size": "50"}, "chunk_size must be an integer"),
    ({"normalization_mapping": {"STATE": "LOG"}}, "normalization mode 'LOG' of observation.state"),
])
def test_checkpoints_tandem_cannot_run_are_refused_by_name(tmp_path, change, message):
    folder = write_lerobot_folder(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    if "normalization_mapping" in change:  # the processors' own map wins: change it there
        for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
            pipeline = json.loads((folder / name).read_text())
            for step in pipeline["steps"]:
                step.get("config", {}).pop("norm_map", None)
            (folder / name).write_text(json.dumps(pipeline))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_statistics_left_out_of_the_processors_are_refused(tmp_path):
    folder = write_lerobot_folder(tmp_path / "model")
    (folder / "policy_preprocessor.json").write_text(json.dumps({"name": "policy_preprocessor", "steps": []}))
    with pytest.raises(CheckpointError, match="no normalizer_processor step"):
        load_checkpoint(folder)


def test_without_lerobot_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "lerobot" or m.startswith("lerobot.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lerobot", None)  # import lerobot raises ImportError
    run = tmp_path / "run"
    lerobot_run(run)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(run)
    text = str(caught.value)
    assert "is a LeRobot ACT checkpoint" in text and "pip install lerobot==0.4.4" in text
    assert "Python 3.11" in text and "install tandem there" in text


# -- where LeRobot is installed (its environment from bench/interop.py's ensure_venv(..., with_tandem=True)) ------
def test_the_adapter_gives_lerobots_own_chunk(tmp_path):
    """A seeded tiny LeRobot ACT saved by LeRobot (weights and processors); tandem's ChunkPredictor on the loaded
    checkpoint must give the chunk LeRobot's preprocessor -> predict_action_chunk -> postprocessor gives."""
    pytest.importorskip("lerobot")
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.act.processor_act import make_act_pre_post_processors

    from deploy.inference import ChunkPredictor, Observation

    torch.manual_seed(0)
    h, w = 64, 80
    config = ACTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (14,)),
                        "observation.images.cam_high": PolicyFeature(FeatureType.VISUAL, (3, h, w))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (14,))},
        normalization_mapping={"VISUAL": NormalizationMode.MEAN_STD, "STATE": NormalizationMode.MIN_MAX,
                               "ACTION": NormalizationMode.MEAN_STD},
        chunk_size=10, n_action_steps=10, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
        n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8, pretrained_backbone_weights=None, device="cpu")
    stats = {"observation.state": {"min": STATE_MEAN - 1, "max": STATE_MEAN + 1, "mean": STATE_MEAN,
                                   "std": STATE_STD},
             "observation.images.cam_high": {"mean": IMAGE_MEAN.reshape(3, 1, 1), "std": IMAGE_STD.reshape(3, 1, 1)},
             "action": {"mean": (ACTION_MIN + ACTION_MAX) / 2, "std": ACTION_MAX - ACTION_MIN + 0.1,
                        "min": ACTION_MIN, "max": ACTION_MAX}}
    policy = ACTPolicy(config).eval()
    preprocessor, postprocessor = make_act_pre_post_processors(config, stats)
    folder = tmp_path / "pretrained_model"
    for part in (policy, preprocessor, postprocessor):
        part.save_pretrained(folder)

    checkpoint = load_checkpoint(folder)
    assert checkpoint.meta.camera_names == ("cam_high",) and checkpoint.config.chunk_size == 10
    predictor = ChunkPredictor(checkpoint)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        qpos = (STATE_MEAN + rng.uniform(-1, 1, size=14)).astype(np.float32)
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ours = predictor(Observation(0, qpos, image[None]))
        batch = preprocessor({"observation.state": torch.as_tensor(qpos),
                              "observation.images.cam_high": torch.as_tensor(image).permute(2, 0, 1) / 255.0})
        theirs = postprocessor(policy.predict_action_chunk(batch))[0].numpy()
        assert ours.shape == (10, 14)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    with pytest.raises(NotImplementedError, match="lerobot-train"):
        checkpoint.policy.param_groups()
