"""Dataset integrity: one writer per folder, the index reconciled with the files, strict dataset.json, episode
errors that name the file and row, tandem-inspect checking every file, and a full disk handled as it happens."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from aloha_files import CAMS, H, W, scene

from calibration.connection import connect
from policies.dataset import load_episodes
from recording.dataset import Dataset, DatasetError, DatasetInfo, DatasetLockedError, EpisodeInfo
from recording.inspect import main as inspect_main
from recording.keyed import KeyedRecording
from recording.layout import StateLayout
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.session import RecordOptions, warn_if_low_space
from recording.writer import EpisodeWriteError, EpisodeWriter, StepRecord, partial_path
from robot.cameras import Frame
from robot.clock import RealClock
from robot.loop import ControlLoop
from robot.rig import load_rig
from robot.sim.virtual_rig import virtual_buses
from teleop.controller import TeleopController

STATE_NAMES = [f"joint_{i}" for i in range(14)]


def info(**changes) -> DatasetInfo:
    base = DatasetInfo(rig="sim", calibration="abc", fps=50.0, cameras=list(CAMS),
                       image_size={c: [H, W] for c in CAMS}, compress=False, task="transfer_cube")
    for k, v in changes.items():
        setattr(base, k, v)
    return base


def step(i: int, action: np.ndarray | None = None) -> StepRecord:
    row = np.arange(14, dtype=np.float32) * 0.01 + i
    return StepRecord(t=0.02 * i, qpos=row, qvel=row, effort=row, action=row + 0.5 if action is None else action,
                      images={c: scene(i, k) for k, c in enumerate(CAMS)}, image_t={c: 0.02 * i for c in CAMS})


def write(path: Path, steps: int = 20, nan_at: tuple[int, int] | None = None, **attrs) -> None:
    with EpisodeWriter(path, dict.fromkeys(CAMS, (H, W)), attrs={"state_names": STATE_NAMES, **attrs}) as writer:
        for i in range(steps):
            action = None
            if nan_at and nan_at[0] == i:
                action = np.zeros(14, np.float32)
                action[nan_at[1]] = np.nan
            writer.append(step(i, action))
        writer.close()


def recorded(root: Path, episodes: int = 2, steps: int = 20) -> Dataset:
    """A dataset folder with `episodes` good episodes, its write lock given back."""
    with Dataset.create_or_open(root, info()) as dataset:
        for index in range(episodes):
            write(dataset.path(index), steps)
            dataset.add(EpisodeInfo(index, "demo", steps))
    return Dataset.open(root)


# -- one writer per folder ---------------------------------------------------------------------------------
OPEN_AND_HOLD = textwrap.dedent("""
    import sys
    from recording.dataset import Dataset, DatasetInfo, DatasetLockedError
    try:
        dataset = Dataset.create_or_open(sys.argv[1], DatasetInfo(**__import__("json").loads(sys.argv[2])))
    except DatasetLockedError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    print("holding", flush=True)
    if sys.argv[3] == "hold":
        sys.stdin.read()  # until the test closes our stdin (or kills us)
