"""A LeRobot-trained ACT checkpoint behind tandem's policy interface, so tandem-eval and tandem-deploy run it with
tandem's ensembling (temporal or chunked), async inference and takeover. LeRobot itself is imported only when such
a folder is loaded, and is needed only then.

What lerobot-train (LeRobot 0.4.4) saves in OUTPUT/checkpoints/<step>/pretrained_model/ (checkpoints/last links the
newest; <step>/training_state/training_step.json holds the step):
  config.json            ACTConfig with "type": "act": input/output features and their shapes, normalization_mapping,
                         sizes (dim_model, chunk_size, ...)
  model.safetensors      the weights of lerobot.policies.act.modeling_act.ACTPolicy
  policy_preprocessor.json, policy_preprocessor_step_<i>_normalizer_processor.safetensors
                         the input pipeline; its normalizer's statistics as "<feature>.<stat>" (mean, std, min, max,
                         q01 ...); the images' are ImageNet's unless trained with --dataset.use_imagenet_stats=false
  policy_postprocessor.json, policy_postprocessor_step_<i>_unnormalizer_processor.safetensors   the actions' side
  train_config.json      the run's settings, among them the dataset's repo_id and root

Names: observation.state is tandem's qpos, observation.images.<cam> the rig's camera <cam> (tandem-export keeps the
rig's names; --camera-map feeds others, e.g. top=cam_high), action the action. Other inputs of a tandem export
(observation.velocity, observation.effort) are listed in the config, but ACT reads only the state and the images.

Normalization: each of LeRobot's modes is (x - centre) / scale per entry, so the state's and the action's
statistics become tandem's NormStats, with which ChunkPredictor normalizes the joint state and un-normalizes the
chunk as for tandem's own policies; the cameras' statistics are applied in predict() to tandem's 0..1 images.

One whole chunk per observation (ACTPolicy.predict_action_chunk) goes to tandem's ensembler; LeRobot's own action
queue (n_action_steps) and temporal ensembler are not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor, nn

from policies.base import check_inputs
from policies.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, check_neutral_output
from policies.config import PolicyConfig
from policies.normalize import NormStats
from recording.layout import joint_layout

POLICY_NAME = "lerobot_act"  # config.policy and meta.policy of a checkpoint loaded here
LEROBOT = "lerobot==0.4.4"
STATE, ACTION, IMAGES, ENV_STATE = "observation.state", "action", "observation.images.", "observation.environment_state"
CONFIG, MODEL = "config.json", "model.safetensors"
PREPROCESSOR, POSTPROCESSOR = "policy_preprocessor.json", "policy_postprocessor.json"
# LeRobot's bounded modes map [low, high] to [-1, 1]
BOUNDS = {"MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90")}
# tandem PolicyConfig field <- ACTConfig field, to describe the model (tandem never builds it)
DESCRIBED = {"hidden_dim": "dim_model", "dim_feedforward": "dim_feedforward", "enc_layers": "n_encoder_layers",
             "dec_layers": "n_decoder_layers", "nheads": "n_heads", "latent_dim": "latent_dim", "dropout": "dropout",
             "pre_norm": "pre_norm", "kl_weight": "kl_weight", "lr": "optimizer_lr",
             "lr_backbone": "optimizer_lr_backbone", "weight_decay": "optimizer_weight_decay"}


def lerobot_model_dir(directory: str | Path) -> tuple[Path, str | None]:
    """The pretrained_model folder that `directory` stands for and a note when it is not `directory` itself:
    lerobot-train's output folder stands for checkpoints/last/pretrained_model, a checkpoint step for its own."""
    path = Path(directory)
    for inner in ("", "pretrained_model", "checkpoints/last/pretrained_model"):
        if _config_type(path / inner) is None:
            continue
        if not inner:
            return path, None
        folder = (path / inner).resolve()  # checkpoints/last is a link: name the step it points to
        return folder, f"{path} is a LeRobot run: using {folder}"
    return path, None


def lerobot_policy_type(directory: str | Path) -> str | None:
    """LeRobot's policy type ("act", "diffusion" ...) where `directory` is a LeRobot policy folder (its config.json
    has a "type"; tandem's has none), else None."""
    return _config_type(lerobot_model_dir(directory)[0])


@dataclass(frozen=True)
class LeRobotSpec:
    """What tandem needs from a LeRobot ACT folder, read from its JSON and statistics files (no LeRobot import)."""
    config: PolicyConfig
    stats: NormStats
    meta: CheckpointMeta
    image_keys: tuple[str, ...]  # observation.images.<cam>, in config.camera_names order
    image_centre: np.ndarray  # (n_cams, 3, 1, 1)
    image_scale: np.ndarray


