"""A five-convolution image encoder: ResNet-18's output stride (32) at an eighth of its arithmetic, for CPU training.

Same contract as the ResNet backbone: (B, 3, H, W) ImageNet-normalized -> (B, channels, ceil(H/32), ceil(W/32)),
so the policy's feature grid and tokens are the same whichever is chosen. Each stage is a stride-2 3x3 convolution
(5x5 for the first), a normalization and a ReLU. At 120x160 it costs 0.09 GMAC per image against ResNet-18's 0.70
and has 1.0M parameters against 11.2M. There are no pretrained weights for it.
"""

from __future__ import annotations

from torch import Tensor, nn

from policies.resnet import NormLayer


class ConvNet(nn.Module):
    channels = 256  # of the last stage
    stride = 32
    widths = (32, 64, 128, 256, 256)

    def __init__(self, norm: NormLayer) -> None:
        super().__init__()
        stages, in_channels = [], 3
        for i, width in enumerate(self.widths):
            kernel = 5 if i == 0 else 3
            stages += [nn.Conv2d(in_channels, width, kernel, stride=2, padding=kernel // 2, bias=False), norm(width),
                       nn.ReLU(inplace=True)]
            in_channels = width
        self.stages = nn.Sequential(*stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x)
