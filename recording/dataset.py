"""A dataset folder: episode_<N>.hdf5 files and dataset.json, the index that says what each one is.

dataset.json records the rig, its calibration digest, the control rate, the
cameras and, per episode, its kind (demo, correction, rollout), length, success
where known and how it was recorded. It is rewritten atomically after every
episode, so a crash loses at most the episode being recorded. A folder of
episodes written by the original ALOHA/ACT scripts (no dataset.json) opens too:
its index is built from the files.

One process writes a folder at a time: `create_or_open` takes an flock on
`<folder>/.lock` (which names the holder) and keeps it until `close()` or the
process ends; the kernel drops it when the process dies, so a crash leaves no
stale lock. Under the lock it cleans up after a crash: unfinished `.partial`
files are deleted, a complete episode file missing from the index (a kill
between its rename and the index update) is added back, and an index entry
whose file is gone is dropped. Readers (`open`: train, inspect, replay) take no
lock and may not change the index.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time
import types
import typing
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recording.lerobot_format import lerobot_folder_problem
from recording.reader import EpisodeFormatError, EpisodeReader

FORMAT = "tandem-dataset"
VERSION = 1
INDEX = "dataset.json"
LOCK = ".lock"  # flock'ed by the one process writing the folder; holds its pid, host and command
KINDS = ("demo", "correction", "rollout")
EPISODE_FILE = re.compile(r"^episode_(\d+)\.hdf5$")
OPEN_EPISODE_FILE = re.compile(r"^\.episode_(\d+)\.hdf5\.partial$")  # being written (recording.writer)


class DatasetError(ValueError):
    pass


class DatasetLockedError(DatasetError):
    """Another process is writing the dataset folder."""


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
    rollout_step: int | None = None  # the step of its rollout at which a correction started (the takeover)
    task_description: str = ""  # what the episode shows being done, in words (LeRobot's per-episode `task`)
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
    render: str = ""  # how a simulated rig rendered the cameras (robot/sim/render_style.py); "" hardware or unknown
    episodes: list[EpisodeInfo] = field(default_factory=list)


def calibration_digest(digests: dict[str, str]) -> str:
    """One digest for a rig's per-arm calibration digests."""
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