class LeRobotACT(nn.Module):
    """LeRobot's ACTPolicy with tandem's predict(): normalized state and 0..1 images in, a normalized chunk out."""

    backbone = None  # trained by lerobot-train, never by tandem

    def __init__(self, policy: nn.Module, spec: LeRobotSpec) -> None:
        super().__init__()
        self.lerobot = policy
        self.config = spec.config
        self.image_keys = spec.image_keys
        self.register_buffer("image_centre", torch.as_tensor(spec.image_centre), persistent=False)
        self.register_buffer("image_scale", torch.as_tensor(spec.image_scale), persistent=False)

    @torch.no_grad()
    def predict(self, qpos: Tensor, images: Tensor | None = None) -> Tensor:
        """(B, chunk_size, action_dim) normalized actions: the model's whole chunk, no action queue."""
        images = check_inputs(self.config, qpos, images)
        batch = {STATE: qpos}
        if images is not None:
            images = (images - self.image_centre) / self.image_scale
            batch.update({key: images[:, i] for i, key in enumerate(self.image_keys)})
        return self.lerobot.predict_action_chunk(batch)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError("a LeRobot ACT checkpoint is trained with lerobot-train; tandem only runs it")

    def param_groups(self) -> list[dict]:
        raise NotImplementedError("a LeRobot ACT checkpoint is trained with lerobot-train; tandem only runs it")


def load_lerobot_act(directory: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """The checkpoint as tandem's Checkpoint: its policy is LeRobot's ACTPolicy, built by LeRobot's own classes."""
    folder, note = lerobot_model_dir(directory)
    spec = read_lerobot_act(folder)
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
    except ImportError as exc:
        raise CheckpointError(
            f"{folder} is a LeRobot ACT checkpoint; running it needs LeRobot, which does not import here ({exc}). "
            f"In a Python 3.11 environment: pip install {LEROBOT}, then install tandem there without replacing "
            "LeRobot's torch (pip install -e <tandem> --no-deps, then the requirements of tandem it lacks; "
            "bench/interop.py's ensure_venv(VENV, with_tandem=True) does both) and run tandem-eval or tandem-deploy "
            "from that environment") from exc
    try:
        config = PreTrainedConfig.from_pretrained(str(folder))
        config.device = str(device)
        config.pretrained_backbone_weights = None  # the weights come from model.safetensors: nothing to download
        policy = ACTPolicy(config)
        safetensors.torch.load_model(policy, str(folder / MODEL), strict=True, device=str(device))
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"LeRobot could not load its ACT checkpoint {folder}: {exc}") from exc
    checkpoint = Checkpoint(folder, LeRobotACT(policy, spec).to(device).eval(), spec.config, spec.stats, spec.meta,
                            note)
    check_neutral_output(checkpoint, device)
    return checkpoint


