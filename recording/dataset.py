"""A dataset folder: episode_<N>.hdf5 files and dataset.json, the index that says what each one is.

dataset.json records the rig, its calibration digest, the control rate, the
cameras and, per episode, its kind (demo, correction, rollout), length, success
where known and how it was recorded. It is rewritten atomically after every
episode, so a crash loses at most the episode being recorded. A folder of
episodes written by the original ALOHA/ACT scripts (no dataset.json) opens too:
its index is built from the files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recording.reader import EpisodeReader

FORMAT = "tandem-dataset"
VERSION = 1
INDEX = "dataset.json"
KINDS = ("demo", "correction", "rollout")
EPISODE_FILE = re.compile(r"^episode_(\d+)\.hdf5$")
OPEN_EPISODE_FILE = re.compile(r"^\.episode_(\d+)\.hdf5\.partial$")  # being written (recording.writer)


class DatasetError(ValueError):
    pass


@dataclass
class EpisodeInfo:
    index: int
    kind: str = "demo"
    length: int = 0
    success: bool | None = None
    seed: int | None = None
    fps: float | None = None  # achieved control rate
    dropped: int = 0  # steps the writer could not take
    flagged: str = ""  # why the episode is suspect (e.g. the loop ran slow), empty if not
    checkpoint: str = ""  # the policy a correction or rollout came from
    rollout: int | None = None  # the rollout episode a correction was cut from
    bytes: int = 0
    created: str = ""

    @property
    def file(self) -> str:
        return episode_file(self.index)


def episode_file(index: int) -> str:
    return f"episode_{index}.hdf5"


@dataclass
class DatasetInfo:
    rig: str = ""
    calibration: str = ""  # digest of the calibrations the episodes were recorded with
    fps: float = 50.0
    cameras: list[str] = field(default_factory=list)
    image_size: dict[str, list[int]] = field(default_factory=dict)  # camera -> [H, W]
    compress: bool = False
    task: str = ""
    episodes: list[EpisodeInfo] = field(default_factory=list)


def calibration_digest(digests: dict[str, str]) -> str:
    """One digest for a rig's per-arm calibration digests."""
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


class Dataset:
    def __init__(self, root: Path, info: DatasetInfo) -> None:
        self.root = root
        self.info = info

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such dataset folder")
        index = root / INDEX
        if not index.exists():
            return cls(root, _info_from_files(root))
        try:
            data = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{index}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DatasetError(f"{index}: not a tandem dataset index (no \"format\": \"{FORMAT}\")")
        try:
            episodes = [EpisodeInfo(**e) for e in data.pop("episodes")]
            fields = {f.name for f in dataclasses.fields(DatasetInfo)}
            info = DatasetInfo(**{k: v for k, v in data.items() if k in fields}, episodes=episodes)
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{index}: malformed ({exc})") from None
        return cls(root, info)

    @classmethod
    def create_or_open(cls, root: str | Path, info: DatasetInfo) -> Dataset:
        """A new dataset with `info`, or the existing one after checking it was recorded the same way."""
        root = Path(root)
        if (root / INDEX).exists():
            dataset = cls.open(root)
            dataset.check_matches(info)
            return dataset
        root.mkdir(parents=True, exist_ok=True)
        if any(EPISODE_FILE.match(p.name) for p in root.iterdir()):
            raise DatasetError(f"{root}: holds episode files but no {INDEX}; record into a new folder")
        dataset = cls(root, dataclasses.replace(info, episodes=[]))
        dataset.save()
        return dataset

    def check_matches(self, info: DatasetInfo) -> None:
        mine = self.info
        problems = []
        for name in ("rig", "fps", "cameras", "image_size", "compress", "task"):
            if getattr(mine, name) != getattr(info, name):
                ours, theirs = getattr(mine, name), getattr(info, name)
                problems.append(f"{name}: the dataset has {ours!r}, this session {theirs!r}")
        if problems:
            raise DatasetError(f"{self.root}: recorded with other settings; use a new --dataset folder or the "
                               "same settings:\n  " + "\n  ".join(problems))

    # -- episodes ---------------------------------------------------------------------------------
    def episodes(self, kinds: Iterable[str] | None = None) -> list[EpisodeInfo]:
        wanted = set(kinds) if kinds is not None else set(KINDS)
        return [e for e in self.info.episodes if e.kind in wanted]

    def episode(self, index: int) -> EpisodeInfo:
        for e in self.info.episodes:
            if e.index == index:
                return e
        have = ", ".join(str(e.index) for e in self.info.episodes) or "none"
        raise DatasetError(f"{self.root}: no episode {index} (episodes: {have})")

    def path(self, index: int) -> Path:
        return self.root / episode_file(index)

    def next_index(self) -> int:
        # episodes still being written count too: a correction starts while its rollout is open
        on_disk = [int(m.group(1)) for p in self.root.iterdir()
                   if (m := EPISODE_FILE.match(p.name) or OPEN_EPISODE_FILE.match(p.name))]
        listed = [e.index for e in self.info.episodes]
        return max(on_disk + listed, default=-1) + 1

    def add(self, episode: EpisodeInfo) -> None:
        if not episode.created:
            episode.created = time.strftime("%Y-%m-%dT%H:%M:%S")
        if episode.kind not in KINDS:
            raise DatasetError(f"episode {episode.index}: kind {episode.kind!r} is not one of {', '.join(KINDS)}")
        self.info.episodes = [e for e in self.info.episodes if e.index != episode.index] + [episode]
        self.info.episodes.sort(key=lambda e: e.index)
        self.save()

    def remove(self, index: int) -> None:
        """Drop an episode: from the index first, then its file."""
        self.info.episodes = [e for e in self.info.episodes if e.index != index]
        self.save()
        self.path(index).unlink(missing_ok=True)

    def remove_partials(self) -> list[Path]:
        """Episodes a crash left unfinished (hidden .partial files): deleted; returns what was removed."""
        partials = sorted(self.root.glob(".episode_*.hdf5.partial"))
        for p in partials:
            p.unlink()
        return partials

    def save(self) -> None:
        data = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self.info)}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{INDEX}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, self.root / INDEX)


def _info_from_files(root: Path) -> DatasetInfo:
    """The index of a folder of episodes without dataset.json (e.g. recorded by ALOHA's scripts)."""
    files = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := EPISODE_FILE.match(p.name)))
    if not files:
        raise DatasetError(f"{root}: no {INDEX} and no episode_<N>.hdf5 files")
    info = DatasetInfo(rig="unknown")
    for index, path in files:
        with EpisodeReader(path) as ep:
            attrs = ep.attrs
            if not info.cameras:
                info.cameras = list(ep.camera_names)
                info.compress = ep.compressed
                info.image_size = {c: list(ep.image_size(c)) for c in ep.camera_names}
                info.fps = float(attrs.get("fps", 50.0))
            kind = str(attrs.get("kind", "demo"))
            info.episodes.append(EpisodeInfo(index, kind if kind in KINDS else "demo", ep.length,
                                             bytes=path.stat().st_size))
    return info