class Dataset:
    def __init__(self, root: Path, info: DatasetInfo) -> None:
        self.root = root
        self.info = info
        self._release: weakref.finalize | None = None  # set while this object holds the folder's write lock

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        """For reading (no lock): training, inspect, replay."""
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such dataset folder")
        _refuse_lerobot_folder(root)
        index = root / INDEX
        if not index.exists():
            return cls(root, _info_from_files(root))
        try:
            data = json.loads(index.read_text(), parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{index}: not valid JSON ({exc})") from None
        except ValueError as exc:  # NaN or Infinity, which Python's json would otherwise accept
            raise DatasetError(f"{index}: {exc}") from None
        return cls(root, _info_from_index(index, data))

    @classmethod
    def create_or_open(cls, root: str | Path, info: DatasetInfo, *,
                       say: Callable[[str], None] = print) -> Dataset:
        """For writing: a new dataset with `info`, or the existing one after checking it was recorded the same way.

        Takes the folder's write lock (DatasetLockedError names the holder), then reconciles the index with the
        files, saying in one line each what it changed. Release the lock with close() (or let the process end).
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        _refuse_lerobot_folder(root)
        lock = _acquire_lock(root)
        try:
            if (root / INDEX).exists():
                dataset = cls.open(root)
                dataset.check_matches(info)
            elif any(EPISODE_FILE.match(p.name) for p in root.iterdir()):
                raise DatasetError(f"{root}: holds episode files but no {INDEX}; record into a new folder")
            else:
                dataset = cls(root, dataclasses.replace(info, episodes=[]))
        except BaseException:
            _release_lock(lock)
            raise
        dataset._release = weakref.finalize(dataset, _release_lock, lock)
        try:
            dataset._reconcile(say)
        except BaseException:
            dataset.close()
            raise
        return dataset

    def close(self) -> None:
        """Give up the write lock (a no-op for a dataset opened for reading)."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._release is not None and self._release.alive

    def _reconcile(self, say: Callable[[str], None]) -> None:
        """After a crash: partial files deleted, complete files missing from the index added, lost files dropped."""
        for partial in self.remove_partials():
            say(f"{self.root}: removed {partial.name}, an episode a crash left unfinished")
        for path in self.unlisted_files():
            try:
                episode = _info_from_file(path)
            except EpisodeFormatError as exc:
                say(f"{path}: not in {INDEX} and not a readable episode ({exc.problem}); left as it is, numbering "
                    "skips it: check it with tandem-inspect, then delete it or move it away")
                continue
            self.info.episodes.append(episode)
            say(f"{path}: a complete {episode.kind} episode ({episode.length} steps) missing from {INDEX} (the "
                "recorder stopped before indexing it); added back")
        for episode in self.missing_files():
            self.info.episodes.remove(episode)
            say(f"{self.root / INDEX}: lists {episode.file} ({episode.kind}, {episode.length} steps) but the file "
                "is gone; dropped from the index")
        self.info.episodes.sort(key=lambda e: e.index)
        self.save()

    def check_matches(self, info: DatasetInfo) -> None:
        mine = self.info
        problems = []
        for name in ("rig", "fps", "cameras", "image_size", "compress", "task", "render"):
            if name == "render" and not mine.render:
                continue  # recorded before the render was kept: unknown, so nothing to hold against
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

    def unlisted_files(self) -> list[Path]:
        """Episode files in the folder that the index does not list."""
        listed = {e.index for e in self.info.episodes}
        return sorted((p for p in self.root.iterdir() if (m := EPISODE_FILE.match(p.name))
                       and int(m.group(1)) not in listed), key=lambda p: int(EPISODE_FILE.match(p.name).group(1)))

    def missing_files(self) -> list[EpisodeInfo]:
        """Index entries whose episode file is not in the folder."""
        return [e for e in self.info.episodes if not self.path(e.index).exists()]

    def check_episode(self, episode: EpisodeInfo, dims: tuple[int, int] | None = None) -> tuple[int, int]:
        """Read all of one episode file and hold it against the index: layout, shapes, length, finite values,
        cameras and their image size (first and last frame decoded). Raises EpisodeFormatError naming the file,
        the dataset in it and, for bad values, the row. Returns the (state, action) columns, for `dims` of the
        next episode: every episode of a dataset has the same."""
        path = self.path(episode.index)
        with EpisodeReader(path) as ep:
            if ep.length != episode.length:
                raise EpisodeFormatError(path, "/observations/qpos", f"has {ep.length} steps, {INDEX} says "
                                         f"{episode.length}")
            for name, have, want in (("/observations/qpos", ep.dim, dims and dims[0]),
                                     ("/action", ep.action_dim, dims and dims[1])):
                if want and have != want:
                    raise EpisodeFormatError(path, name, f"has {have} columns, expected {want} as the dataset's "
                                             "other episodes")
            ep.check_values()
            for cam in self.info.cameras:
                expected = tuple(self.info.image_size.get(cam, ()))
                for step in sorted({0, ep.length - 1}) if ep.length else ():
                    shape = ep.image(cam, step).shape
                    if expected and shape[:2] != expected:
                        raise EpisodeFormatError(path, f"/observations/images/{cam}", f"frame {step} is "
                                                 f"{shape[0]}x{shape[1]}, {INDEX} says {expected[0]}x{expected[1]}")
            return ep.dim, ep.action_dim

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
        """Drop an episode: its file first, then its entry, so a crash between the two leaves an entry
        without a file (dropped when the folder is next opened), never a discarded episode that comes back."""
        self.path(index).unlink(missing_ok=True)
        self.info.episodes = [e for e in self.info.episodes if e.index != index]
        self.save()

    def remove_partials(self) -> list[Path]:
        """Episodes a crash left unfinished (hidden .partial files): deleted; returns what was removed.
        Only under the write lock: without it they may be another recorder's live episodes."""
        self._check_writable("remove unfinished episodes")
        partials = sorted(self.root.glob(".episode_*.hdf5.partial"))
        for p in partials:
            p.unlink()
        return partials

    def save(self) -> None:
        self._check_writable(f"write {INDEX}")
        data = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self.info)}
        tmp = self.root / f".{INDEX}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies: shared as the episodes
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, self.root / INDEX)

    def _check_writable(self, what: str) -> None:
        if not self.writable:
            raise DatasetError(f"{self.root}: opened for reading, cannot {what}; open it with "
                               "Dataset.create_or_open (which takes the folder's write lock)")