""")


def other_writer(root: Path, mode: str = "once") -> subprocess.Popen:
    settings = json.dumps({k: v for k, v in info().__dict__.items() if k != "episodes"})
    return subprocess.Popen([sys.executable, "-c", OPEN_AND_HOLD, str(root), settings, mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_writer_process_is_refused_naming_the_holder(tmp_path):
    root = tmp_path / "d"
    dataset = Dataset.create_or_open(root, info())
    live = partial_path(dataset.path(0))
    live.write_bytes(b"an episode being written right now")
    second = other_writer(root)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 3, err
    assert f"pid {os.getpid()}" in err and "another process is writing this dataset" in err and str(root) in err
    assert live.exists()  # the refused process did not take our live episode for a crash's leftover
    dataset.close()
    again = other_writer(root)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0 and "holding" in out, err


def test_a_killed_holder_does_not_block(tmp_path):
    root = tmp_path / "d"
    holder = other_writer(root, "hold")
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(DatasetLockedError, match=rf"pid {holder.pid} on .*, since .*: -c "):
            Dataset.create_or_open(root, info())
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    with Dataset.create_or_open(root, info(), say=lambda _: None) as dataset:  # the kernel dropped the lock
        assert dataset.writable


def test_a_reader_needs_no_lock_and_cannot_write(tmp_path):
    root = tmp_path / "d"
    with Dataset.create_or_open(root, info()):
        reader = Dataset.open(root)  # training, inspect, replay while a recorder runs
        assert reader.episodes() == []
        with pytest.raises(DatasetError, match="opened for reading, cannot remove unfinished episodes"):
            reader.remove_partials()
        with pytest.raises(DatasetError, match="opened for reading, cannot write dataset.json"):
            reader.add(EpisodeInfo(0))


# -- the index reconciled with the files -------------------------------------------------------------------
def test_an_episode_renamed_but_never_indexed_is_added_back(tmp_path, capsys):
    root = tmp_path / "d"
    recorded(root, episodes=1)
    with Dataset.create_or_open(root, info()) as dataset:
        # what a kill between the writer's rename and Dataset.add leaves
        write(dataset.path(1), steps=7, kind="correction", seed=4, success=1, achieved_fps=49.5, checkpoint="c.pt",
              rollout=0, dropped_steps=2)
    assert [e.index for e in Dataset.open(root).episodes()] == [0]
    assert inspect_main(["--dataset", str(root)]) == 1
    assert "episode_1.hdf5: not in dataset.json: a complete episode (7 steps)" in capsys.readouterr().out
    said = []
    with Dataset.create_or_open(root, info(), say=said.append) as dataset:
        episode = dataset.episode(1)
        assert (episode.kind, episode.length, episode.seed, episode.success, episode.fps, episode.checkpoint,
                episode.rollout, episode.dropped) == ("correction", 7, 4, True, 49.5, "c.pt", 0, 2)
    assert len(said) == 1 and "episode_1.hdf5: a complete correction episode (7 steps) missing from dataset.json" \
        in said[0] and "added back" in said[0]
    assert Dataset.open(root).episode(1).length == 7  # saved in the index
    assert inspect_main(["--dataset", str(root)]) == 0


def test_an_index_entry_without_its_file_is_reported_and_dropped(tmp_path, capsys):
    root = tmp_path / "d"
    recorded(root, episodes=3)
    (root / "episode_1.hdf5").unlink()
    assert inspect_main(["--dataset", str(root)]) == 1
    captured = capsys.readouterr()
    assert "episode_1.hdf5: missing: dataset.json lists it (demo, 20 steps)" in captured.out
    assert "episode_1.hdf5" in captured.err
    said = []
    with Dataset.create_or_open(root, info(), say=said.append) as dataset:
        assert [e.index for e in dataset.episodes()] == [0, 2]
    assert said == [f"{root / 'dataset.json'}: lists episode_1.hdf5 (demo, 20 steps) but the file is gone; dropped "
                    "from the index"]


def test_an_unreadable_unlisted_file_is_reported_and_left(tmp_path):
    root = tmp_path / "d"
    recorded(root, episodes=1)
    (root / "episode_5.hdf5").write_bytes(b"garbage")
    said = []
    with Dataset.create_or_open(root, info(), say=said.append) as dataset:
        assert [e.index for e in dataset.episodes()] == [0] and dataset.next_index() == 6
    assert len(said) == 1 and "episode_5.hdf5: not in dataset.json and not a readable episode" in said[0]
    assert (root / "episode_5.hdf5").exists()


# -- strict dataset.json -----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda d: d["episodes"][0].update(index="one"), r'episodes\[0\]: "index" is "one" \(a string\), expected int'),
    (lambda d: d["episodes"][1].update(length=True),
     r'episode 1 \(episode_1.hdf5\): "length" is true \(a boolean\), expected int'),
    (lambda d: d["episodes"][1].update(length="20"), r'episode 1 .*"length" is "20" \(a string\), expected int'),
    (lambda d: d["episodes"][0].update(success="yes"), r'episode 0 .*"success" is "yes" .*expected bool \| None'),
    (lambda d: d["episodes"][0].update(kind="demonstration"), r'episode 0 .*"kind" is .demonstration., expected one'),
    (lambda d: d["episodes"][0].update(lenght=3), r"episode 0 .*unknown field lenght"),
    (lambda d: d["episodes"][1].update(index=0), r"episode 0 .*listed twice"),
    (lambda d: d["episodes"][1].update(length=-2), r'episode 1 .*"length" is -2, expected 0 or more'),
    (lambda d: d.update(fps="50"), r'"fps" is "50" \(a string\), expected float'),
    (lambda d: d.update(cameras="cam_high"), r'"cameras" is "cam_high" \(a string\), expected list\[str\]'),
    (lambda d: d.update(image_size={"cam_high": [48]}), r'"image_size" of cam_high is \[48\], expected \[height'),
    (lambda d: d.update(compress=1), r'"compress" is 1 \(an? integer\), expected bool'),
    (lambda d: d.update(episodes={}), r'"episodes" is \{\} \(an? object\), expected a list'),
    (lambda d: d.update(version=99), r'"version" is 99'),
])
def test_dataset_json_fields_are_checked_exactly(tmp_path, change, message):
    root = tmp_path / "d"
    recorded(root)
    data = json.loads((root / "dataset.json").read_text())
    change(data)
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message) as raised:
        Dataset.open(root)
    assert str(root / "dataset.json") in str(raised.value)
    with pytest.raises(DatasetError, match=message):
        Dataset.create_or_open(root, info())
    assert inspect_main(["--dataset", str(root)]) == 1


def test_a_whole_number_rate_is_a_rate(tmp_path):
    root = tmp_path / "d"
    recorded(root)
    data = json.loads((root / "dataset.json").read_text())
    data["fps"] = 50
    (root / "dataset.json").write_text(json.dumps(data))
    assert Dataset.open(root).info.fps == 50


# -- episode errors that name the file, the dataset and the row --------------------------------------------
def narrow_qpos(path: Path, all_state: bool = False) -> None:
    with h5py.File(path, "a") as f:
        for name in ("qpos", "qvel", "effort") if all_state else ("qpos",):
            data = f[f"/observations/{name}"][:, :13]
            del f[f"/observations/{name}"]
            f[f"/observations/{name}"] = data
        if all_state:
            del f.attrs["state_names"]


def test_a_13_column_qpos_is_named(tmp_path, capsys):
    root = tmp_path / "d"
    dataset = recorded(root, episodes=3)
    narrow_qpos(dataset.path(1))
    with pytest.raises(EpisodeFormatError, match=r"episode_1.hdf5: /observations/qpos: has 13 columns, expected 14"):
        EpisodeReader(dataset.path(1))
    narrow_qpos(dataset.path(2), all_state=True)  # consistent inside the file, not with the dataset
    with pytest.raises(EpisodeFormatError, match=r"episode_2.hdf5: /observations/qpos: has 13 columns, expected "
                                                 r"14 as in episode_0.hdf5"):
        load_episodes(dataset, [0, 2])
    assert inspect_main(["--dataset", str(root)]) == 1
    out = capsys.readouterr().out
    assert "episode_0.hdf5: ok" in out
    assert "episode_1.hdf5: bad:" in out and "has 13 columns, expected 14 (the file's state_names)" in out
    assert "episode_2.hdf5: bad:" in out and "has 13 columns, expected 14 as the dataset's other episodes" in out


def test_a_nan_action_is_refused_in_training_naming_the_file_and_row(tmp_path, capsys):
    root = tmp_path / "d"
    with Dataset.create_or_open(root, info()) as dataset:
        write(dataset.path(0))
        dataset.add(EpisodeInfo(0, "demo", 20))
        write(dataset.path(1), nan_at=(17, 4))
        dataset.add(EpisodeInfo(1, "demo", 20))
    with pytest.raises(EpisodeFormatError, match=r"episode_1.hdf5: /action: row 17 column 4 is NaN"):
        load_episodes(Dataset.open(root), [0, 1])
    assert inspect_main(["--dataset", str(root)]) == 1
    assert "episode_1.hdf5: bad:" in capsys.readouterr().out


# -- tandem-inspect opens every file -----------------------------------------------------------------------
def test_inspect_passes_a_good_dataset(tmp_path, capsys):
    root = tmp_path / "d"
    recorded(root, episodes=2)
    assert inspect_main(["--dataset", str(root)]) == 0
    out = capsys.readouterr().out
    assert "episode_0.hdf5: ok" in out and "episode_1.hdf5: ok" in out


def _shorten(path: Path) -> None:
    """A file that is well formed but holds fewer steps than the index says."""
    with EpisodeReader(path) as ep:
        arrays = {name: ep.array(name)[:5] for name in ("/observations/qpos", "/observations/qvel",
                                                        "/observations/effort", "/action")}
        images = {c: np.stack([ep.image(c, i) for i in range(5)]) for c in ep.camera_names}
    with h5py.File(path, "a") as f:
        for name, data in {**arrays, **{f"/observations/images/{c}": v for c, v in images.items()}}.items():
            del f[name]
            f[name] = data


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_bytes(os.urandom(4096)), "not a readable HDF5 file"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    (lambda p: p.unlink(), "missing: dataset.json lists it"),
    (_shorten, "has 5 steps, dataset.json says 20"),
], ids=["garbage", "truncated", "missing", "shorter-than-indexed"])
def test_inspect_fails_on_a_bad_file_naming_it(tmp_path, capsys, damage, problem):
    root = tmp_path / "d"
    recorded(root, episodes=3)
    damage(root / "episode_1.hdf5")
    assert inspect_main(["--dataset", str(root)]) == 1
    captured = capsys.readouterr()
    lines = {line.split(": ", 1)[0].strip(): line for line in captured.out.splitlines() if ".hdf5: " in line}
    assert lines["episode_0.hdf5"].endswith(": ok") and lines["episode_2.hdf5"].endswith(": ok")
    assert problem in lines["episode_1.hdf5"], captured.out
    assert "1 episode file(s) need attention: episode_1.hdf5" in captured.err


# -- a full disk -------------------------------------------------------------------------------------------
def run_with_file_size_limit(command: list[str], limit_bytes: int, timeout_s: float = 240,
                             **kwargs) -> subprocess.CompletedProcess:
    """Run `command` where no file may grow past `limit_bytes`: writes then fail with EFBIG, a real write
    failure through h5py, as on a full disk (SIGXFSZ ignored, so the process sees the error, not the signal)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an ignored signal stays ignored across exec

    return subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=timeout_s, **kwargs)


