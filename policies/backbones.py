"""The image encoders a policy can use and their normalizations, by the names PolicyConfig gives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from policies.config import BACKBONE_NORMS, BACKBONES, PolicyConfig
from policies.convnet import ConvNet
from policies.resnet import FrozenBatchNorm2d, NormLayer, ResNet18, resnet18_backbone


@dataclass(frozen=True)
class NormKind:
    layer: NormLayer
    batch_statistics: bool  # it holds batch-norm statistics, which ImageNet weights bring


@dataclass(frozen=True)
class BackboneKind:
    build: Callable[[NormLayer], ResNet18 | ConvNet]  # a module with `channels`, output stride 32
    imagenet_weights: bool  # torchvision's ResNet-18 ImageNet weights fit it (--pretrained-backbone)


NORM_KINDS = {
    "frozen_batch": NormKind(FrozenBatchNorm2d, batch_statistics=True),
    # GroupNorm, 16 channels per group, trained from scratch as robomimic and Diffusion Policy do: batches of 8
    # are too small for batch statistics.
    "group": NormKind(lambda channels: nn.GroupNorm(channels // 16, channels), batch_statistics=False),
}
BACKBONE_KINDS = {
    "resnet18": BackboneKind(resnet18_backbone, imagenet_weights=True),
    "convnet": BackboneKind(ConvNet, imagenet_weights=False),
}
assert tuple(NORM_KINDS) == BACKBONE_NORMS and tuple(BACKBONE_KINDS) == BACKBONES  # the names config.py validates


def image_backbone(config: PolicyConfig) -> ResNet18 | ConvNet:
    """The image encoder config.backbone names, normalized as config.backbone_norm says."""
    return BACKBONE_KINDS[config.backbone].build(NORM_KINDS[config.backbone_norm].layer)


def imagenet_weights_problem(config: PolicyConfig) -> str | None:
    """Why torchvision's ResNet-18 ImageNet weights cannot start this config's backbone, or None when they can."""
    if not BACKBONE_KINDS[config.backbone].imagenet_weights:
        return f"the weights are ResNet-18's, but the backbone is {config.backbone!r}; add --set backbone=resnet18"
    if not NORM_KINDS[config.backbone_norm].batch_statistics:
        return (f"ImageNet weights come with batch-norm statistics, but the backbone_norm is "
                f"{config.backbone_norm!r}; add --set backbone_norm=frozen_batch")
    return None
