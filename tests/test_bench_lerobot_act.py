"""bench/lerobot_act.py's image sizes: what exists in the work folder keeps its size, frames are only shrunk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_lerobot import tandem_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "lerobot_act.py"


def dry_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--work", str(work), "--dry-run", "--steps", "10", *args],
                          capture_output=True, text=True, timeout=120)


def exported_at(work: Path, height: int, width: int) -> None:
    meta = work / "data" / "lerobot" / "meta"
    meta.mkdir(parents=True)
    features = {"observation.state": {"shape": [14]}, "observation.images.cam_high": {"shape": [height, width, 3]}}
    (meta / "info.json").write_text(json.dumps({"features": features}))


def test_demos_render_at_the_record_size_and_both_sides_train_and_export_at_the_image_size(tmp_path: Path) -> None:
    out = dry_run(tmp_path, "--record-size", "240x320", "--image-size", "72x96")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("tandem-record " in line and line.endswith("--image-size 240x320") for line in lines)
    assert any("tandem-export " in line and "--image-size 72x96" in line for line in lines)
    assert any("tandem-train " in line and "--image-size 72x96" in line for line in lines)
    assert any("[3, 72, 96]" in line for line in lines if "lerobot-train" in line)
    evals = [line for line in lines if "tandem-eval " in line]
    assert len(evals) == 2 and all("--image-size 240x320" in line for line in evals)


def test_an_existing_export_keeps_its_size_and_is_never_enlarged_to(tmp_path: Path) -> None:
    exported_at(tmp_path, 72, 96)
    out = dry_run(tmp_path, "--image-size", "96x128")
    assert out.returncode != 0
    assert f"--image-size 96x128: {tmp_path / 'data' / 'lerobot'} is at 72x96; use another --work" in out.stderr
    out = dry_run(tmp_path, "--record-size", "60x80")
    assert out.returncode == 2
    assert "the existing export's or tandem run's size 72x96 is larger than the recorded 60x80" in out.stderr
    out = dry_run(tmp_path / "fresh", "--record-size", "60x80", "--image-size", "72x96")
    assert out.returncode == 2 and "--image-size 72x96 is larger than the recorded 60x80" in out.stderr


def test_a_given_dataset_keeps_its_recorded_size(tmp_path: Path) -> None:
    demos = tandem_dataset(tmp_path / "demos", episodes=(("demo", 3),))  # recorded at 48x64
    out = dry_run(tmp_path / "work", "--dataset", str(demos), "--record-size", "240x320")
    assert out.returncode != 0
    assert f"--record-size 240x320: {demos} is at 48x64; use another --dataset" in out.stderr
    out = dry_run(tmp_path / "work", "--dataset", str(demos), "--image-size", "24x32", "--side", "tandem")
    assert out.returncode == 0, out.stderr
    assert any("tandem-train " in line and "--image-size 24x32" in line for line in out.stdout.splitlines())
