"""tandem-inspect: what a dataset holds; for one episode a plot of its joints and a video of its cameras; for the
whole dataset a static HTML report.

Every episode file is opened and checked (layout, shapes, length against
dataset.json, finite values, cameras' first and last frames): one status line
per file, and exit status 1 when any is bad, missing, or not in the index.

The plot is drawn with OpenCV (recording/joint_plot.py: every joint's observed
position and action against time, takeovers marked), the video is every camera
side by side, each labelled, as H.264 (or AV1) MP4 that browsers play
(recording/video.py). --html writes one page (recording/report.py) with the
table of episodes and, per episode, its plot and video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recording.dataset import INDEX, Dataset, DatasetError, EpisodeInfo
from recording.episode_view import show_episode
from recording.joint_plot import plot_joints
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.report import camera_video, write_report
from recording.video import CODECS, DEFAULT_CODEC
from robot.commands import (
    DISPLAY_AUTO,
    DISPLAY_SERVE,
    UsageError,
    add_verbose_argument,
    command_parser,
    dataset_folder,
    describe,
    display_target,
    run_command,
    setup_process,
)

PROG = "tandem-inspect"
REPORT = Path("report")  # --html without a folder: DATASET/report/index.html


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


def episode_selection(text: str) -> list[int]:
    """"0-4,7" -> [0, 1, 2, 3, 4, 7]."""
    chosen: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not an episode or a range like 3-7") from None
        if lo < 0 or hi < lo:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not an episode or a range like 3-7")
        chosen.update(range(lo, hi + 1))
    return sorted(chosen)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, describe(
        "Summarize a dataset: episodes, lengths, achieved rate, dropped steps, kinds, success, size; then open "
        "and check every episode file (layout, shapes, length against dataset.json, finite values, images) and "
        "print its status. Exits 1 when a file is bad, missing or not in dataset.json.",
        "With --episode K, also write episode_K_joints.png (each joint's observed position and action against "
        "time in seconds, the spans a person had control shaded) and episode_K_cameras.mp4 (the cameras side by "
        "side, each labelled; H.264, or AV1 with --codec av1: both play in browsers) into --out.",
        "With --html, write one static page with the table of episodes and every episode's plot and video "
        "(DATASET/report/index.html, or OUT_DIR/index.html): open it in a browser, no server needed."))
    parser.add_argument("--dataset", required=True, type=dataset_folder,
                        help="dataset folder (ours, or one recorded by ALOHA's scripts)")
    parser.add_argument("--episode", type=int, help="episode to plot and render")
    parser.add_argument("--out", help="where to write the plot and video; unset: the dataset folder")
    parser.add_argument("--no-video", action="store_true", help="write the plots only")
    parser.add_argument("--html", nargs="?", const="", metavar="OUT_DIR",
                        help="write the HTML report into OUT_DIR (given without a folder: DATASET/report)")
    parser.add_argument("--html-episodes", type=episode_selection, metavar="LIST",
                        help="episodes whose video the report shows, e.g. 0-4,9 (every episode still gets its "
                        "row and plot); unset: all")
    parser.add_argument("--codec", choices=sorted(CODECS), default=DEFAULT_CODEC, help="video codec")
    parser.add_argument("--rerun", nargs="?", const=DISPLAY_AUTO, type=display_target, metavar="FILE.rrd",
                        help="with --episode: show it in Rerun as the live view shows the rig (every camera frame, "
                        "each joint, who drove): the viewer where there is a display, else OUT/episode_K.rrd; "
                        "FILE.rrd saves there")
    add_verbose_argument(parser)
    return parser


def report_folder(args: argparse.Namespace, dataset: Dataset) -> Path | None:
    if args.html is None:
        if args.html_episodes is not None:
            raise UsageError("--html-episodes chooses the videos of the --html report: add --html")
        return None
    out = Path(args.html) if args.html else dataset.root / REPORT
    if out.exists() and not out.is_dir():
        raise UsageError(f"--html {out}: is a file; the report needs a folder (it writes index.html, the plots "
                         "and the videos there)")
    unknown = sorted(set(args.html_episodes or ()) - {e.index for e in dataset.episodes()})
    if unknown:
        have = ", ".join(str(e.index) for e in dataset.episodes()) or "none"
        raise UsageError(f"--html-episodes: no episode {', '.join(map(str, unknown))} in {dataset.root} "
                         f"(episodes: {have})")
    return out


def run(args: argparse.Namespace) -> int:
    if args.rerun is not None and (args.episode is None or args.rerun == DISPLAY_SERVE):
        raise UsageError("--rerun shows one episode (add --episode K) in the viewer or a .rrd file (this command "
                         "ends once it is sent, so it serves nothing)")
    dataset = Dataset.open(args.dataset)
    report = report_folder(args, dataset)
    print(summary_table(dataset))
    problems = check_files(dataset)
    if problems:
        print(f"{PROG}: {len(problems)} episode file(s) need attention: "
              f"{', '.join(name for name, _ in problems)}", file=sys.stderr)
    if args.episode is not None:
        out = Path(args.out) if args.out else dataset.root
        out.mkdir(parents=True, exist_ok=True)
        with EpisodeReader(dataset.path(dataset.episode(args.episode).index)) as reader:
            plot = out / f"episode_{args.episode}_joints.png"
            plot_joints(reader, plot, dataset.info.fps)
            print(f"wrote {plot}")
            if not args.no_video:
                video = out / f"episode_{args.episode}_cameras.mp4"
                frames = camera_video(reader, video, dataset.info.fps, args.codec)
                print(f"wrote {video} ({frames} frames, {args.codec})" if frames else
                      "no cameras in this episode: no video")
            if args.rerun is not None:
                show_episode(reader, args.rerun, fps=dataset.info.fps, fallback=out / f"episode_{args.episode}.rrd")
    if report is not None:
        videos = set() if args.no_video else None if args.html_episodes is None else set(args.html_episodes)
        page = write_report(dataset, report, videos=videos, codec=args.codec, problems=dict(problems))
        print(f"wrote {page} (open it in a browser)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: run(args), interrupted="interrupted")


if __name__ == "__main__":
    sys.exit(main())