WRITE_TWO_EPISODES = textwrap.dedent("""
    import sys
    import time
    import numpy as np
    from recording.dataset import Dataset, DatasetInfo, EpisodeInfo
    from recording.writer import EpisodeWriteError, EpisodeWriter, StepRecord

    cams, (h, w) = ("a", "b"), (96, 128)
    info = DatasetInfo(rig="sim", cameras=list(cams), image_size={c: [h, w] for c in cams}, compress=False)
    dataset = Dataset.create_or_open(sys.argv[1], info)
    rng = np.random.default_rng(0)
    for index, steps in ((0, 5), (1, 400)):
        writer = EpisodeWriter(dataset.path(index), dict.fromkeys(cams, (h, w)))
        try:
            for i in range(steps):
                row = np.zeros(14, np.float32)
                images = {c: rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for c in cams}
                while writer.steps_written < i - 1 and not writer.failed:  # a step in flight at most, as at 50 Hz
                    time.sleep(0.001)
                writer.append(StepRecord(0.02 * i, row, row, row, row, images=images))
            summary = writer.close()
        except EpisodeWriteError as exc:
            writer.discard()
            print(f"appended {i} {exc}", file=sys.stderr)
            sys.exit(1)
        dataset.add(EpisodeInfo(index, "demo", summary.steps))
""")


