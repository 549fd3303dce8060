"""Which evaluation seeds fail in every run, and how far their parts start from the nearest training demo's.

    python3 bench/seed_outcomes.py W/results/a_chunk.json W/results/b_chunk.json --checkpoint W/runs/a/last

Reads `tandem-eval --json` reports over the same seeds (several policies, or one policy several times). Per seed
it prints each report's max reward and, for each of the task's objects, how far (cm, on the table) its start is
from the nearest start among the training demos: the checkpoint's training episodes, by the seeds they were
recorded with (without --checkpoint: --demo-seeds). The summary says how many successes each pair of reports
shares against what independent outcomes would give, and which seeds no report gets past reward 0, with their
distances against the other seeds'. Seeds that fail everywhere and sit far from every demo may point at
coverage (a run on more demos tells: `bench/sim_results.py --only insertion_100`); successes that two policies
do not share point at chance (contacts, chunk timing) rather than the start. The world is reset per seed,
physics only: 100 resets take 0.05 s, the whole script ~3 s (imports).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from policies.checkpoint import read_meta  # noqa: E402
from recording.dataset import Dataset  # noqa: E402
from recording.inspect import episode_selection  # noqa: E402
from robot.sim.world import World  # noqa: E402


def read_report(path: Path) -> tuple[str, dict[int, int], set[int]]:
    """The report's task, each seed's max reward and the seeds that succeeded."""
    try:
        report = json.loads(path.read_text())
        episodes = report["per_episode"]
        return (report["task"], {e["seed"]: e["max_reward"] for e in episodes},
                {e["seed"] for e in episodes if e["success"]})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a tandem-eval --json report ({e})") from None


def training_seeds(checkpoint: Path) -> list[int]:
    """The seeds the checkpoint's training episodes were recorded with."""
    extra = read_meta(checkpoint).extra
    dataset = Dataset.open(extra["dataset"])
    seeds = [dataset.episode(i).seed for i in extra["train_episodes"]]
    if None in seeds:
        raise SystemExit(f"{extra['dataset']}: some training episodes have no recorded seed; pass --demo-seeds")
    return seeds


def start_positions(task: str, seeds: list[int]) -> dict[str, np.ndarray]:
    """Per object, its (x, y) on the table after reset, one row per seed."""
    world = World(task)
    try:
        rows = []
        for seed in seeds:
            world.reset(seed)
            rows.append({name: pose[:2].copy() for name, pose in world.object_poses().items()})
    finally:
        world.close()
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path, help="tandem-eval --json reports over the same seeds")
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint whose training episodes are the demos")
    parser.add_argument("--demo-seeds", type=episode_selection, default=episode_selection("0-49"),
                        help="the demos' seeds where no --checkpoint is given, e.g. 0-49 or 0-9,20 (default 0-49)")
    args = parser.parse_args()

    reports = [read_report(path) for path in args.reports]
    tasks = {task for task, _, _ in reports}
    if len(tasks) != 1:
        raise SystemExit(f"the reports are of different tasks: {', '.join(sorted(tasks))}")
    task = tasks.pop()
    seeds = sorted(reports[0][1])
    for path, (_, rewards, _) in zip(args.reports, reports, strict=True):
        if sorted(rewards) != seeds:
            raise SystemExit(f"{path}: its seeds differ from {args.reports[0]}'s")
    demos = training_seeds(args.checkpoint) if args.checkpoint else args.demo_seeds
    demo_starts, starts = start_positions(task, demos), start_positions(task, seeds)
    nearest = {name: np.array([np.linalg.norm(demo_starts[name] - p, axis=1).min() * 100 for p in starts[name]])
               for name in starts}  # cm

    names = list(nearest)
    print(f"{task}: {len(seeds)} seeds, {len(reports)} reports, {len(demos)} training demos")
    print("seed  " + " ".join(f"r{i}" for i in range(len(reports))) + "  " +
          "  ".join(f"{name} to nearest demo" for name in names))
    for k, seed in enumerate(seeds):
        outcomes = " ".join(f"{rewards[seed]:>2}" for _, rewards, _ in reports)
        print(f"{seed:<5} {outcomes}  " + "  ".join(f"{nearest[name][k]:>8.1f} cm{'':>9}" for name in names))
    for i, path in enumerate(args.reports):
        print(f"r{i}: {path}")

    print("\nshared successes (expected if independent):")
    for (i, (_, _, a)), (j, (_, _, b)) in itertools.combinations(enumerate(reports), 2):
        print(f"  r{i} {len(a)}, r{j} {len(b)}: both {len(a & b)} ({len(a) * len(b) / len(seeds):.1f})")
    never = np.array([all(rewards[s] == 0 for _, rewards, _ in reports) for s in seeds])
    listed = ", ".join(str(s) for s in np.array(seeds)[never])
    print(f"\nreward 0 in every report: {int(never.sum())} seed(s) ({listed})")
    for name in names:
        rest = nearest[name][~never]
        there = f"{nearest[name][never].mean():.1f}" if never.any() else "-"
        print(f"  {name} to nearest demo: {there} cm on those, {rest.mean():.1f} cm on the others")


if __name__ == "__main__":
    main()
