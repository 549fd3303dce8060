"""tandem-export and tandem-import: tandem datasets to LeRobotDataset v3.0 folders and back."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from recording.dataset import KINDS
from recording.lerobot_format import CODECS
from robot.commands import (
    UsageError,
    add_rig_argument,
    add_verbose_argument,
    command_parser,
    dataset_folder,
    describe,
    image_size,
    jpeg_quality,
    run_command,
    setup_process,
)

EXPORT, IMPORT = "tandem-export", "tandem-import"


def kinds_argument(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"{text!r}: kinds are a comma-separated list of {', '.join(KINDS)}")
    return kinds


def lerobot_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder" if not path.exists() else f"{text} is a file; "
                                         "pass the LeRobot dataset folder (the one holding meta/ and data/)")
    return path


def episodes_bar(items: Iterable, total: int | None = None) -> Iterable:
    """A bar over episodes on a terminal, nothing in a log."""
    from tqdm import tqdm

    return tqdm(items, total=total, unit="episode", dynamic_ncols=True, disable=None)


# -- tandem-export ----------------------------------------------------------------------------------------------------
def build_export_parser() -> argparse.ArgumentParser:
    parser = command_parser(EXPORT, describe(
        "Write a tandem dataset folder as a LeRobotDataset v3.0 folder that LeRobot's LeRobotDataset loads: "
        "meta/info.json, stats.json, tasks.parquet, meta/episodes, data/ parquet files and one video stream per "
        "camera (AV1 in yuv420p through PyAV, as LeRobot records; --codec h264 for players without AV1).",
        "Features: observation.state, observation.velocity, observation.effort and action (the rig's joint "
        "names), observation.images.<camera>, and tandem's per-step intervention flag and episode_kind (demo, "
        "correction, rollout). The folder is written under a hidden name beside --out and renamed when complete, "
        "so an interrupted export leaves nothing that looks like a dataset."))
    parser.add_argument("dataset", type=dataset_folder, help="the tandem dataset folder to export")
    parser.add_argument("--out", required=True, type=Path, help="the LeRobot folder to write (must not exist)")
    parser.add_argument("--repo-id", metavar="NAME", help="the name LeRobot loads it under, e.g. me/cube "
                        "(default: tandem/<dataset folder name>); written into the folder's README.md")
    parser.add_argument("--kinds", type=kinds_argument, default=KINDS, metavar="KIND[,KIND]",
                        help=f"episode kinds to export, of {', '.join(KINDS)} (default: all)")
    parser.add_argument("--codec", choices=sorted(CODECS), default="av1", help="video codec")
    parser.add_argument("--image-size", type=image_size, metavar="HxW",
                        help="shrink every camera's frames to this size (INTER_AREA, as tandem-train does; a size "
                        "larger than recorded is refused; even numbers for --codec h264), e.g. 72x96 for "
                        "a LeRobot policy trained at that size (LeRobot's ACT does not resize); default: as recorded")
    add_verbose_argument(parser)
    return parser


def run_export(args: argparse.Namespace) -> int:
    from recording.lerobot_export import export_dataset

    if args.out.exists():
        raise UsageError(f"--out {args.out} exists; tandem-export writes a new folder (remove it or choose another)")
    repo_id = args.repo_id or f"tandem/{args.dataset.resolve().name}"
    print(f"exporting {args.dataset} ({', '.join(args.kinds)}) to {args.out} with {args.codec.upper()} videos")
    summary = export_dataset(args.dataset, args.out, repo_id=repo_id, kinds=args.kinds, codec=args.codec,
                             image_size=args.image_size, progress=episodes_bar)
    size = f" at {args.image_size[0]}x{args.image_size[1]}" if args.image_size and summary.cameras else ""
    print(f"{summary.episodes} episode(s), {summary.frames} frames, cameras {', '.join(summary.cameras) or 'none'}"
          f"{size}: "
          f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s")
    print(f"load it with: LeRobotDataset({repo_id!r}, root={str(summary.out)!r})")
    return 0


def export_main(argv: list[str] | None = None) -> int:
    args = build_export_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(EXPORT, lambda: run_export(args),
                       interrupted=f"interrupted; nothing was written to {args.out}")


# -- tandem-import ----------------------------------------------------------------------------------------------------
def build_import_parser() -> argparse.ArgumentParser:
    parser = command_parser(IMPORT, describe(
        "Convert a LeRobotDataset v3.0 folder (e.g. one of lerobot/aloha_sim_*, or a tandem-export) into a tandem "
        "dataset folder for --rig, which tandem-train, tandem-inspect and tandem-replay then read as any other. "
        "Converted once, not read in place: the dataset's checks, lock and image cache apply, and training does not "
        "decode AV1 every epoch.",
        "observation.state and action must have the rig's joints (their number, and their names where the folder "
        "names them) and fps the rig's rate; a feature that does not fit is refused by name. Cameras keep their "
        "names (observation.images.top becomes camera top). Appending to an existing --dataset needs the same rig, "
        "rate, cameras and task. Episodes are added as they finish: Ctrl-C keeps the finished ones."))
    parser.add_argument("source", type=lerobot_folder, help="the LeRobot v3.0 dataset folder")
    parser.add_argument("--dataset", required=True, type=Path, help="the tandem dataset folder to write (created if "
                        "missing)")
    add_rig_argument(parser, virtual=False)
    parser.add_argument("--raw", action="store_true",
                        help="store raw frames (T, H, W, 3) instead of JPEG rows (ALOHA's compressed layout)")
    parser.add_argument("--jpeg-quality", type=jpeg_quality, default=50, metavar="Q",
                        help="JPEG quality 1..100 (50 as ALOHA)")
    add_verbose_argument(parser)
    return parser


def run_import(args: argparse.Namespace) -> int:
    from recording.lerobot_import import import_dataset
    from robot.rig import load_rig

    rig = load_rig(args.rig)
    summary = import_dataset(args.source, args.dataset, rig, compress=not args.raw, jpeg_quality=args.jpeg_quality,
                             progress=episodes_bar)
    kinds = {k: sum(e.kind == k for e in summary.episodes) for k in KINDS}
    print(f"{len(summary.episodes)} episode(s) ({', '.join(f'{n} {k}' for k, n in kinds.items() if n) or 'none'}), "
          f"{summary.frames} steps, cameras {', '.join(summary.cameras) or 'none'}: imported into {summary.dest} "
          f"for rig {rig.name} in {summary.seconds:.1f} s")
    return 0


def import_main(argv: list[str] | None = None) -> int:
    args = build_import_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(IMPORT, lambda: run_import(args),
                       interrupted=f"interrupted; the episodes imported so far are kept in {args.dataset}")