def _refuse_lerobot_folder(root: Path) -> None:
    """A LeRobot dataset where a tandem one is expected (train, inspect, replay, record): one line saying what it is
    and the tandem-import command that converts it."""
    problem = lerobot_folder_problem(root)
    if problem is not None and not (root / INDEX).exists():
        raise DatasetError(problem)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a dataset index may hold")


# -- the write lock --------------------------------------------------------------------------------------
# The folders this process holds the lock of, shared by its Dataset objects (flock is per open file: a second
# flock from this process would refuse it); a forked child does not inherit the entry.
_held: dict[Path, list] = {}  # resolved folder -> [fd, holders, pid]


def _acquire_lock(root: Path) -> Path:
    key = root.resolve()
    held = _held.get(key)
    if held is not None and held[2] == os.getpid():
        # two writers in one process would delete each other's live .partial files and overwrite each
        # other's index entries just as two processes would
        raise DatasetLockedError(f"{root}: this process (pid {os.getpid()}) already has it open for writing; "
                                 "close that Dataset first")
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(os.pread(fd, 4096, 0))
        os.close(fd)
        raise DatasetLockedError(f"{root}: another process is writing this dataset ({holder}); wait for it to "
                                 "finish or stop it, or use another --dataset folder") from None
    except OSError as exc:  # e.g. a network file system without flock
        os.close(fd)
        raise DatasetError(f"{root / LOCK}: cannot take the write lock ({exc}); record into a folder on a local "
                           "disk") from None
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:300],
              "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _held[key] = [fd, 1, os.getpid()]
    try:  # who holds it, for the message a second writer gets; the flock alone is the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    except OSError:
        pass  # e.g. a full disk: the lock holds all the same
    return key


def _release_lock(key: Path) -> None:
    held = _held.get(key)
    if held is None or held[2] != os.getpid():
        return
    held[1] -= 1
    if held[1] == 0:
        del _held[key]
        os.ftruncate(held[0], 0)  # the next reader of the file sees no holder
        os.close(held[0])  # drops the flock


def _describe_holder(raw: bytes) -> str:
    try:
        holder = json.loads(raw.decode())
        return (f"pid {holder['pid']} on {holder['host']}, since {holder['since']}: {holder['command']}")
    except (ValueError, KeyError, TypeError):
        return "its pid not written yet; try again in a moment"


def _info_from_files(root: Path) -> DatasetInfo:
    """The index of a folder of episodes without dataset.json (e.g. recorded by ALOHA's scripts)."""
    files = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := EPISODE_FILE.match(p.name)))
    if not files:
        raise DatasetError(f"{root}: no {INDEX} and no episode_<N>.hdf5 files")
    info = DatasetInfo(rig="unknown")
    for _, path in files:
        if not info.cameras:
            with EpisodeReader(path) as ep:
                info.cameras = list(ep.camera_names)
                info.compress = ep.compressed
                info.image_size = {c: list(ep.image_size(c)) for c in ep.camera_names}
                info.fps = float(ep.attrs.get("fps", 50.0))
                info.render = str(ep.attrs.get("render", ""))
        info.episodes.append(_info_from_file(path))
    return info


