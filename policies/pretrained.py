"""Where backbone weights come from: a local file, a URL, or `imagenet` (torchvision's ResNet-18 ImageNet weights).

A URL is downloaded once into a cache folder and checked by hash, the way torch.hub does it: the file name ends in
`-<first hex digits of its SHA-256>` (torchvision's `resnet18-f37072fd.pth`), so a truncated or altered download is
refused and never cached. The cache is torch.hub's checkpoint folder (`$TORCH_HOME/hub/checkpoints`, by default
`~/.cache/torch/hub/checkpoints`), so weights that torchvision already downloaded on this machine are found there.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import torch

IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision ResNet18_Weights.IMAGENET1K_V1
ALIASES = {"imagenet": IMAGENET_URL}
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


class WeightsDownloadError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(source: str | Path, *, cache: Path | None = None, progress: bool = True) -> Path:
    """The local path of backbone weights named by `source`: a file path, `imagenet`, or an http(s)/file URL."""
    text = str(source)
    url = ALIASES.get(text, text)
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        return Path(text)  # a local file; load_pretrained_backbone names it if it is missing or wrong
    name = Path(urllib.parse.urlparse(url).path).name
    expected = _HASH_SUFFIX.search(name)
    if expected is None:
        raise WeightsDownloadError(f"{url}: a weights URL must name its hash as torch.hub's do (name-<sha256 "
                                   f"prefix>.pth, e.g. {Path(IMAGENET_URL).name}); download it yourself and pass the "
                                   f"file's path instead")
    target = (cache or cache_dir()) / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.{os.getpid()}.part")
    try:
        digest = _download(url, partial, name, progress)
        if not digest.startswith(expected.group(1)):
            raise WeightsDownloadError(f"{url}: the download's SHA-256 is {digest[:16]}..., not {expected.group(1)}... "
                                       f"as its name says; it is corrupt or not that file, and was not kept")
        os.replace(partial, target)  # whole and checked, or not there at all
    except (urllib.error.URLError, OSError) as e:
        raise WeightsDownloadError(
            f"could not download {url} ({getattr(e, 'reason', e)}). Where this machine has no internet: download it "
            f"on one that has (curl -L -o {name} {url}), copy it here, and pass --pretrained-backbone PATH/{name}, "
            f"or put it at {target}") from e
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(url: str, path: Path, label: str, progress: bool) -> str:
    """Copy `url` to `path`; its SHA-256 as hex."""
    sha = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=30) as response, open(path, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {label}",
                       file=sys.stderr, leave=False)
        while chunk := response.read(1 << 20):
            sha.update(chunk)
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
    return sha.hexdigest()
