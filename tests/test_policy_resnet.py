"""ResNet-18 with torchvision's names: key set, parameter count, loading a state dict file, frozen batch norm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from policies.resnet import BackboneLoadError, FrozenBatchNorm2d, ResNet18, load_pretrained_backbone, resnet18_backbone

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# torchvision.models.resnet18().state_dict() keys, written out for the stem, one plain block, one block with a
# downsample, and the classifier; 122 keys in all.
STEM = ["conv1.weight", *(f"bn1.{k}" for k in BN)]
LAYER1_0 = ["layer1.0.conv1.weight", *(f"layer1.0.bn1.{k}" for k in BN),
            "layer1.0.conv2.weight", *(f"layer1.0.bn2.{k}" for k in BN)]
LAYER2_0 = ["layer2.0.conv1.weight", *(f"layer2.0.bn1.{k}" for k in BN),
            "layer2.0.conv2.weight", *(f"layer2.0.bn2.{k}" for k in BN),
            "layer2.0.downsample.0.weight", *(f"layer2.0.downsample.1.{k}" for k in BN)]
FC = ["fc.weight", "fc.bias"]
SHAPES = {"conv1.weight": (64, 3, 7, 7), "layer2.0.conv1.weight": (128, 64, 3, 3),
          "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer4.1.conv2.weight": (512, 512, 3, 3),
          "layer4.0.downsample.1.running_var": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)}


def test_resnet18_has_torchvision_names_shapes_and_parameter_count() -> None:
    model = ResNet18()
    state = model.state_dict()
    keys = list(state)
    assert len(keys) == 122
    assert keys[:len(STEM)] == STEM
    for block in (LAYER1_0, LAYER2_0):
        start = keys.index(block[0])
        assert keys[start:start + len(block)] == block
    assert keys[-2:] == FC
    for layer in (2, 3, 4):
        assert f"layer{layer}.0.downsample.0.weight" in keys and f"layer{layer}.1.downsample.0.weight" not in keys
    assert "layer1.0.downsample.0.weight" not in keys
    for key, shape in SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in model.parameters()) == 11_689_512


def test_backbone_keys_are_torchvision_keys_without_classifier_or_step_counters() -> None:
    full = {k for k in ResNet18().state_dict() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    backbone = resnet18_backbone()
    assert set(backbone.state_dict()) == full
    out = backbone(torch.rand(1, 3, 64, 96))
    assert out.shape == (1, 512, 2, 3)


def _torchvision_like_file(tmp_path: Path) -> tuple[ResNet18, Path]:
    """A state dict as torchvision saves it (BatchNorm2d with statistics, classifier), random values."""
    torch.manual_seed(0)
    source = ResNet18()
    with torch.no_grad():
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    return source.eval(), path


def test_a_torchvision_state_dict_loads_and_gives_the_same_features(tmp_path: Path) -> None:
    source, path = _torchvision_like_file(tmp_path)
    backbone = resnet18_backbone()
    load_pretrained_backbone(backbone, path)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), source.features(x))


def test_a_file_that_does_not_fit_names_the_file_and_the_keys(tmp_path: Path) -> None:
    source, _ = _torchvision_like_file(tmp_path)
    state = source.state_dict()
    state["layer3.1.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    del state["layer1.0.bn1.running_mean"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    bad = tmp_path / "wrong.pth"
    torch.save(state, bad)
    with pytest.raises(BackboneLoadError) as info:
        load_pretrained_backbone(resnet18_backbone(), bad)
    message = str(info.value)
    assert str(bad) in message
    assert "missing keys: layer1.0.bn1.running_mean" in message
    assert "unexpected keys: layer5.0.conv1.weight" in message
    assert "layer3.1.conv2.weight (file (256, 256, 1, 1), model (256, 256, 3, 3))" in message

    with pytest.raises(BackboneLoadError, match="no backbone weights file at .*absent.pth"):
        load_pretrained_backbone(resnet18_backbone(), tmp_path / "absent.pth")
    torch.save({"model": state}, tmp_path / "wrapped.pth")
    with pytest.raises(BackboneLoadError, match="wrapped.pth is not a state dict of tensors"):
        load_pretrained_backbone(resnet18_backbone(), tmp_path / "wrapped.pth")


def test_frozen_batch_norm_matches_batch_norm_in_eval_and_never_updates() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    frozen = FrozenBatchNorm2d(8)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(4, 8, 5, 5)
    frozen.train()
    torch.testing.assert_close(frozen(x), bn.eval()(x))
    assert list(frozen.parameters()) == []
    assert torch.equal(frozen.running_mean, bn.running_mean)
