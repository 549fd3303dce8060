"""BC-ConvMLP, the ACT paper's simplest baseline: ResNet-18 features per camera + qpos -> MLP -> actions.

Each camera's layer4 features (512 channels) go through a 1x1 conv down to bc_channels, then an adaptive
average pool to a fixed bc_grid of cells, and are flattened: the MLP's input size does not depend on the image
size, and the grid keeps coarse "where" information that a global pool would throw away. The MLP predicts
chunk_size actions at once (chunk_size 1 is plain behaviour cloning). Loss: L1 on the non-padded actions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from policies.backbones import image_backbone
from policies.base import (
    ImageNormalizer,
    check_inputs,
    check_targets,
    freeze_if_unused,
    masked_l1,
    random_shift,
    split_param_groups,
)
from policies.config import PolicyConfig
from policies.convnet import ConvNet
from policies.resnet import ResNet18


class BCConvMLP(nn.Module):
    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        n_cams = len(c.camera_names)
        self.backbone: ResNet18 | ConvNet | None = image_backbone(c) if n_cams else None
        self.normalize_images = ImageNormalizer()
        # Linear down to the MLP (no ReLU here: with few channels, a dead one would drop a camera's information).
        self.reduce = (nn.Sequential(nn.Conv2d(self.backbone.channels, c.bc_channels, kernel_size=1),
                                     nn.AdaptiveAvgPool2d(c.bc_grid)) if n_cams else None)
        layers: list[nn.Module] = []
        width = n_cams * c.bc_channels * c.bc_grid[0] * c.bc_grid[1] + c.state_dim
        for _ in range(c.bc_layers):
            layers += [nn.Linear(width, c.bc_hidden), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.bc_hidden
        layers.append(nn.Linear(width, c.chunk_size * c.action_dim))
        self.mlp = nn.Sequential(*layers)
        freeze_if_unused(self.backbone, c)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        qpos, action, is_pad = batch["qpos"], batch["action"], batch["is_pad"]
        images = check_inputs(self.config, qpos, batch.get("images"))
        check_targets(self.config, action, is_pad, qpos.shape[0])
        l1 = masked_l1(self._actions(qpos, images), action, is_pad)
        return l1, {"l1": l1.item(), "kl": 0.0, "loss": l1.item()}

    @torch.no_grad()
    def predict(self, qpos: Tensor, images: Tensor | None = None) -> Tensor:
        images = check_inputs(self.config, qpos, images)
        was_training = self.training
        self.eval()
        try:
            return self._actions(qpos, images)
        finally:
            self.train(was_training)

    def param_groups(self) -> list[dict]:
        return split_param_groups(self, self.backbone, self.config)

    def _actions(self, qpos: Tensor, images: Tensor | None) -> Tensor:
        parts = [qpos]
        if images is not None:
            assert self.backbone is not None and self.reduce is not None
            b = images.shape[0]
            if self.training:
                images = random_shift(images, self.config.image_shift)
            feats = self.reduce(self.backbone(self.normalize_images(images.flatten(0, 1))))  # (B*n, C, gh, gw)
            parts.insert(0, feats.reshape(b, -1))  # cameras in order, each C*gh*gw
        out = self.mlp(torch.cat(parts, dim=1))
        return out.view(qpos.shape[0], self.config.chunk_size, self.config.action_dim)