def test_a_write_failure_reaches_the_caller_within_a_step(tmp_path):
    root = tmp_path / "d"
    result = run_with_file_size_limit([sys.executable, "-c", WRITE_TWO_EPISODES, str(root)], 1_000_000)
    assert result.returncode == 1, result.stderr  # an exit, not a signal (segfault: -11)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip()
    appended, failed_at = int(line.split()[1]), int(line.split(" at step ")[1].split()[0])
    assert appended - failed_at <= 2, line  # raised by append within a step or two of the failed write
    assert "episode_1.hdf5: writing the episode failed" in line and "File too large" in line and "free" in line
    assert sorted(p.name for p in root.iterdir()) == [".lock", "dataset.json", "episode_0.hdf5"]
    with EpisodeReader(root / "episode_0.hdf5") as ep:
        assert ep.length == 5 and ep.image("b", 4).shape == (96, 128, 3)
    assert [e.index for e in Dataset.open(root).episodes()] == [0]


def test_tandem_record_on_a_full_disk_exits_1_with_one_line(tmp_path):
    root = tmp_path / "d"
    record = [sys.executable, "-m", "recording.cli", "--rig", "sim", "--task", "transfer_cube", "--dataset",
              str(root), "--image-size", "120x160"]
    first = subprocess.run([*record, "--episodes", "1", "--seconds", "0.2"], capture_output=True, text=True,
                           timeout=240)
    assert first.returncode == 0, first.stderr
    result = run_with_file_size_limit([*record, "--episodes", "3", "--seconds", "2"], 400_000)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("tandem-record: "), result.stderr
    assert "episode_1.hdf5: writing the episode failed" in errors[0] and "File too large" in errors[0]
    assert f"{root} has " in errors[0] and " free" in errors[0]
    assert sorted(p.name for p in root.iterdir()) == [".lock", "dataset.json", "episode_0.hdf5"]
    with EpisodeReader(root / "episode_0.hdf5") as ep:
        assert ep.length == 10 and ep.image("cam_high", 9).shape == (120, 160, 3)
    assert [e.index for e in Dataset.open(root).episodes()] == [0]


