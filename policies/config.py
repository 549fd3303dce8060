"""PolicyConfig: every size and training setting of a policy, saved with each checkpoint; presets by name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ALOHA_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
BACKBONES = ("resnet18", "convnet")
BACKBONE_NORMS = ("frozen_batch", "group")
# Training precision (tandem-train --precision). auto: bf16 autocast on GPUs that have it, fp32 elsewhere; bf16:
# autocast on the CPU too (faster where it has bf16 instructions, e.g. AVX-512 BF16 or AMX); fp32: never autocast.
# Weights, optimizer state and checkpoints are fp32 in every case.
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class PolicyConfig:
    """Defaults are the ACT paper's (the `paper` preset)."""

    policy: str = "act"  # a key of policies.registry.POLICIES
    chunk_size: int = 100  # actions predicted per inference
    hidden_dim: int = 512
    dim_feedforward: int = 3200
    enc_layers: int = 4  # observation encoder; the CVAE encoder has the same depth, as in the paper
    # All decoder layers are used and the last one's output is read. The original code read the first layer's
    # output only (the other six had no effect); set dec_layers=1 to reproduce that.
    dec_layers: int = 7
    nheads: int = 8
    latent_dim: int = 32  # CVAE latent ("style" variable z)
    dropout: float = 0.1
    pre_norm: bool = False  # post-norm, as DETR/ACT
    kl_weight: float = 10.0
    lr: float = 1e-5
    lr_backbone: float = 1e-5  # 0 freezes the ResNet (no gradients through its weights)
    weight_decay: float = 1e-4
    batch_size: int = 8
    camera_names: tuple[str, ...] = ALOHA_CAMERAS  # empty: the policy sees the joint state only
    image_size: tuple[int, int] = (480, 640)  # (H, W) images are resized to before the model sees them
    # The image encoder: "resnet18" (ACT's) or "convnet" (policies/convnet.py: five convolutions, the same feature
    # grid at an eighth of ResNet-18's arithmetic, no pretrained weights).
    backbone: str = "resnet18"
    # The backbone's normalization: "frozen_batch" (fixed statistics, as DETR/ACT, for ImageNet weights) or "group"
    # (GroupNorm, trained: a backbone trained from scratch with frozen batch norm has no normalization at all).
    backbone_norm: str = "frozen_batch"
    image_shift: int = 0  # training only: each image shifted by up to this many pixels (DrQ's random shift)
    state_dim: int = 14
    action_dim: int = 14
    # BC-ConvMLP only: per-camera features reduced to bc_channels x bc_grid cells, then an MLP.
    bc_channels: int = 32
    bc_grid: tuple[int, int] = (3, 4)
    bc_hidden: int = 1024
    bc_layers: int = 2  # hidden layers of the MLP

    def __post_init__(self) -> None:
        for name in ("camera_names", "image_size", "bc_grid"):  # lists from callers become tuples (hashable, ==)
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = _problems(self)
        if problems:
            raise ValueError("invalid policy config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: tuples become lists."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "policy config") -> PolicyConfig:
        """Fields not given take the defaults above; unknown fields are refused (likely a typo or a newer version)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}; known fields are: "
                             f"{', '.join(known)}")
        values = {name: _coerce(source, name, value, getattr(cls, name)) for name, value in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> PolicyConfig:
        return PolicyConfig.from_dict({**self.to_dict(), **changes}, source="config override")


def _problems(c: PolicyConfig) -> list[str]:
    problems = []
    for name in ("chunk_size", "hidden_dim", "dim_feedforward", "enc_layers", "dec_layers", "nheads", "latent_dim",
                 "batch_size", "state_dim", "action_dim", "bc_channels", "bc_hidden"):
        if getattr(c, name) < 1:
            problems.append(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.hidden_dim % c.nheads:
        problems.append(f"hidden_dim ({c.hidden_dim}) must be divisible by nheads ({c.nheads})")
    if c.hidden_dim % 4:
        problems.append(f"hidden_dim ({c.hidden_dim}) must be a multiple of 4 (2D sine positions: sin/cos for y and x)")
    if not 0.0 <= c.dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {c.dropout}")
    for name in ("kl_weight", "lr", "lr_backbone", "weight_decay"):
        if getattr(c, name) < 0:
            problems.append(f"{name} must be >= 0, got {getattr(c, name)}")
    if c.bc_layers < 0:
        problems.append(f"bc_layers must be >= 0, got {c.bc_layers}")
    if c.backbone not in BACKBONES:
        problems.append(f"backbone must be one of {', '.join(BACKBONES)}, got {c.backbone!r}")
    if c.backbone_norm not in BACKBONE_NORMS:
        problems.append(f"backbone_norm must be one of {', '.join(BACKBONE_NORMS)}, got {c.backbone_norm!r}")
    if c.image_shift < 0:
        problems.append(f"image_shift must be >= 0, got {c.image_shift}")
    if len(set(c.camera_names)) != len(c.camera_names):
        problems.append(f"camera_names has duplicates: {list(c.camera_names)}")
    for name in ("image_size", "bc_grid"):
        size = getattr(c, name)
        if len(size) != 2 or min(size) < 1:
            problems.append(f"{name} must be two positive ints (H, W), got {size}")
    # Both backbones downsample by 32: smaller images leave a 1x1 (or empty) feature map.
    if c.camera_names and min(c.image_size) < 32:
        problems.append(f"image_size {tuple(c.image_size)} is below 32 pixels on a side; the backbone needs at least "
                        "32")
    return problems


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _coerce(source: str, name: str, value: Any, default: Any) -> Any:
    """Type-check a JSON value against the field's default; lists become tuples."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"{source}: field {name} must be {expected}, got {value!r} ({type(value).__name__})")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise bad("a list")
        kind = str if name == "camera_names" else int
        if any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
            raise bad(f"a list of {'strings' if kind is str else 'integers'}")
        return tuple(value)
    raise AssertionError(f"no coercion for field {name}")