def read_lerobot_act(folder: Path) -> LeRobotSpec:
    """Cameras, sizes, names and statistics of a LeRobot ACT pretrained_model folder, in tandem's terms."""
    config_path = folder / CONFIG
    c = _read_json(config_path)
    if c.get("type") != "act":
        raise CheckpointError(f"{folder} is a LeRobot {c.get('type')!r} policy; tandem runs LeRobot's ACT "
                              "(type act) only")
    inputs, outputs = c.get("input_features"), c.get("output_features")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise CheckpointError(f"{config_path}: input_features and output_features must be objects of features")
    if ENV_STATE in inputs:
        raise CheckpointError(f"{config_path}: the policy reads {ENV_STATE}, which a rig does not measure")
    state_dim = _vector_size(config_path, inputs, STATE, "STATE")
    action_dim = _vector_size(config_path, outputs, ACTION, "ACTION")
    images = {key: feature for key, feature in inputs.items() if _type(feature) == "VISUAL"}
    shapes = {tuple(feature.get("shape") or ()) for feature in images.values()}
    if len(shapes) > 1 or any(len(shape) != 3 or shape[0] != 3 for shape in shapes):
        raise CheckpointError(f"{config_path}: the camera features {', '.join(images)} must all be (3, H, W), got "
                              f"{sorted(shapes)}")
    cameras = tuple(key.removeprefix(IMAGES) if key.startswith(IMAGES) else key.removeprefix("observation.")
                    for key in images)
    image_size = tuple(int(n) for n in shapes.pop()[1:]) if shapes else (480, 640)
    chunk = c.get("chunk_size")
    if isinstance(chunk, bool) or not isinstance(chunk, int):
        raise CheckpointError(f"{config_path}: chunk_size must be an integer, got {chunk!r}")
    described = {ours: c[theirs] for ours, theirs in DESCRIBED.items() if theirs in c}
    try:
        config = PolicyConfig.from_dict({**described, "policy": POLICY_NAME, "chunk_size": chunk,
                                         "camera_names": list(cameras), "image_size": list(image_size),
                                         "state_dim": state_dim, "action_dim": action_dim}, source=str(config_path))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc

    modes = {str(k): str(v) for k, v in (c.get("normalization_mapping") or {}).items()}
    pre = _normalizer(folder, PREPROCESSOR, "normalizer_processor", modes)
    post = _normalizer(folder, POSTPROCESSOR, "unnormalizer_processor", modes)
    q_centre, q_divide, _, q_low, q_high = _affine(pre, STATE, "STATE", (state_dim,))
    a_centre, _, a_multiply, a_low, a_high = _affine(post, ACTION, "ACTION", (action_dim,))
    try:
        stats = NormStats(qpos_mean=q_centre, qpos_std=q_divide, qpos_min=q_low, qpos_max=q_high,
                          action_mean=a_centre, action_std=a_multiply, action_min=a_low, action_max=a_high)
    except ValueError as exc:
        raise CheckpointError(f"{folder}: the statistics in its processor files do not fit: {exc}") from exc
    per_camera = [_affine(pre, key, "VISUAL", (3, 1, 1)) for key in images]
    centre = np.stack([p[0] for p in per_camera]) if per_camera else np.zeros((0, 3, 1, 1), np.float32)
    scale = np.stack([p[1] for p in per_camera]) if per_camera else np.ones((0, 3, 1, 1), np.float32)

    train = _read_json(folder / "train_config.json") if (folder / "train_config.json").is_file() else {}
    dataset = train.get("dataset") if isinstance(train.get("dataset"), dict) else {}
    names = _dataset_names(dataset.get("root"))
    state_names = names.get(STATE) or joint_layout(state_dim)
    action_names = names.get(ACTION) or joint_layout(action_dim)
    if len(state_names) != state_dim or len(action_names) != action_dim:
        state_names, action_names = joint_layout(state_dim), joint_layout(action_dim)
    lerobot = {"type": "act", "dataset": dataset.get("repo_id"), "dataset_root": dataset.get("root"),
               "n_action_steps": c.get("n_action_steps"), "normalization_mapping": modes,
               "pretrained_backbone_weights": c.get("pretrained_backbone_weights")}
    extra: dict[str, Any] = {"lerobot": lerobot}
    start = _start_qpos(dataset.get("root"), state_dim)
    if start is not None:  # tandem-deploy brings the followers there first, as for its own checkpoints
        extra["start_qpos"] = start
    meta = CheckpointMeta(policy=POLICY_NAME, camera_names=cameras, image_size=image_size,
                          state_names=tuple(state_names), action_names=tuple(action_names),
                          dataset_digest="", step=_step(folder), extra=extra)
    return LeRobotSpec(config, stats, meta, tuple(images), centre.astype(np.float32), scale.astype(np.float32))


# -- the files ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Normalizer:
    source: str  # the statistics file, for messages
    modes: dict[str, str]  # feature type -> mode
    eps: float
    stats: dict[str, dict[str, np.ndarray]]  # feature -> stat -> values
    types: dict[str, str]  # feature -> feature type


def _normalizer(folder: Path, pipeline: str, registry_name: str, modes: dict[str, str]) -> _Normalizer:
    """The statistics of a processor pipeline's (un)normalizer step, with its modes and eps."""
    path = folder / pipeline
    steps = _read_json(path).get("steps")
    step = next((s for s in steps or [] if isinstance(s, dict) and s.get("registry_name") == registry_name), None)
    if step is None:
        raise CheckpointError(f"{path} has no {registry_name} step: the statistics are not saved with this "
                              f"checkpoint (LeRobot 0.4 writes them there; older checkpoints keep them in "
                              "model.safetensors, which tandem does not read: save it again with LeRobot 0.4)")
    config = step.get("config") or {}
    state_file = folder / str(step.get("state_file", ""))
    try:
        flat = safetensors.torch.load_file(str(state_file))
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise CheckpointError(f"could not read the statistics {state_file} named by {path}: {exc}") from exc
    stats: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in flat.items():
        feature, stat = name.rsplit(".", 1)
        stats.setdefault(feature, {})[stat] = tensor.double().numpy()
    types = {key: _type(feature) for key, feature in (config.get("features") or {}).items()}
    step_modes = {str(k): str(v) for k, v in (config.get("norm_map") or {}).items()}  # the step's own win
    return _Normalizer(str(state_file), {**modes, **step_modes}, float(config.get("eps", 1e-8)), stats, types)


