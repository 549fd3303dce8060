"""ResNet-18 in plain torch, with torchvision's parameter names so its ImageNet weights load from a local file.

torchvision has no CPU build here, so the network is written out; only the names and shapes have to match
`torchvision.models.resnet18().state_dict()`. The policy backbone uses frozen batch norm (fixed ImageNet
statistics and affine terms) because batches of 8 are too small to estimate statistics, as in DETR and ACT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms: all four are buffers, nothing updates them."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # torchvision's BatchNorm2d also saves a step counter that frozen statistics have no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int, norm: NormLayer) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            norm(channels))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18. num_classes=None leaves out the pooling and classifier (a feature extractor)."""

    channels = 512  # of layer4's output
    stride = 32  # layer4's downsampling of the input

    def __init__(self, num_classes: int | None = 1000, norm: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        in_channels = 64
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            layer = nn.Sequential(BasicBlock(in_channels, width, stride, norm), BasicBlock(width, width, 1, norm))
            self.add_module(f"layer{i}", layer)
            in_channels = width
        self.fc: nn.Linear | None = nn.Linear(512, num_classes) if num_classes is not None else None
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme; batch-norm weights start at 1 and biases at 0 (their constructors' defaults).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) ImageNet-normalized -> (B, 512, ceil(H/32), ceil(W/32))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        feats = self.features(x)
        if self.fc is None:
            return feats
        return self.fc(torch.flatten(feats.mean(dim=(2, 3)), 1))


def resnet18_backbone(norm: NormLayer = FrozenBatchNorm2d) -> ResNet18:
    """The policy backbone: layer4 features, state-dict keys as torchvision's minus fc.* (policies/backbones.py
    chooses the norm)."""
    return ResNet18(num_classes=None, norm=norm)


class BackboneLoadError(RuntimeError):
    pass


def load_pretrained_backbone(module: nn.Module, path: str | Path) -> None:
    """Load a torchvision resnet18 state dict saved with torch.save (e.g. ImageNet weights) into `module`.

    fc.* keys are ignored when the module has no classifier, and num_batches_tracked when it has frozen batch
    norm; any other missing, unexpected or mis-shaped key is an error that names the file and the keys.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneLoadError(f"no backbone weights file at {path}: pass the path of a torchvision resnet18 "
                                f"state dict (torch.save(torchvision.models.resnet18(weights=...).state_dict(), f))")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torch.load failure has many types: pickle, zip, unsupported global
        raise BackboneLoadError(f"could not read backbone weights {path}: {e}") from e
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise BackboneLoadError(f"{path} is not a state dict of tensors (got {type(loaded).__name__}); save "
                                f"model.state_dict() of a torchvision resnet18, not the model or a training checkpoint")
    expected = module.state_dict()
    ignorable = {k for k in loaded if (k.startswith("fc.") and "fc.weight" not in expected)
                 or (k.endswith("num_batches_tracked") and k not in expected)}
    state = {k: v for k, v in loaded.items() if k not in ignorable}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
                       for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshaped:
        parts = [f"{label}: {_listing(keys)}" for label, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)) if keys]
        raise BackboneLoadError(f"backbone weights {path} do not fit a torchvision resnet18: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown} and {len(keys) - limit} more"
