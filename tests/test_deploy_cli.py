"""tandem-eval and tandem-deploy as commands: exit codes, progress, Ctrl-C, the honest gated report, checks that
refuse before start-up, render settings, and the DAgger round's report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

import robot.rig
from deploy.cli import deploy_main, eval_main
from deploy.evaluate import EpisodeOutcome, EvalReport
from deploy.render import render_settings
from deploy.round_report import main as round_report_main
from recording.dataset import Dataset, DatasetInfo

SIM_YAML = (Path(robot.rig.__file__).parent / "rigs" / "sim.yaml").read_text()
RIG_CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


# -- exit codes ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--rig", "no_such_rig.yaml"], ["--no-such-flag"], ["--episodes", "0"],
                                  ["--episode-steps", "-3"]],
                         ids=["missing-rig-file", "bad-flag", "zero-episodes", "negative-steps"])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_main(["--checkpoint", "whatever", *argv])
    assert exit_info.value.code == 2
    assert "tandem-eval: error:" in capsys.readouterr().err


def test_a_runtime_error_exits_1_with_one_line_naming_the_command(tmp_path, capsys):
    assert eval_main(["--checkpoint", str(tmp_path / "nothing_here")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tandem-eval: no checkpoint directory at {tmp_path / 'nothing_here'}"]


def test_eval_refuses_a_hardware_rig_as_a_usage_error(checkpoint, capsys):
    threads = torch.get_num_threads()  # a hardware rig leaves a core to the loop: restore for the next tests
    try:
        assert eval_main(["--rig", "aloha", "--checkpoint", str(checkpoint)]) == 2
    finally:
        torch.set_num_threads(threads)
    assert "tandem-eval runs on the simulated rig" in capsys.readouterr().err


# -- checks before start-up ---------------------------------------------------------------------------------------
def test_a_camera_mismatch_is_refused_before_the_world_starts_and_lists_the_rig_cameras(checkpoint, tmp_path,
                                                                                        capsys):
    rig = tmp_path / "no_high.yaml"
    rig.write_text(SIM_YAML.replace("  cam_high: {device: sim, width: 640, height: 480, fps: 50}\n", ""))
    run = checkpoint.parent  # the training run folder stands for its checkpoint
    assert deploy_main(["--rig", str(rig), "--checkpoint", str(run), "--task", "transfer_cube"]) == 1
    captured = capsys.readouterr()
    assert "was trained with cameras [cam_high]" in captured.err, captured.err
    assert "has [cam_low, cam_left_wrist, cam_right_wrist] (missing: cam_high)" in captured.err, captured.err
    # the run folder's note is all that was printed: no bus was connected ("... calibration from ..."), no world
    assert captured.out.splitlines() == [f"{run} is a training run: using {run / 'best'} (the lowest validation "
                                         "loss)"], captured.out


def test_a_dataset_recorded_otherwise_is_refused_before_the_world_starts(demos, checkpoint, tmp_path, capsys):
    data = tmp_path / "demos"
    shutil.copytree(demos, data)
    before = (data / "dataset.json").read_text()
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--dataset", str(data), "--raw"]) == 1
    captured = capsys.readouterr()
    assert "recorded with other settings" in captured.err and "compress" in captured.err, captured.err
    assert captured.out == ""
    assert eval_main(["--checkpoint", str(checkpoint), "--dataset", str(data), "--image-size", "96x128"]) == 2
    assert "was recorded at 48x64" in capsys.readouterr().err
    assert (data / "dataset.json").read_text() == before


# -- render settings ----------------------------------------------------------------------------------------------
def info(cameras, size) -> DatasetInfo:
    return DatasetInfo(cameras=list(cameras), image_size={c: list(size) for c in cameras})


def test_render_settings_without_a_dataset_render_the_policys_cameras_at_the_training_size():
    settings = render_settings(["cam_high"], (96, 128), RIG_CAMERAS, trained_on=info(RIG_CAMERAS, (48, 64)))
    assert (settings.cameras, settings.image_size) == (("cam_high",), (48, 64))
    assert render_settings(["cam_high"], (96, 128), RIG_CAMERAS).image_size == (96, 128)  # no training dataset
    assert render_settings([], (96, 128), RIG_CAMERAS, requested=(30, 40)).image_size == (30, 40)


def test_render_settings_for_an_existing_dataset_render_its_cameras_and_size_in_rig_order():
    existing = info(["cam_low", "cam_high"], (60, 80))
    settings = render_settings(["cam_right_wrist"], (96, 128), RIG_CAMERAS, existing=existing,
                               trained_on=info(RIG_CAMERAS, (48, 64)))
    assert settings.cameras == ("cam_high", "cam_low", "cam_right_wrist") and settings.image_size == (60, 80)
    assert render_settings([], (96, 128), RIG_CAMERAS, requested=(60, 80), existing=existing).image_size == (60, 80)
    with pytest.raises(ValueError, match="D was recorded at 60x80"):
        render_settings([], (96, 128), RIG_CAMERAS, requested=(30, 40), existing=existing, dataset="D")


def test_render_settings_for_a_new_dataset_render_every_rig_camera():
    settings = render_settings(["cam_high"], (96, 128), RIG_CAMERAS, collecting=True)
    assert settings.cameras == RIG_CAMERAS and settings.image_size == (96, 128)


# -- the gated report ---------------------------------------------------------------------------------------------
def test_the_gated_report_credits_the_operators_successes_to_the_operator():
    report = EvalReport("transfer_cube", "ck", "ensemble", "drift", planned=4)
    report.episodes += [EpisodeOutcome(1000, 4, True, 400, 0, 0),  # the policy alone
                        EpisodeOutcome(1001, 4, True, 400, 150, 1, takeover_steps=[120]),  # finished by the person
                        EpisodeOutcome(1002, 2, False, 400, 60, 2, takeover_steps=[50, 300]),
                        EpisodeOutcome(1003, 1, False, 400, 0, 0)]
    text = report.summary()
    assert "success, policy alone (no takeover): 1/4 = 25.0%" in text, text
    assert "success at the episode's end, with the operator's help: 2/4 = 50.0% (1 finished by the operator)" in text
    assert "takeovers 3 (0.75 per episode, in 2 episode(s)), 13.1% of steps under human control" in text
    data = report.to_json()
    assert (data["successes"], data["successes_with_help"], data["takeovers"]) == (1, 2, 3)
    assert data["success_rate"] == 0.25 and data["success_rate_with_help"] == 0.5 and not data["interrupted"]
    assert [e["policy_success"] for e in data["per_episode"]] == [True, False, False, False]
    assert "success with the operator's help, 1 takeover(s) at step 120" in report.episodes[1].line(["a"] * 4)


def test_a_gated_eval_shows_progress_and_its_corrections_carry_their_rollout_step(demos, checkpoint, tmp_path,
                                                                                 capsys):
    data = tmp_path / "demos"
    shutil.copytree(demos, data)
    report = tmp_path / "report.json"
    assert eval_main(["--checkpoint", str(checkpoint), "--episodes", "1", "--episode-steps", "60",
                      "--progress-every", "20", "--gate", "stalled:20", "--dataset", str(data),
                      "--json", str(report)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    progress = [line for line in lines if "episode 1/1 (seed 1000): step" in line]
    assert [line.split("step ")[1].split(",")[0] for line in progress] == ["20/60", "40/60", "60/60"], out
    assert "ETA" in progress[0]
    assert lines.index(progress[-1]) < next(i for i, line in enumerate(lines) if line.startswith("episode 1/1 seed"))
    assert "success, policy alone (no takeover): 0/1" in out and "with the operator's help" in out, out

    summary = json.loads(report.read_text())
    episode = summary["per_episode"][0]
    assert episode["interventions"] == 1 and len(episode["takeover_steps"]) == 1
    taken_at = episode["takeover_steps"][0]
    assert 0 < taken_at < 60 and episode["human_steps"] == 60 - taken_at
    (index,) = episode["corrections"]
    info_ = Dataset.open(data).episode(index)
    assert info_.kind == "correction" and info_.rollout_step == taken_at and info_.length == 60 - taken_at
    with h5py.File(data / info_.file) as f:
        assert int(f.attrs["rollout_step"]) == taken_at


# -- Ctrl-C ---------------------------------------------------------------------------------------------------------
def test_ctrl_c_prints_the_finished_episodes_report_and_exits_130(checkpoint, tmp_path):
    report = tmp_path / "report.json"
    command = [sys.executable, "-c", "import sys; from deploy.cli import eval_main; sys.exit(eval_main())",
               "--checkpoint", str(checkpoint), "--episodes", "5", "--episode-steps", "40",
               "--progress-every", "10", "--json", str(report)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    try:
        for line in child.stdout:
            seen.append(line)
            if line.strip().startswith("episode 2/5 (seed 1001): step 10/40"):  # in the middle of the second episode
                child.send_signal(signal.SIGINT)
                break
        rest, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    out = "".join(seen) + rest
    assert child.returncode == 130, (out, err)
    assert "episode 1/5 seed 1000" in out and "interrupted: 1 of 5 episodes finished" in out, out
    assert "success 0/1" in out or "success 1/1" in out, out
    assert "tandem-eval: interrupted" in err
    saved = json.loads(report.read_text())
    assert saved["interrupted"] and saved["planned"] == 5 and saved["episodes"] == 1


# -- the DAgger round's report --------------------------------------------------------------------------------------
def eval_json(path: Path, outcomes: list[EpisodeOutcome]) -> Path:
    report = EvalReport("transfer_cube", "ck", "ensemble", "drift", planned=len(outcomes))
    report.episodes += outcomes
    report.save(path)
    return path


def test_the_round_report_compares_before_and_after_on_the_same_seeds(tmp_path, capsys):
    before = eval_json(tmp_path / "before.json", [EpisodeOutcome(1000, 4, True, 400, 100, 1, takeover_steps=[9]),
                                                  EpisodeOutcome(1001, 1, False, 400, 200, 2)])
    after = eval_json(tmp_path / "after.json", [EpisodeOutcome(1000, 4, True, 400, 0, 0),
                                                EpisodeOutcome(1001, 4, True, 400, 50, 1)])
    assert round_report_main([str(before), str(after), "--json", str(tmp_path / "round.json")]) == 0
    out = capsys.readouterr().out
    assert "seeds 1000..1001" in out
    assert [line.split()[-3:] for line in out.splitlines()[2:]] == [["0/2", "1/2", "+1"], ["1/2", "2/2", "+1"],
                                                                   ["3", "1", "-2"]], out
    saved = json.loads((tmp_path / "round.json").read_text())
    assert saved["successes"] == {"before": 0, "after": 1, "change": 1}

    other = eval_json(tmp_path / "other.json", [EpisodeOutcome(2000, 4, True, 400, 0, 0),
                                                EpisodeOutcome(2001, 4, True, 400, 0, 0)])
    assert round_report_main([str(before), str(other)]) == 1
    assert "different seeds (1000..1001 before, 2000..2001 after)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_dagger_round_keeps_the_policy_before_it_and_reports_both_on_the_same_seeds(demos, checkpoint, tmp_path):
    data, run = tmp_path / "demos", tmp_path / "run"
    shutil.copytree(demos, data)
    shutil.copytree(checkpoint.parent, run)
    before = json.loads((run / "last" / "meta.json").read_text())["step"]
    script = Path(__file__).parent.parent / "scripts" / "dagger_round.sh"
    done = subprocess.run(["bash", str(script), str(data), str(run), "1", "stalled:10", "2"], capture_output=True,
                          text=True, env={**os.environ, "EVAL_ARGS": "--episode-steps 30"}, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((run / "before_round_1" / "meta.json").read_text())["step"] == before
    assert json.loads((run / "last" / "meta.json").read_text())["step"] == before + 1
    reports = {name: json.loads((run / "round_1" / f"{name}.json").read_text()) for name in ("before", "after")}
    assert [e["seed"] for e in reports["before"]["per_episode"]] == [1000, 1001]
    assert [e["seed"] for e in reports["after"]["per_episode"]] == [1000, 1001]
    assert reports["before"]["checkpoint"] == str(run / "before_round_1")
    assert "round report: transfer_cube, 2 episodes, seeds 1000..1001" in done.stdout
    assert "success, policy alone (no takeover)" in done.stdout
