"""A DAgger round's report: the policy before and after the round, evaluated on the same seeds.

    python3 -m deploy.round_report BEFORE.json AFTER.json [--json OUT]

Reads two tandem-eval reports (--json) and prints the policy's own success
(no takeover), success with the operator's help, and takeovers side by side.
Both must come from the same task and seeds: a comparison on other seeds would
measure the seeds as much as the round.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from robot.commands import EXIT_OK, command_parser, run_command


def load_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such report; write one with tandem-eval --json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    for key in ("task", "episodes", "successes", "per_episode"):
        if key not in data:
            raise ValueError(f"{path}: no {key!r}; is it a tandem-eval --json report?")
    return data


def seeds(report: dict[str, Any]) -> list[int]:
    return [e["seed"] for e in report["per_episode"]]


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The two reports' figures and their differences (after - before); ValueError if not comparable."""
    if before["task"] != after["task"]:
        raise ValueError(f"the reports are of different tasks: {before['task']} before, {after['task']} after")
    if seeds(before) != seeds(after):
        raise ValueError(f"the reports are on different seeds ({_span(seeds(before))} before, "
                         f"{_span(seeds(after))} after); evaluate both with the same --seed and --episodes")
    out: dict[str, Any] = {"task": before["task"], "episodes": before["episodes"], "seeds": _span(seeds(before))}
    for key in ("successes", "successes_with_help", "takeovers"):
        b, a = figure(before, key), figure(after, key)
        out[key] = {"before": b, "after": a, "change": a - b}
    return out


def figure(report: dict[str, Any], key: str) -> int:
    """A count from a report; older reports without the with-help split count from their episodes."""
    if key in report:
        return int(report[key])
    episodes = report["per_episode"]
    if key == "successes_with_help":
        return sum(bool(e["success"]) for e in episodes)
    return sum(int(e.get("interventions", 0)) for e in episodes)


def summary(comparison: dict[str, Any]) -> str:
    n = comparison["episodes"]
    rows = [("success, policy alone (no takeover)", "successes"),
            ("success with the operator's help", "successes_with_help"),
            ("takeovers", "takeovers")]
    lines = [f"round report: {comparison['task']}, {n} episodes, seeds {comparison['seeds']}",
             f"  {'':38} {'before':>8} {'after':>8} {'change':>8}"]
    for label, key in rows:
        row = comparison[key]
        if key == "takeovers":
            cells = [f"{row['before']}", f"{row['after']}", f"{row['change']:+d}"]
        else:
            cells = [f"{row['before']}/{n}", f"{row['after']}/{n}", f"{row['change']:+d}"]
        lines.append(f"  {label:38} " + " ".join(f"{c:>8}" for c in cells))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("round-report", "Compare two tandem-eval --json reports of the same seeds: the policy "
                            "before a DAgger round and after it.")
    parser.add_argument("before", type=Path, help="report of the policy before the round")
    parser.add_argument("after", type=Path, help="report of the policy after the round")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        comparison = compare(load_report(args.before), load_report(args.after))
        print(summary(comparison))
        if args.json:
            args.json.write_text(json.dumps(comparison, indent=2) + "\n")
        return EXIT_OK

    return run_command("round-report", run)


def _span(values: list[int]) -> str:
    if values and values == list(range(values[0], values[0] + len(values))):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


if __name__ == "__main__":
    sys.exit(main())
