"""What every policy shares: the interface the trainer and runner use, input checks, image normalization, loss.

Batch layout (all policies):
  qpos    (B, state_dim)          float, normalized (policies.normalize)
  images  (B, n_cams, 3, H, W)    float in 0..1, cameras in config.camera_names order, (H, W) = config.image_size;
                                  absent or n_cams = 0 for a state-only policy
  action  (B, chunk, action_dim)  float, normalized
  is_pad  (B, chunk)              bool, True where the episode ended before the chunk did
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from policies.config import PolicyConfig

# ImageNet statistics the ResNet weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class Policy(Protocol):
    config: PolicyConfig
    backbone: nn.Module | None

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]: ...

    def predict(self, qpos: Tensor, images: Tensor | None) -> Tensor: ...

    def param_groups(self) -> list[dict]: ...


class ImageNormalizer(nn.Module):
    """0..1 images -> ImageNet-normalized; the constants are not saved (non-persistent buffers)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


def random_shift(images: Tensor, pixels: int) -> Tensor:
    """DrQ's augmentation, (..., 3, H, W) -> same shape: each image padded by repeating its border, then cropped
    back at a random offset of up to `pixels` each way."""
    if pixels <= 0:
        return images
    flat = images.reshape(-1, *images.shape[-3:])
    h, w = flat.shape[-2:]
    padded = nn.functional.pad(flat, (pixels,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * pixels + 1, (flat.shape[0], 2)).tolist()
    shifted = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    return shifted.reshape(images.shape)


def check_inputs(config: PolicyConfig, qpos: Tensor, images: Tensor | None) -> Tensor | None:
    """Raise a ValueError saying what is wrong with the inputs; returns images, None for a state-only policy."""
    if qpos.ndim != 2 or qpos.shape[1] != config.state_dim:
        raise ValueError(f"qpos must be (batch, {config.state_dim}), got {tuple(qpos.shape)}")
    n_cams = len(config.camera_names)
    if n_cams == 0:
        if images is not None and images.numel() and images.shape[1] != 0:
            raise ValueError(f"this policy uses no cameras but got images of shape {tuple(images.shape)}")
        return None
    h, w = config.image_size
    expected = (qpos.shape[0], n_cams, 3, h, w)
    cameras = f"[{', '.join(config.camera_names)}]"
    if images is None:
        raise ValueError(f"this policy needs images {expected} from cameras {cameras}; got none")
    if tuple(images.shape) != expected:
        raise ValueError(f"images must be (batch, cameras, 3, H, W) = {expected} (cameras "
                         f"{cameras}, resized to {h}x{w}); got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in 0..1, got {images.dtype}: divide uint8 frames by 255")
    return images


def check_targets(config: PolicyConfig, action: Tensor, is_pad: Tensor, batch_size: int) -> None:
    expected = (batch_size, config.chunk_size, config.action_dim)
    if tuple(action.shape) != expected:
        raise ValueError(f"action must be (batch, chunk_size, action_dim) = {expected}, got {tuple(action.shape)}")
    if tuple(is_pad.shape) != expected[:2] or is_pad.dtype != torch.bool:
        raise ValueError(f"is_pad must be bool {expected[:2]}, got {is_pad.dtype} {tuple(is_pad.shape)}")


def masked_l1(pred: Tensor, target: Tensor, is_pad: Tensor) -> Tensor:
    """Mean absolute error over the steps that are not padding (padded targets have no influence)."""
    valid = (~is_pad).unsqueeze(-1).to(pred.dtype)
    count = valid.sum() * pred.shape[-1]
    return ((pred - target).abs() * valid).sum() / count.clamp(min=1.0)


def split_param_groups(model: nn.Module, backbone: nn.Module | None, config: PolicyConfig) -> list[dict]:
    """AdamW groups: the backbone at config.lr_backbone, everything else at config.lr; frozen params left out."""
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    groups = [{"params": rest, "lr": config.lr, "weight_decay": config.weight_decay}]
    trainable_backbone = [p for p in backbone.parameters() if p.requires_grad] if backbone is not None else []
    if trainable_backbone:
        groups.append({"params": trainable_backbone, "lr": config.lr_backbone, "weight_decay": config.weight_decay})
    return groups


def freeze_if_unused(backbone: nn.Module | None, config: PolicyConfig) -> None:
    """lr_backbone = 0 means a fixed backbone: no gradients are computed for it at all."""
    if backbone is not None and config.lr_backbone == 0:
        backbone.requires_grad_(False)
