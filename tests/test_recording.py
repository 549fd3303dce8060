"""Episode files: the writer, the reader (ours and ALOHA's layouts), bad files, and the dataset index."""

from __future__ import annotations

import json
import threading

import h5py
import numpy as np
import pytest
from aloha_files import CAMS, H, W, aloha_compressed, aloha_raw, scene

from recording.dataset import Dataset, DatasetError, DatasetInfo, DatasetLockedError, EpisodeInfo
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.writer import EpisodeWriteError, EpisodeWriter, StepRecord, partial_path


def record(step: int, cams=CAMS) -> StepRecord:
    row = np.arange(14, dtype=np.float32) * 0.01 + step
    return StepRecord(t=0.02 * step, qpos=row, qvel=row * 2, effort=row * 3, action=row + 0.5,
                      images={c: scene(step, i) for i, c in enumerate(cams)},
                      image_t={c: 0.02 * step - 0.001 for c in cams}, intervention=step % 3 == 0)


def write_episode(path, steps: int = 20, compress: bool = False, **attrs):
    with EpisodeWriter(path, dict.fromkeys(CAMS, (H, W)), compress=compress, attrs=attrs) as writer:
        for i in range(steps):
            assert writer.append(record(i))
        return writer.close()


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "jpeg"])
def test_an_episode_round_trips(tmp_path, compress):
    path = tmp_path / "episode_0.hdf5"
    summary = write_episode(path, compress=compress, kind="demo", fps=50.0)
    assert summary.steps == 20 and summary.dropped == 0 and path.exists()
    assert not partial_path(path).exists()
    with EpisodeReader(path) as ep:
        assert (ep.length, ep.dim, ep.camera_names, ep.compressed) == (20, 14, CAMS, compress)
        expected = np.stack([record(i).action for i in range(20)])
        assert ep.action.dtype == np.float32 and np.array_equal(ep.action, expected)
        assert np.array_equal(ep.qpos, np.stack([record(i).qpos for i in range(20)]))
        assert np.array_equal(ep.array("/observations/effort")[5], record(5).effort)
        assert np.all(np.diff(ep.array("/timestamps/control")) > 0)
        assert np.all(np.diff(ep.array("/timestamps/cam_low")) > 0)
        assert ep.array("/intervention").tolist() == [i % 3 == 0 for i in range(20)]
        assert ep.attrs["kind"] == "demo" and ep.attrs["fps"] == 50.0 and ep.attrs["compress"] == compress
        for step in (0, 7, 19):
            for i, cam in enumerate(CAMS):
                image = ep.image(cam, step)
                assert image.shape == (H, W, 3) and image.dtype == np.uint8
                error = np.abs(image.astype(int) - scene(step, i)).mean()
                assert error == 0 if not compress else error < 6, (cam, step, error)
        if compress:
            lengths = ep.array("/compress_len")
            assert lengths.shape == (4, 20)
            for i, cam in enumerate(CAMS):  # each camera's rows are padded to its longest JPEG, no more
                assert ep._file[f"/observations/images/{cam}"].shape[1] == lengths[i].max()


