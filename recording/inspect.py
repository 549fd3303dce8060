"""tandem-inspect: what a dataset holds, and for one episode a plot of its joints and a video of its cameras.

Every episode file is opened and checked (layout, shapes, length against
dataset.json, finite values, cameras' first and last frames): one status line
per file, and exit status 1 when any is bad, missing, or not in the index.

The plot and the video are drawn with OpenCV (no plotting library needed): a
PNG with one panel per joint (observed position and the action sent), and an
MP4 of every camera side by side at the recorded rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from recording.dataset import INDEX, Dataset, DatasetError, EpisodeInfo
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.video import open_video, side_by_side
from robot.commands import add_verbose_argument, command_parser, dataset_folder, describe, run_command, setup_process

PROG = "tandem-inspect"

PANEL = (150, 420)  # height, width of one joint's panel
QPOS_COLOR, ACTION_COLOR = (200, 90, 20), (30, 140, 240)  # BGR: blue observed, orange action


def episode_rate(dataset: Dataset, episode: EpisodeInfo) -> float | None:
    """The rate an episode ran at: the loop's achieved rate where it was measured (at the rig), else from its
    control timestamps (simulated episodes run on simulated time), else its fps attribute."""
    if episode.fps:
        return episode.fps
    path = dataset.path(episode.index)
    if not path.exists():
        return None
    try:
        with EpisodeReader(path) as ep:
            t = ep.optional("/timestamps/control")
            if t is not None and len(t) > 1 and np.all(np.isfinite(t)) and t[-1] > t[0]:
                return float((len(t) - 1) / (t[-1] - t[0]))
            fps = ep.attrs.get("fps")
    except (EpisodeFormatError, OSError):
        return None  # check_files names what is wrong with it
    return float(fps) if isinstance(fps, int | float) and fps > 0 else None


def summary_table(dataset: Dataset) -> str:
    rows = [("episode", "kind", "steps", "seconds", "fps", "dropped", "success", "MB", "flagged", "task")]
    fps = dataset.info.fps
    total_steps = total_bytes = 0
    for e in dataset.episodes():
        size = dataset.path(e.index).stat().st_size if dataset.path(e.index).exists() else e.bytes
        success = "-" if e.success is None else ("yes" if e.success else "no")
        rate = episode_rate(dataset, e)
        rows.append((str(e.index), e.kind, str(e.length), f"{e.length / fps:.1f}",
                     f"{rate:.1f}" if rate else "-", str(e.dropped), success, f"{size / 1e6:.1f}", e.flagged,
                     e.task_description or "-"))
        total_steps += e.length
        total_bytes += size
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i < 8 else c for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    kinds = {k: len(dataset.episodes([k])) for k in ("demo", "correction", "rollout")}
    info = dataset.info
    head = (f"{dataset.root}: rig {info.rig}, {info.fps:g} Hz, cameras {', '.join(info.cameras) or 'none'} "
            f"({'JPEG' if info.compress else 'raw'}), task {info.task or '-'}")
    foot = (f"{len(dataset.episodes())} episodes ({', '.join(f'{n} {k}' for k, n in kinds.items() if n)}), "
            f"{total_steps} steps = {total_steps / fps / 60:.1f} min, {total_bytes / 1e9:.2f} GB")
    return "\n".join([head, *lines, foot])


def check_files(dataset: Dataset) -> list[tuple[str, str]]:
    """(file, problem) for every episode file that is bad, missing or unlisted; prints one status line per file."""
    problems: list[tuple[str, str]] = []
    missing = {e.index for e in dataset.missing_files()}
    dims = None
    for e in dataset.episodes():
        if e.index in missing:
            problem = f"missing: {INDEX} lists it ({e.kind}, {e.length} steps) but there is no such file"
        else:
            try:
                dims = dataset.check_episode(e, dims)
                problem = ""
            except (EpisodeFormatError, DatasetError, OSError) as exc:
                problem = f"bad: {exc}"
        print(f"  {e.file}: {problem or 'ok'}")
        if problem:
            problems.append((e.file, problem))
    for path in dataset.unlisted_files():
        try:
            with EpisodeReader(path) as ep:
                ep.check_values()
                problem = (f"not in {INDEX}: a complete episode ({ep.length} steps) that training does not see; "
                           "the next tandem-record into this folder adds it back")
        except EpisodeFormatError as exc:
            problem = f"not in {INDEX}, and bad: {exc}"
        print(f"  {path.name}: {problem}")
        problems.append((path.name, problem))
    return problems


def plot_joints(reader: EpisodeReader, path: Path) -> None:
    qpos, action = reader.qpos, reader.action
    names = [str(n) for n in reader.attrs.get("state_names", [f"joint {i}" for i in range(reader.dim)])]
    columns = 2
    rows = -(-reader.dim // columns)
    ph, pw = PANEL
    canvas = np.full((rows * ph + 30, columns * pw, 3), 255, np.uint8)
    cv2.putText(canvas, f"{reader.path.name}: observed (blue) and action (orange)", (10, 20),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for j in range(reader.dim):
        y0, x0 = 30 + (j % rows) * ph, (j // rows) * pw
        series = [qpos[:, j]] + ([action[:, j]] if j < action.shape[1] else [])
        lo = min(float(s.min()) for s in series) if len(qpos) else 0.0
        hi = max(float(s.max()) for s in series) if len(qpos) else 1.0
        hi = hi if hi > lo else lo + 1e-3
        cv2.rectangle(canvas, (x0 + 40, y0 + 15), (x0 + pw - 10, y0 + ph - 15), (220, 220, 220), 1)
        cv2.putText(canvas, f"{names[j]}  [{lo:.2f}, {hi:.2f}]", (x0 + 45, y0 + 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for values, color in zip(series, (QPOS_COLOR, ACTION_COLOR), strict=False):
            if len(values) < 2:
                continue
            xs = x0 + 40 + np.linspace(0, pw - 50, len(values))
            ys = y0 + ph - 15 - (values - lo) / (hi - lo) * (ph - 30)
            points = np.stack([xs, ys], axis=1).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], False, color, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"{path}: could not write the plot")


def camera_video(reader: EpisodeReader, path: Path, fps: float, height: int = 240) -> int:
    """Every camera side by side, scaled to `height`; returns the frames written."""
    cams = reader.camera_names
    if not cams or reader.length == 0:
        return 0
    sizes = [reader.image_size(c) for c in cams]
    writer = open_video(path, fps, sum(round(w * height / h) for h, w in sizes), height)
    try:
        for step in range(reader.length):
            writer.write(side_by_side([reader.image(c, step) for c in cams], height))
    finally:
        writer.release()
    return reader.length


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Summarize a dataset: episodes, lengths, achieved rate, dropped steps, kinds, success, size; then open "
        "and check every episode file (layout, shapes, length against dataset.json, finite values, images) and "
        "print its status. Exits 1 when a file is bad, missing or not in dataset.json.",
        "With --episode K, also write episode_K_joints.png (each joint's observed position and action over "
        "time) and episode_K_cameras.mp4 (the cameras side by side) into --out."))
    parser.add_argument("--dataset", required=True, type=dataset_folder,
                        help="dataset folder (ours, or one recorded by ALOHA's scripts)")
    parser.add_argument("--episode", type=int, help="episode to plot and render")
    parser.add_argument("--out", help="where to write the plot and video; unset: the dataset folder")
    parser.add_argument("--no-video", action="store_true", help="write the plot only")
    add_verbose_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    dataset = Dataset.open(args.dataset)
    print(summary_table(dataset))
    problems = check_files(dataset)
    if problems:
        print(f"{PROG}: {len(problems)} episode file(s) need attention: "
              f"{', '.join(name for name, _ in problems)}", file=sys.stderr)
    if args.episode is None:
        return 1 if problems else 0
    out = Path(args.out) if args.out else dataset.root
    out.mkdir(parents=True, exist_ok=True)
    with EpisodeReader(dataset.path(dataset.episode(args.episode).index)) as reader:
        plot = out / f"episode_{args.episode}_joints.png"
        plot_joints(reader, plot)
        print(f"wrote {plot}")
        if not args.no_video:
            video = out / f"episode_{args.episode}_cameras.mp4"
            frames = camera_video(reader, video, dataset.info.fps)
            print(f"wrote {video} ({frames} frames)" if frames else "no cameras in this episode: no video")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args), interrupted="interrupted")


if __name__ == "__main__":
    sys.exit(main())