def _affine(n: _Normalizer, key: str, kind: str, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """LeRobot's formula for `key` as centre, divisor (normalizing), multiplier (un-normalizing), low, high."""
    mode = n.modes.get(n.types.get(key, kind), "IDENTITY")
    stats = n.stats.get(key)
    if mode == "IDENTITY" or stats is None:  # LeRobot passes a feature without statistics through unchanged
        centre, divide, multiply = np.zeros(shape), np.ones(shape), np.ones(shape)
    elif mode == "MEAN_STD":
        centre, std = _stat(n, key, stats, "mean", shape), _stat(n, key, stats, "std", shape)
        divide, multiply = std + n.eps, np.where(std > 0, std, n.eps)
    elif mode in BOUNDS:
        low, high = (_stat(n, key, stats, name, shape) for name in BOUNDS[mode])
        span = np.where(high - low == 0, n.eps, high - low)
        centre, divide = low + span / 2, span / 2
        multiply = divide
    else:
        raise CheckpointError(f"{n.source}: normalization mode {mode!r} of {key} is not one tandem knows "
                              f"(IDENTITY, MEAN_STD, {', '.join(BOUNDS)})")
    low = stats["min"] if stats and "min" in stats else centre - multiply
    high = stats["max"] if stats and "max" in stats else centre + multiply
    return tuple(np.asarray(a, dtype=np.float32).reshape(shape) for a in (centre, divide, multiply, low, high))


def _stat(n: _Normalizer, key: str, stats: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in stats:
        raise CheckpointError(f"{n.source}: {key} is normalized with {name}, which the file does not hold")
    value = stats[name]
    if value.size != int(np.prod(shape)) or not np.all(np.isfinite(value)):
        raise CheckpointError(f"{n.source}: {key}.{name} must be {shape} finite values, got {value.tolist()}")
    return value.reshape(shape)


def _vector_size(source: Path, features: dict, key: str, kind: str) -> int:
    feature = features.get(key)
    shape = feature.get("shape") if isinstance(feature, dict) else None
    if _type(feature) != kind or not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int):
        raise CheckpointError(f"{source}: tandem runs a policy on the joint state and gives it joint targets, so it "
                              f"needs a {kind} feature {key!r} of shape [N]; got {feature!r}")
    return shape[0]


def _type(feature: Any) -> str:
    return str(feature.get("type")) if isinstance(feature, dict) else ""


def _dataset_names(root: Any) -> dict[str, list[str]]:
    """The state's and action's entry names from the training dataset's meta/info.json, where it is on this disk."""
    info = Path(str(root)) / "meta" / "info.json" if root else None
    try:
        features = json.loads(info.read_text()).get("features", {}) if info and info.is_file() else {}
    except (OSError, ValueError):
        return {}
    names = {}
    for key in (STATE, ACTION):
        value = (features.get(key) or {}).get("names")
        if isinstance(value, dict) and len(value) == 1:  # {"motors": [...]}, as in lerobot/aloha_sim_*
            value = next(iter(value.values()))
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            names[key] = value
    return names


def _start_qpos(root: Any, state_dim: int) -> list[float] | None:
    """The training episodes' average first state, where the dataset is on this disk (else None: no ramp)."""
    files = sorted((Path(str(root)) / "data").glob("*/*.parquet")) if root else []
    firsts = []
    try:
        import pyarrow.parquet as pq

        for f in files:
            table = pq.read_table(f, columns=["frame_index", STATE]).to_pydict()
            firsts += [row for index, row in zip(table["frame_index"], table[STATE], strict=True) if index == 0]
    except (OSError, ValueError, KeyError):  # pyarrow's errors derive from these
        return None
    start = np.mean(np.asarray(firsts, dtype=np.float64), axis=0) if firsts else None
    return start.round(5).tolist() if start is not None and start.shape == (state_dim,) else None


def _step(folder: Path) -> int:
    path = folder.parent / "training_state" / "training_step.json"
    try:
        return int(json.loads(path.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _config_type(folder: Path) -> str | None:
    try:
        data = json.loads((folder / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"could not read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data
