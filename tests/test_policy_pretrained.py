"""--pretrained-backbone imagenet|FILE|URL: downloaded once into the cache, checked by the hash in its name."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from policies.checkpoint import load_checkpoint
from policies.cli import main as train_main
from policies.pretrained import IMAGENET_URL, WeightsDownloadError, resolve_weights
from policies.resnet import ResNet18


def _weights_file(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """A torchvision-like resnet18 state dict, saved under torch.hub's naming: resnet18-<sha256 prefix>.pth."""
    torch.manual_seed(1)
    state = ResNet18().state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "raw.pth"
    torch.save(state, raw)
    named = folder / f"resnet18-{hashlib.sha256(raw.read_bytes()).hexdigest()[:8]}.pth"
    raw.rename(named)
    return state, named


def test_a_url_is_downloaded_once_into_the_cache_and_then_served_from_it(tmp_path: Path) -> None:
    state, source = _weights_file(tmp_path / "server")
    cache = tmp_path / "cache"
    path = resolve_weights(source.as_uri(), cache=cache, progress=False)
    assert path == cache / source.name
    assert path.read_bytes() == source.read_bytes()
    assert [p.name for p in cache.iterdir()] == [source.name]  # no partial file left beside it
    source.unlink()  # the second time needs no source at all
    assert resolve_weights(source.as_uri(), cache=cache, progress=False) == path


def test_a_download_whose_hash_differs_from_its_name_is_refused_and_not_cached(tmp_path: Path) -> None:
    _, source = _weights_file(tmp_path / "server")
    wrong = source.with_name("resnet18-00000000.pth")
    source.rename(wrong)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match=r"SHA-256 is [0-9a-f]{16}\.\.\., not 00000000"):
        resolve_weights(wrong.as_uri(), cache=cache, progress=False)
    assert list(cache.iterdir()) == []


def test_an_unreachable_url_says_how_to_pass_a_file_instead(tmp_path: Path) -> None:
    absent = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(WeightsDownloadError) as info:
        resolve_weights(absent.as_uri(), cache=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "could not download" in message and "--pretrained-backbone PATH/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "cache" / "resnet18-f37072fd.pth") in message
    with pytest.raises(WeightsDownloadError, match="must name its hash"):
        resolve_weights("https://example.invalid/weights.pth", cache=tmp_path / "cache", progress=False)


def test_imagenet_is_torchvisions_file_and_is_found_in_the_cache_without_a_network(tmp_path: Path) -> None:
    assert IMAGENET_URL.endswith("/resnet18-f37072fd.pth")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "resnet18-f37072fd.pth").write_bytes(b"placed by hand")
    assert resolve_weights("imagenet", cache=cache) == cache / "resnet18-f37072fd.pth"
    assert resolve_weights(tmp_path / "local.pth") == tmp_path / "local.pth"  # a path stays a path


def test_tandem_train_starts_its_resnet_from_weights_given_by_url(demos: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # torch.hub's cache, as a user's would be
    state, source = _weights_file(tmp_path / "server")
    dataset = tmp_path / "demos"
    shutil.copytree(demos, dataset)
    out = tmp_path / "run"
    assert train_main(["--dataset", str(dataset), "--out", str(out), "--preset", "tiny", "--workers", "0",
                       "--no-progress", "--device", "cpu", "--val-fraction", "0", "--steps", "1",
                       "--lr-backbone", "0", "--pretrained-backbone", source.as_uri()]) == 0
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / source.name).is_file()
    backbone = load_checkpoint(out / "last").policy.backbone.state_dict()
    for key, value in backbone.items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize(("flags", "refusal"), [
    (["--set", "backbone=convnet"], "the weights are ResNet-18's, but the backbone is 'convnet'"),
    (["--set", "backbone_norm=group"], "ImageNet weights come with batch-norm statistics, but the backbone_norm is "
                                       "'group'")])
def test_weights_for_another_backbone_are_refused(demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  flags: list[str], refusal: str) -> None:
    _, source = _weights_file(tmp_path / "server")
    dataset = tmp_path / "demos"
    shutil.copytree(demos, dataset)
    code = train_main(["--dataset", str(dataset), "--out", str(tmp_path / "run"), "--preset", "tiny", "--workers",
                       "0", "--no-progress", "--device", "cpu", "--steps", "1", *flags, "--pretrained-backbone",
                       str(source)])
    assert code == 1 and refusal in capsys.readouterr().err
    assert not (tmp_path / "run" / "last").exists()
