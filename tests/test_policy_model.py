"""ACT and BC-ConvMLP on tiny configs: shapes, a real overfit, padding, frozen batch norm, optimizer groups."""

from __future__ import annotations

import pytest
import torch

from policies.base import Policy, masked_l1, random_shift
from policies.config import PolicyConfig, preset
from policies.convnet import ConvNet
from policies.registry import POLICIES, make_policy
from policies.resnet import FrozenBatchNorm2d, resnet18_backbone

CAMERAS = ("cam_high", "cam_low")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models step faster on one thread, and two OpenMP threads crawl when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(policy: str = "act", n_cams: int = 1, **overrides) -> PolicyConfig:
    return preset("tiny", policy=policy, camera_names=CAMERAS[:n_cams], **overrides)


def make_batch(config: PolicyConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = config.image_size
    out = {
        "qpos": torch.randn(batch, config.state_dim, generator=g),
        "action": torch.randn(batch, config.chunk_size, config.action_dim, generator=g),
        "is_pad": torch.zeros(batch, config.chunk_size, dtype=torch.bool),
    }
    if config.camera_names:
        out["images"] = torch.rand(batch, len(config.camera_names), 3, h, w, generator=g)
    return out


@pytest.mark.parametrize("chunk_size", [1, 8], ids=["no-chunking", "chunk-8"])
@pytest.mark.parametrize("n_cams", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_shapes_loss_and_predict(name: str, n_cams: int, chunk_size: int) -> None:
    torch.manual_seed(0)
    config = tiny(name, n_cams, chunk_size=chunk_size)
    policy = make_policy(config)
    assert isinstance(policy, Policy)
    assert (policy.backbone is None) == (n_cams == 0)
    batch = make_batch(config, batch=3)

    loss, metrics = policy(batch)
    assert loss.shape == () and torch.isfinite(loss)
    assert set(metrics) == {"l1", "kl", "loss"} and metrics["loss"] == pytest.approx(loss.item())
    if name == "bc_convmlp":
        assert metrics["kl"] == 0.0
    loss.backward()
    assert all(p.grad is not None for group in policy.param_groups() for p in group["params"])

    actions = policy.predict(batch["qpos"], batch.get("images"))
    assert actions.shape == (3, config.chunk_size, config.action_dim)
    assert not actions.requires_grad


def test_state_only_policy_accepts_an_empty_camera_axis() -> None:
    config = tiny("act", 0)
    policy = make_policy(config)
    qpos = torch.randn(2, config.state_dim)
    empty = torch.zeros(2, 0, 3, 64, 64)
    torch.testing.assert_close(policy.predict(qpos, empty), policy.predict(qpos, None))


def test_predict_is_deterministic_and_leaves_training_mode_alone() -> None:
    torch.manual_seed(0)
    config = tiny("act", 1, dropout=0.5)
    policy = make_policy(config).train()
    batch = make_batch(config)
    first = policy.predict(batch["qpos"], batch["images"])
    torch.testing.assert_close(policy.predict(batch["qpos"], batch["images"]), first)
    assert policy.training


def test_act_reconstruct_decodes_what_the_validation_loss_scores() -> None:
    torch.manual_seed(0)
    config = tiny("act", 1)
    policy = make_policy(config)
    batch = make_batch(config, batch=3)
    batch["is_pad"][1, 5:] = True
    policy.train()
    policy(batch)[0].backward()  # a step's worth of gradients, so the posterior is not at its initial values
    torch.optim.SGD(policy.parameters(), lr=0.5).step()
    policy.eval()
    with torch.no_grad():
        _, metrics = policy(batch)  # eval mode: the latent at the posterior mean
    chunk = policy.reconstruct(batch["qpos"], batch["images"], batch["action"], batch["is_pad"])
    assert policy.training is False
    assert masked_l1(chunk, batch["action"], batch["is_pad"]).item() == pytest.approx(metrics["l1"], rel=1e-5)
    assert not torch.allclose(chunk, policy.predict(batch["qpos"], batch["images"]))  # the latent was not zero


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_tiny_policy_overfits_a_fixed_batch(name: str) -> None:
    torch.manual_seed(0)
    config = tiny(name, 0)
    policy = make_policy(config).train()
    batch = make_batch(config, batch=4)
    # Each target chunk is a straight-line trajectory from a random start to a random end, as action chunks are
    # smooth; chunks of independent noise per step are needlessly hard for ACT's per-step queries.
    start, end = torch.randn(2, 4, 1, config.action_dim)
    batch["action"] = start + (end - start) * torch.linspace(0, 1, config.chunk_size)[None, :, None]
    optimizer = torch.optim.AdamW(policy.param_groups())
    first = None
    for _ in range(200):
        loss, metrics = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else metrics["l1"]
    _, final = policy.eval()(batch)
    assert final["l1"] < 0.3 * first, (first, final)
    # Inference (latent zero) reproduces the memorized chunks too.
    error = (policy.predict(batch["qpos"]) - batch["action"]).abs().mean().item()
    assert error < 0.3 * first, (first, error)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_learns_what_only_the_images_tell_apart(name: str) -> None:
    """Two samples with the same qpos, different images and opposite actions: only the image path can fit both."""
    torch.manual_seed(0)
    # A fixed backbone keeps the steps fast; a random ResNet maps the two images to similar features (cosine
    # ~0.95), so this is slower to learn than the state-only overfit.
    config = tiny(name, 1, image_size=(32, 32), lr_backbone=0.0)
    policy = make_policy(config).train()
    batch = make_batch(config, batch=2)
    batch["qpos"] = batch["qpos"][:1].expand(2, -1).clone()
    batch["images"][1] = 1.0 - batch["images"][0]
    batch["action"][1] = -batch["action"][0]
    optimizer = torch.optim.AdamW(policy.param_groups())
    for _ in range(150):
        loss, _ = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    error = (policy.predict(batch["qpos"], batch["images"]) - batch["action"]).abs().mean()
    # Any prediction that ignores the images has an error of at least mean|a| (the targets are a and -a).
    blind = batch["action"].abs().mean()
    assert error < 0.75 * blind, (error, blind)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_padded_steps_do_not_influence_the_loss(name: str) -> None:
    torch.manual_seed(0)
    config = tiny(name, 1)
    policy = make_policy(config).eval()  # eval: the latent is the posterior mean, no sampling noise
    batch = make_batch(config)
    batch["is_pad"][0, 5:] = True
    batch["is_pad"][1, 2:] = True
    loss, _ = policy(batch)

    changed = dict(batch, action=batch["action"].clone())
    changed["action"][batch["is_pad"]] = 1000.0
    assert policy(changed)[0].item() == loss.item()

    changed["action"][0, 0] += 1.0  # a real step does count
    assert policy(changed)[0].item() != loss.item()


def test_frozen_batch_norm_keeps_its_statistics_while_the_backbone_trains() -> None:
    torch.manual_seed(0)
    config = tiny("act", 1)
    policy = make_policy(config).train()
    assert policy.backbone is not None
    norms = [m for m in policy.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 20
    before = {k: v.clone() for k, v in policy.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW(policy.param_groups())
    loss, _ = policy(make_batch(config))
    loss.backward()
    optimizer.step()
    after = policy.backbone.state_dict()
    trained = {name for name, _ in policy.backbone.named_parameters()}
    frozen = [key for key in before if key not in trained]
    assert len(frozen) == 4 * len(norms) and "layer2.0.downsample.1.running_var" in frozen
    for key in frozen:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])


def test_param_groups_split_backbone_from_the_rest() -> None:
    config = tiny("act", 1, lr=1e-3, lr_backbone=1e-5)
    policy = make_policy(config)
    rest, backbone = policy.param_groups()
    assert (rest["lr"], backbone["lr"]) == (1e-3, 1e-5)
    assert {id(p) for p in backbone["params"]} == {id(p) for p in policy.backbone.parameters()}
    grouped = [id(p) for g in (rest, backbone) for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in policy.parameters())

    frozen = make_policy(config.replace(lr_backbone=0.0))
    (only,) = frozen.param_groups()
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert len(only["params"]) == len(rest["params"])


def test_inputs_that_do_not_fit_the_config_are_refused() -> None:
    config = tiny("act", 2)
    policy = make_policy(config)
    batch = make_batch(config)
    with pytest.raises(ValueError, match=r"resized to 64x64"):
        policy.predict(batch["qpos"], batch["images"][..., :32, :32])
    with pytest.raises(ValueError, match=r"cam_high, cam_low"):
        policy.predict(batch["qpos"], batch["images"][:, :1])
    with pytest.raises(ValueError, match="divide uint8 frames by 255"):
        policy.predict(batch["qpos"], (batch["images"] * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="needs images"):
        policy.predict(batch["qpos"], None)
    with pytest.raises(ValueError, match=r"qpos must be \(batch, 14\)"):
        policy.predict(batch["qpos"][:, :7], batch["images"])
    with pytest.raises(ValueError, match="is_pad must be bool"):
        policy(dict(batch, is_pad=batch["is_pad"].float()))


def test_make_policy_names_the_available_policies() -> None:
    with pytest.raises(ValueError, match="unknown policy 'diffusion'; available policies: act, bc_convmlp"):
        make_policy(tiny().replace(policy="diffusion"))


def test_random_shift_crops_the_border_padded_image_at_an_offset_within_bounds() -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 2, 3, 12, 16)
    assert random_shift(images, 0) is images
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape
    padded = torch.nn.functional.pad(images.reshape(-1, 3, 12, 16), (2, 2, 2, 2), mode="replicate")
    offsets = []
    for i, image in enumerate(shifted.reshape(-1, 3, 12, 16)):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(image, padded[i, :, dy:dy + 12, dx:dx + 16])]
        assert found, f"image {i} is no crop of its padded original"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # each image draws its own offset


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_image_shift_applies_in_training_only(name: str) -> None:
    """Validation losses and predictions see the images as they are; training batches see them shifted."""
    torch.manual_seed(0)
    config = tiny(name, 1, image_shift=4, dropout=0.0)
    policy = make_policy(config)
    batch = make_batch(config)
    assert torch.equal(policy.predict(batch["qpos"], batch["images"]), policy.predict(batch["qpos"], batch["images"]))
    policy.eval()
    assert policy(batch)[0].item() == policy(batch)[0].item()
    if name == "act":
        policy.cvae_out.weight.data.zero_()  # no latent noise: only the shift can make two training losses differ
        policy.cvae_out.bias.data.fill_(-30.0)
    policy.train()
    assert len({round(policy(batch)[0].item(), 6) for _ in range(4)}) > 1


def test_group_norm_backbone_trains_its_norms_and_keeps_torchvision_names() -> None:
    torch.manual_seed(0)
    policy = make_policy(tiny("act", 1, backbone_norm="group")).train()
    norms = [m for m in policy.backbone.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 20 and not any(isinstance(m, FrozenBatchNorm2d) for m in policy.backbone.modules())
    assert norms[0].num_groups == 4  # 64 channels, 16 per group
    trained = dict(policy.backbone.named_parameters())
    assert "layer2.0.downsample.1.weight" in trained and "bn1.bias" in trained
    before = trained["layer1.0.bn1.weight"].detach().clone()
    optimizer = torch.optim.AdamW(policy.param_groups())
    loss, _ = policy(make_batch(policy.config))
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, trained["layer1.0.bn1.weight"])


@pytest.mark.parametrize("name", ["act", "bc_convmlp"])
def test_the_convnet_backbone_gives_the_resnets_grid_and_trains(name) -> None:
    torch.manual_seed(0)
    config = tiny(name, 2, backbone="convnet", backbone_norm="group", image_size=(100, 130))
    policy = make_policy(config).train()
    assert isinstance(policy.backbone, ConvNet)
    images = torch.rand(3, 3, 100, 130)
    grid = policy.backbone(images).shape
    assert grid[1] == ConvNet.channels and grid[2:] == resnet18_backbone()(images).shape[2:] == (4, 5)
    assert sum(p.numel() for p in policy.backbone.parameters()) < 0.15 * sum(
        p.numel() for p in resnet18_backbone().parameters())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in policy.backbone.modules())
    batch = make_batch(config)
    optimizer = torch.optim.AdamW(policy.param_groups(), lr=1e-3)
    losses = []
    for _ in range(50):
        loss, _ = policy(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert policy.predict(batch["qpos"], batch["images"]).shape == (batch["qpos"].shape[0], config.chunk_size, 14)



def test_the_convnet_with_frozen_batch_norm_has_no_trained_normalization() -> None:
    policy = make_policy(tiny("act", 1, backbone="convnet"))
    norms = [m for m in policy.backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == len(ConvNet.widths) and not any(isinstance(m, torch.nn.GroupNorm)
                                                        for m in policy.backbone.modules())
    with pytest.raises(ValueError, match="backbone must be one of resnet18, convnet, got 'vit'"):
        tiny("act", 1, backbone="vit")
