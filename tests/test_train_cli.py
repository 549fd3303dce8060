"""tandem-train as a newcomer meets it: it says what it does, refuses to replace a run by accident, stops cleanly on
Ctrl-C, and its run folder is what deploy takes. A tiny ACT on two 1 s episodes recorded on the simulated rig."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from policies.checkpoint import OPTIMIZER_FILE, CheckpointError, load_checkpoint, read_meta
from policies.cli import main as train_main
from recording.cli import main as record_main

TINY = ["--preset", "tiny", "--workers", "0", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_cli") / "demos"
    assert record_main(["--dataset", str(root), "--episodes", "2", "--seconds", "1", "--image-size", "48x64"]) == 0
    return root


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory) -> tuple[Path, str]:
    """A finished three-step run (validated at steps 2 and 3) and what it printed."""
    out = tmp_path_factory.mktemp("train_cli_run") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = train_main(["--dataset", str(dataset), "--out", str(out), *TINY, "--steps", "3", "--log-every", "2",
                           "--val-every", "2"])
    assert code == 0, printed.getvalue()
    return out, printed.getvalue()


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_training_says_what_it_does(run):
    out, printed = run
    assert re.search(r"^device cpu, \d+ threads, fp32$", printed, re.M), printed
    assert "1 training episode(s), 50 frames; 1 validation episode(s), 50 frames" in printed
    assert re.search(r"^policy act: [\d.]+M parameters", printed, re.M), printed
    # --no-progress: the first step, every --log-every steps and the last, each with loss, rate and ETA
    steps = re.findall(r"^step (\d+)/3: loss [\d.]+, [\d.]+ steps/s \([\d.]+ samples/s\), ETA \S+$", printed, re.M)
    assert steps == ["1", "2", "3"], printed
    assert "step 2: validation loss" in printed and f"saved {out / 'best'}" in printed
    assert re.search(rf"^done: step 3, .*saved {re.escape(str(out / 'last'))}", printed, re.M), printed


def test_best_is_saved_without_the_optimizer_state(run):
    out, _ = run
    assert not (out / "best" / OPTIMIZER_FILE).exists()
    assert (out / "last" / OPTIMIZER_FILE).is_file() and read_meta(out / "last").step == 3


def test_a_run_folder_is_accepted_where_a_checkpoint_is_expected(run, tmp_path):
    out, _ = run
    checkpoint = load_checkpoint(out)
    assert checkpoint.path == out / "best" and "best" in checkpoint.note
    assert load_checkpoint(out / "best").note is None  # a checkpoint folder itself: no note
    only_last = tmp_path / "only_last"
    shutil.copytree(out / "last", only_last / "last")
    checkpoint = load_checkpoint(only_last)
    assert checkpoint.path == only_last / "last" and "no best/" in checkpoint.note
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint .* and not a training run"):
        load_checkpoint(tmp_path / "empty")


def test_an_existing_run_is_refused_without_resume_or_overwrite(run, dataset, tmp_path, capsys):
    out = _copy(run[0], tmp_path)
    before = _snapshot(out)
    assert train_main(["--dataset", str(dataset), "--out", str(out), *TINY, "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err and "--overwrite" in err, err
    assert _snapshot(out) == before  # untouched


def test_overwrite_starts_again(run, dataset, tmp_path, capsys):
    out = _copy(run[0], tmp_path)
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 999, "loss": 1.0}) + "\n")  # a line only the old run has
    assert train_main(["--dataset", str(dataset), "--out", str(out), *TINY, "--steps", "1", "--overwrite"]) == 0
    assert "--overwrite: deleted best, last, metrics.jsonl" in capsys.readouterr().out
    assert read_meta(out / "last").step == 1 and read_meta(out / "best").step == 1
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 1]


@pytest.mark.parametrize("steps", ["3", "2"])
def test_resume_with_no_steps_left_has_nothing_to_do(run, dataset, tmp_path, capsys, steps):
    out = _copy(run[0], tmp_path)
    before = _snapshot(out)
    assert train_main(["--dataset", str(dataset), "--out", str(out), *TINY, "--steps", steps, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "nothing to do" in printed and "step 3" in printed and "nan" not in printed, printed
    assert _snapshot(out) == before


def test_a_file_as_dataset_says_it_is_a_file(dataset, tmp_path, capsys):
    episode = dataset / "episode_0.hdf5"
    with pytest.raises(SystemExit) as exit_:
        train_main(["--dataset", str(episode), "--out", str(tmp_path / "run"), *TINY])
    assert exit_.value.code == 2
    assert f"{episode} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--steps", "0"], ["--steps", "ten"], ["--no-such-flag"], ["--val-fraction", "1"],
                                   ["--resume", "--overwrite"], ["--batch-size", "-4"]],
                         ids=["steps-0", "steps-word", "unknown", "val-fraction-1", "resume-and-overwrite",
                              "negative-batch"])
def test_a_bad_flag_is_a_usage_error(dataset, tmp_path, flags):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--dataset", str(dataset), "--out", str(tmp_path / "run"), *TINY, *flags])
    assert exit_.value.code == 2
    assert not (tmp_path / "run").exists()


def test_help_states_each_presets_real_cameras(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "cpu cam_high;" in text and "tiny cam_high" in text
    assert "(default: None)" not in text


def test_one_episode_warns_there_is_no_validation_and_the_cache_says_its_progress(dataset, tmp_path, capsys,
                                                                                   caplog):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(dataset / "episode_0.hdf5", one)  # no dataset.json: indexed from the file
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert train_main(["--dataset", str(one), "--out", str(out), *TINY, "--steps", "1", "--cache-images"]) == 0
    assert any("only 1" in r.getMessage() and "no validation" in r.getMessage() for r in caplog.records)
    printed = capsys.readouterr().out
    assert f"image cache in {one / '.cache'}: 1 episode(s)" in printed
    assert "image cache: episode 0 ready (1/1" in printed
    assert read_meta(out / "best").step == 1  # with nothing to validate on, best/ is the last step


def _tandem_train() -> list[str]:
    script = shutil.which("tandem-train")
    return [script] if script else [sys.executable, "-m", "policies.cli"]


def test_ctrl_c_saves_last_and_says_so(dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*_tandem_train(), "--dataset", str(dataset), "--out", str(out), *TINY,
                             "--steps", "100000", "--log-every", "1000", "--save-every", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        printed = []
        for line in proc.stdout:
            printed.append(line)
            if line.startswith("step 1/"):
                break
        assert printed and printed[-1].startswith("step 1/"), "".join(printed) + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    step = read_meta(out / "last").step
    assert step >= 1
    assert f"interrupted at step {step}; saved {out / 'last'} at step {step}" in err, err
    assert "Traceback" not in err, err
    load_checkpoint(out / "last")  # complete: it loads