def test_low_free_space_is_warned_at_start(tmp_path):
    huge = {c: [100_000, 100_000] for c in CAMS}  # 120 GB a frame: no disk holds three episodes
    said = []
    with Dataset.create_or_open(tmp_path / "d", info(image_size=huge), say=said.append) as dataset:
        warn_if_low_space(dataset, steps=50, episodes=1, say=said.append)
        assert len(said) == 1 and said[0].startswith(f"warning: {dataset.root} has ") and "room for about 0" in said[0]
    said.clear()
    with Dataset.create_or_open(tmp_path / "e", info(), say=said.append) as dataset:
        warn_if_low_space(dataset, steps=50, episodes=1, say=said.append)  # 48x64: fits
    assert said == []


# -- the operator's session at a (virtual) hardware rig ----------------------------------------------------------
class BrokenCamera:
    """A camera that starts delivering frames of the wrong size: the writer thread's write fails."""

    name = "cam_high"

    def __init__(self, good_frames: int) -> None:
        self.index, self.good_frames = 0, good_frames

    def latest(self) -> Frame:
        self.index += 1
        size = (24, 32) if self.index <= self.good_frames else (12, 16)
        return Frame(np.full((*size, 3), self.index % 256, np.uint8), time.perf_counter(), self.index)


def test_a_failed_write_ends_a_keyed_session_and_discards_only_that_episode(tmp_path):
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=tmp_path / "cal")
    with virtual_buses(rig) as (live, _), connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
        dataset = Dataset.create_or_open(tmp_path / "d", info(cameras=["cam_high"], image_size={"cam_high": [24, 32]}))
        loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(), RealClock(),
                           rate_hz=50.0)
        script = {2: ["space"], 20: ["space"]}  # episode 0: 10 good frames; episode 1 breaks at its 3rd
        session = KeyedRecording(dataset, StateLayout.from_connected(connected), {"cam_high": BrokenCamera(12)},
                                 RecordOptions(compress=False, min_rate_ratio=0.1), episodes=2, steps=10,
                                 rate_hz=50.0, keys=lambda: script.get(loop.index - 1, []), leader_grippers=None,
                                 say=lambda _: None)
        loop.observers.append(session)
        with pytest.raises(EpisodeWriteError, match=r"episode_1.hdf5: writing the episode failed at step 2 .*"
                                                    "discarded"):
            try:
                loop.run(session.until, max_steps=400)
            finally:
                session.close()
                loop.close()
                dataset.close()
    assert session.saved == [0] and session.slot is None
    assert sorted(p.name for p in dataset.root.iterdir()) == [".lock", "dataset.json", "episode_0.hdf5"]
    assert [(e.index, e.length) for e in Dataset.open(dataset.root).episodes()] == [(0, 10)]


def test_a_crash_while_discarding_an_episode_never_brings_it_back(tmp_path, monkeypatch):
    """remove() deletes the file before the index entry: a crash between the two leaves an entry without a file,
    which the next writer drops; the discarded episode is not added back."""
    root = tmp_path / "data"
    recorded(root, episodes=1)
    with Dataset.create_or_open(root, info()) as dataset:
        def crash() -> None:
            raise KeyboardInterrupt
        monkeypatch.setattr(dataset, "save", crash)
        with pytest.raises(KeyboardInterrupt):
            dataset.remove(0)
    said = []
    with Dataset.create_or_open(root, info(), say=said.append) as reopened:
        assert reopened.episodes() == [] and not (root / "episode_0.hdf5").exists()
    assert any("episode_0.hdf5" in line for line in said), said