def _info_from_file(path: Path) -> EpisodeInfo:
    """An episode's index entry from its file: what EpisodeSlot.finish would have added."""
    with EpisodeReader(path) as ep:
        attrs, length, description = ep.attrs, ep.length, ep.task_description

    def number(key: str) -> int | None:  # our files store "unknown" as -1
        value = attrs.get(key, -1)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None

    kind = str(attrs.get("kind", "demo"))
    success = number("success")
    fps = attrs.get("achieved_fps")
    return EpisodeInfo(int(EPISODE_FILE.match(path.name).group(1)), kind if kind in KINDS else "demo", length,
                       success=None if success is None else bool(success), seed=number("seed"),
                       fps=float(fps) if isinstance(fps, int | float) and fps > 0 else None,
                       dropped=number("dropped_steps") or 0, checkpoint=str(attrs.get("checkpoint", "")),
                       rollout=number("rollout"), rollout_step=number("rollout_step"),
                       task_description=description, bytes=path.stat().st_size,
                       created=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime)))


# -- dataset.json, checked field by field ----------------------------------------------------------------
def _info_from_index(index: Path, data: object) -> DatasetInfo:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(f"{index}: not a tandem dataset index (no \"format\": \"{FORMAT}\")")
    version = data.get("version", VERSION)
    if type(version) is not int or version > VERSION:
        raise DatasetError(f"{index}: \"version\" is {version!r}; this tandem reads version {VERSION} and older "
                           "(update tandem)")
    raw_episodes = data.get("episodes", [])
    if not isinstance(raw_episodes, list):
        raise DatasetError(f"{index}: \"episodes\" is {_shown(raw_episodes)}, expected a list")
    top = {k: v for k, v in data.items() if k not in ("format", "version", "episodes")}
    info = DatasetInfo(**_checked_fields(DatasetInfo, top, f"{index}", ignore_unknown=True))
    for name, size in info.image_size.items():
        if len(size) != 2 or min(size) <= 0:
            raise DatasetError(f"{index}: \"image_size\" of {name} is {size}, expected [height, width]")
    if info.fps <= 0:
        raise DatasetError(f"{index}: \"fps\" is {info.fps}, expected a positive rate")
    seen: set[int] = set()
    for i, raw in enumerate(raw_episodes):
        label = f"{index}: episodes[{i}]"
        if not isinstance(raw, dict):
            raise DatasetError(f"{label} is {_shown(raw)}, expected an object")
        if "index" not in raw:
            raise DatasetError(f"{label} has no \"index\"")
        if type(raw["index"]) is int:
            label = f"{index}: episode {raw['index']} ({episode_file(raw['index'])})"
        episode = EpisodeInfo(**_checked_fields(EpisodeInfo, raw, label))
        for name in ("index", "length", "dropped", "bytes"):
            if getattr(episode, name) < 0:
                raise DatasetError(f"{label}: \"{name}\" is {getattr(episode, name)}, expected 0 or more")
        if episode.kind not in KINDS:
            raise DatasetError(f"{label}: \"kind\" is {episode.kind!r}, expected one of {', '.join(KINDS)}")
        if episode.index in seen:
            raise DatasetError(f"{label}: listed twice")
        seen.add(episode.index)
        info.episodes.append(episode)
    return info


def _checked_fields(cls: type, raw: dict, label: str, *, ignore_unknown: bool = False) -> dict:
    """raw's fields of the dataclass `cls`, each of exactly its annotated type (a bool is not an int, a string is
    not a number); DatasetError names the field otherwise."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "episodes"}
    unknown = sorted(set(raw) - fields)
    if unknown and not ignore_unknown:
        raise DatasetError(f"{label}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: "
                           f"{', '.join(sorted(fields))})")
    out = {}
    for name in fields & set(raw):
        if not _is(raw[name], hints[name]):
            raise DatasetError(f"{label}: \"{name}\" is {_shown(raw[name])}, expected {_type_name(hints[name])}")
        out[name] = raw[name]
    return out


def _is(value: object, hint: object) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_is(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is(k, args[0]) and _is(v, args[1]) for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:  # JSON writes 50.0 as 50.0, but a hand-edited 50 is a fine rate
        return type(value) in (int, float)
    return type(value) is hint


def _type_name(hint: object) -> str:
    return hint.__name__ if isinstance(hint, type) and not typing.get_args(hint) else str(hint)


JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object",
              type(None): "null"}


def _shown(value: object) -> str:
    return f"{json.dumps(value)[:60]} (a {JSON_NAMES.get(type(value), type(value).__name__)})"
