"""bench/seed_outcomes.py: seeds that fail in every report, and how far their parts start from the demos'."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "seed_outcomes.py"


def report(path: Path, rewards: dict[int, int]) -> Path:
    episodes = [{"seed": seed, "max_reward": r, "success": r == 4} for seed, r in rewards.items()]
    path.write_text(json.dumps({"task": "insertion", "per_episode": episodes}))
    return path


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_names_the_seeds_no_report_gets_past_zero_and_measures_from_the_demo_starts(tmp_path: Path) -> None:
    a = report(tmp_path / "a.json", {1: 4, 7: 0, 8: 4})
    b = report(tmp_path / "b.json", {1: 4, 7: 0, 8: 2})
    out = run(a, b, "--demo-seeds", "0-2")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line[:1].isdigit()}
    assert rows["1"][1:3] == ["4", "4"] and rows["1"][3] == "0.0" and rows["1"][5] == "0.0"  # seed 1 is a demo's
    assert float(rows["7"][3]) > 0 and float(rows["8"][3]) > 0  # the others start elsewhere
    assert "r0 2, r1 1: both 1" in out.stdout
    assert "reward 0 in every report: 1 seed(s) (7)" in out.stdout


def test_refuses_reports_of_other_seeds_and_files_that_are_not_reports(tmp_path: Path) -> None:
    a = report(tmp_path / "a.json", {1: 4, 2: 0})
    b = report(tmp_path / "b.json", {1: 4, 3: 0})
    out = run(a, b)
    assert out.returncode != 0 and "b.json: its seeds differ" in out.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    out = run(broken)
    assert out.returncode != 0 and "broken.json: not a tandem-eval --json report" in out.stderr