class StalledRow:
    """A qpos row whose conversion waits for `release`: a disk that stalls while the loop runs on."""

    def __init__(self, row: np.ndarray) -> None:
        self.row, self.release = row, threading.Event()

    def __array__(self, dtype=None, copy=None):
        assert self.release.wait(10)
        return self.row.astype(dtype or self.row.dtype)


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    writer = EpisodeWriter(tmp_path / "episode_0.hdf5", dict.fromkeys(CAMS, (H, W)), queue_size=2)
    first = record(0)
    first.qpos = stalled = StalledRow(first.qpos)
    results = [writer.append(first)] + [writer.append(record(i)) for i in range(1, 20)]
    stalled.release.set()
    summary = writer.close()
    assert summary.dropped == results.count(False) > 0
    assert summary.steps == results.count(True)
    assert summary.queue_high_water <= 2
    with EpisodeReader(summary.path) as ep:
        assert ep.length == summary.steps and ep.attrs["dropped_steps"] == summary.dropped


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    writer = EpisodeWriter(path, dict.fromkeys(CAMS, (H, W)))
    writer.append(record(0, cams=CAMS[:2]))  # two cameras missing
    with pytest.raises(EpisodeWriteError, match="step 0 has no image from cam_left_wrist, cam_right_wrist"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_episode_is_never_overwritten(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    write_episode(path, steps=2)
    with pytest.raises(FileExistsError, match="episode_0.hdf5"):
        EpisodeWriter(path, {})


def test_aloha_raw_and_act_sim_files_are_read(tmp_path):
    aloha_raw(tmp_path / "episode_0.hdf5")
    aloha_raw(tmp_path / "episode_1.hdf5", cams=("top",), effort=False)  # ACT's simulated episodes
    with EpisodeReader(tmp_path / "episode_0.hdf5") as ep:
        assert ep.camera_names == tuple(sorted(CAMS)) and not ep.compressed
        assert np.array_equal(ep.image("cam_low", 3), scene(3, 1))
        assert ep.action[2, 0] == 29
    with EpisodeReader(tmp_path / "episode_1.hdf5") as ep:
        assert ep.camera_names == ("top",) and ep.optional("/observations/effort") is None
    dataset = Dataset.open(tmp_path)  # no dataset.json: indexed from the files
    assert [e.index for e in dataset.episodes()] == [0, 1] and dataset.episodes()[0].length == 10


def test_aloha_compressed_files_are_read(tmp_path):
    aloha_compressed(tmp_path / "episode_0.hdf5")
    with EpisodeReader(tmp_path / "episode_0.hdf5") as ep:
        assert ep.compressed and ep.image_size("cam_high") == (H, W)
        assert np.abs(ep.image("cam_right_wrist", 4).astype(int) - scene(4, 3)).mean() < 6


# -- bad files ---------------------------------------------------------------------------------------
def test_a_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    write_episode(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match="episode_0.hdf5.*(truncated|corrupt)"):
        with EpisodeReader(path) as ep:
            ep.image("cam_right_wrist", 19)


def test_a_missing_dataset_is_named(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    write_episode(path, steps=3)
    with h5py.File(path, "a") as f:
        del f["/action"]
    with pytest.raises(EpisodeFormatError, match=r"episode_0.hdf5: /action: missing"):
        EpisodeReader(path)


@pytest.mark.parametrize("dataset, shape, message", [
    ("/observations/qvel", (5, 14), "has 5 steps, /observations/qpos has 3"),
    ("/observations/images/cam_low", (3, H, W), r"shape \(3, 48, 64\), expected \(T, H, W, 3\)"),
    ("/observations/qpos", (3,), r"shape \(3,\), expected \(T, dim\)"),
])
def test_wrong_shapes_are_named(tmp_path, dataset, shape, message):
    path = tmp_path / "episode_0.hdf5"
    write_episode(path, steps=3)
    with h5py.File(path, "a") as f:
        dtype = f[dataset].dtype
        del f[dataset]
        f.create_dataset(dataset, shape, dtype=dtype)
    with pytest.raises(EpisodeFormatError, match=f"episode_0.hdf5: {dataset}: {message}"):
        EpisodeReader(path)


def test_not_hdf5_at_all(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    path.write_text("hello")
    with pytest.raises(EpisodeFormatError, match="episode_0.hdf5: not a readable HDF5 file"):
        EpisodeReader(path)


# -- the dataset index ---------------------------------------------------------------------------------
def info(**changes) -> DatasetInfo:
    base = DatasetInfo(rig="sim", calibration="abc", fps=50.0, cameras=list(CAMS),
                       image_size={c: [H, W] for c in CAMS}, compress=True, task="transfer_cube")
    for k, v in changes.items():
        setattr(base, k, v)
    return base


def test_dataset_index_is_kept_and_checked(tmp_path):
    root = tmp_path / "data"
    dataset = Dataset.create_or_open(root, info())
    assert dataset.next_index() == 0
    write_episode(dataset.path(0), steps=3)
    dataset.add(EpisodeInfo(0, "demo", 3, success=True, seed=4))
    assert dataset.next_index() == 1
    with pytest.raises(DatasetLockedError, match="this process .* already has it open for writing"):
        Dataset.create_or_open(root, info())  # two writers in one process are two writers
    dataset.close()
    again = Dataset.create_or_open(root, info())
    assert again.episode(0).success is True and again.episode(0).seed == 4
    assert json.loads((root / "dataset.json").read_text())["episodes"][0]["kind"] == "demo"
    again.close()
    with pytest.raises(DatasetError, match=r"cameras: the dataset has .*cam_high.*this session \['cam_high'\]"):
        Dataset.create_or_open(root, info(cameras=["cam_high"]))
    again = Dataset.create_or_open(root, info())
    with pytest.raises(DatasetError, match="no episode 7"):
        again.episode(7)
    partial_path(dataset.path(1)).write_bytes(b"half an episode")
    assert [p.name for p in again.remove_partials()] == [".episode_1.hdf5.partial"]
    again.remove(0)
    assert not dataset.path(0).exists() and Dataset.open(root).episodes() == []


def test_a_bad_index_is_named(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset.json: not valid JSON"):
        Dataset.open(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        Dataset.open(tmp_path / "nowhere")
