"""Per-episode task descriptions (LeRobot's `task`): in each episode file, in dataset.json, in tandem-inspect."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from deploy.cli import eval_main
from recording.cli import main as record_main
from recording.dataset import INDEX, Dataset, DatasetError
from recording.inspect import summary_table
from recording.reader import EpisodeReader
from robot.sim.tasks import TASK_DESCRIPTIONS, TASK_NAMES, task_description

SHORT = ["--seconds", "0.2", "--image-size", "24x32", "--raw"]


def test_tandem_record_keeps_the_description_in_the_file_the_index_and_the_summary(tmp_path):
    data = tmp_path / "d"
    assert record_main(["--dataset", str(data), "--task-description", "hand the cube over, slowly", *SHORT]) == 0
    assert record_main(["--dataset", str(data), "--seed", "1", *SHORT]) == 0  # unset: the task's own sentence

    dataset = Dataset.open(data)
    first, second = dataset.episodes()
    assert first.task_description == "hand the cube over, slowly"
    assert second.task_description == TASK_DESCRIPTIONS["transfer_cube"]
    entries = json.loads((data / INDEX).read_text())["episodes"]
    assert [e["task_description"] for e in entries] == [first.task_description, second.task_description]
    with EpisodeReader(dataset.path(first.index)) as ep:
        assert ep.task_description == "hand the cube over, slowly"
        assert ep.attrs["task_description"] == "hand the cube over, slowly"
    table = summary_table(dataset)
    assert table.splitlines()[1].split()[-1] == "task"
    assert "hand the cube over, slowly" in table and TASK_DESCRIPTIONS["transfer_cube"] in table

    # a crash between the rename and the index: the entry rebuilt from the file keeps the description
    index = json.loads((data / INDEX).read_text())
    index["episodes"] = index["episodes"][1:]
    (data / INDEX).write_text(json.dumps(index))
    with Dataset.create_or_open(data, dataset.info, say=lambda _: None) as reopened:
        assert reopened.episode(first.index).task_description == "hand the cube over, slowly"


def test_an_index_written_before_descriptions_existed_still_loads(tmp_path):
    index = {"format": "tandem-dataset", "version": 1, "rig": "sim", "fps": 50.0, "cameras": [],
             "episodes": [{"index": 0, "kind": "demo", "length": 3, "seed": 4}]}
    (tmp_path / INDEX).write_text(json.dumps(index))
    (episode,) = Dataset.open(tmp_path).episodes()
    assert episode.length == 3 and episode.task_description == ""


def test_a_description_that_is_not_a_string_is_refused_naming_the_field(tmp_path):
    index = {"format": "tandem-dataset", "version": 1, "episodes": [{"index": 0, "task_description": 7}]}
    (tmp_path / INDEX).write_text(json.dumps(index))
    with pytest.raises(DatasetError, match=r"episode 0 .*\"task_description\" is 7"):
        Dataset.open(tmp_path)


def test_defaults_every_sim_task_has_a_sentence_hardware_takes_the_datasets_task():
    assert all(task_description(task) for task in TASK_NAMES)
    assert task_description("transfer_cube", "") == ""  # an explicit empty description is kept
    assert task_description("fold the towel") == "fold the towel" and task_description("") == ""


def test_tandem_eval_keeps_the_description_in_the_episodes_it_saves(demos, checkpoint, tmp_path):
    data = tmp_path / "demos"
    shutil.copytree(demos, data)
    before = len(Dataset.open(data).episodes())
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "10",
                      "--dataset", str(data), "--keep-rollouts", "--task-description", "transfer, policy v2"]) == 0
    rollout = Dataset.open(data).episodes()[before]
    assert rollout.kind == "rollout" and rollout.task_description == "transfer, policy v2"
    with EpisodeReader(data / rollout.file) as ep:
        assert ep.task_description == "transfer, policy v2"


def test_files_without_the_attribute_read_as_empty(tmp_path):
    """ALOHA's and older files: no root attribute, an empty description, nothing refused."""
    path = tmp_path / "episode_0.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/observations/qpos", data=np.zeros((2, 14), np.float32))
        f.create_dataset("/observations/qvel", data=np.zeros((2, 14), np.float32))
        f.create_dataset("/action", data=np.zeros((2, 14), np.float32))
    with EpisodeReader(path) as ep:
        assert ep.task_description == ""
    assert Dataset.open(tmp_path).episodes()[0].task_description == ""  # the index built from the files