# Largest move over an action chunk, in rig units (rad; grippers 0..1), of a frame that counts as still (0.6
# degrees): the trainer can sample such frames less (policies.dataset.still_frames).
STILL_THRESHOLD = 0.01

PRESETS: dict[str, PolicyConfig] = {
    "paper": PolicyConfig(),
    # Trains on a 2-core CPU. 120x160 images leave each camera a 4x5 feature grid (80 image tokens for four
    # cameras) at 1/16 of the paper's ResNet cost; hidden 256 / ffn 1024 / 2+2 layers shrink the transformer
    # ~10x; chunk 50 is one second at 50 Hz. lr 1e-4: a smaller transformer from scratch takes a faster rate than
    # the paper's 1e-5; the (ImageNet) ResNet keeps 1e-5. Measured forward+backward+AdamW at batch 8, four cameras,
    # on a 2-core CPU: ~1.5 s/step (0.9 s with lr_backbone=0); the same at 240x320: ~5.5 s; paper: ~80-120 s.
    "small": PolicyConfig(chunk_size=50, hidden_dim=256, dim_feedforward=1024, enc_layers=2, dec_layers=2, nheads=8,
                          lr=1e-4, lr_backbone=1e-5, image_size=(120, 160), bc_hidden=512),
    # `small` on one camera, for training on a 2-core CPU without ImageNet weights. cam_high alone: ACT's simulated
    # transfer_cube used only the top camera, and the ResNet, run once per camera, is most of a step's cost. 120x160
    # keeps a 4x5 feature grid (96x128 leaves 3x4 to save ~15%). The ResNet starts from random weights, so it trains
    # at the transformer's lr, not the 1e-5 that suits ImageNet weights. Measured forward+backward+AdamW at batch 8
    # on a 2-core CPU: ~0.35 s/step on two idle cores (`small` ~0.9 s), ~0.65 s/step on one thread while other jobs
    # run (`small` ~1.9 s); inference 22-38 ms/chunk. 20k steps: 2-4 h. Not taken: batch 16 (fewer samples/s),
    # hidden 128 (saves ~20%), lr_backbone=0 (saves 20-45% but leaves the random ResNet as it is).
    "cpu": PolicyConfig(chunk_size=50, hidden_dim=256, dim_feedforward=1024, enc_layers=2, dec_layers=2, nheads=8,
                        lr=1e-4, lr_backbone=1e-4, camera_names=("cam_high",), image_size=(120, 160), bc_hidden=512),
    # For tests: one camera at 64x64, a ~0.2M-parameter transformer.
    "tiny": PolicyConfig(chunk_size=8, hidden_dim=64, dim_feedforward=128, enc_layers=1, dec_layers=1, nheads=2,
                         latent_dim=8, dropout=0.0, kl_weight=1.0, lr=1e-3, lr_backbone=1e-4, batch_size=4,
                         camera_names=("cam_high",), image_size=(64, 64), bc_channels=4, bc_grid=(1, 1),
                         bc_hidden=64),
}


def preset(name: str, **overrides: Any) -> PolicyConfig:
    """A preset with some fields changed, e.g. preset("small", chunk_size=20, camera_names=("cam_high",))."""
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; available presets: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
