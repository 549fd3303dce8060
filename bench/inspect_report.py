"""tandem-inspect --html on a dataset of ALOHA-sized episodes: seconds per episode for the plots alone and for
plots plus videos in each codec, the video sizes, and what a 50-episode report costs at that rate.

The dataset is written by the real EpisodeWriter: --episodes episodes of --steps steps, four synthetic 480x640
cameras stored as JPEG rows (ALOHA's compressed layout, tandem-record's default). The report is made by
write_report, as the command does (JPEG decoding, scaling, labels, encoding, the joint plot, the page).

    python3 bench/inspect_report.py [--episodes 3] [--steps 400] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from recording.dataset import Dataset, DatasetInfo, EpisodeInfo  # noqa: E402
from recording.report import write_report  # noqa: E402
from recording.video import CODECS  # noqa: E402
from recording.writer import EpisodeWriter, StepRecord  # noqa: E402

CAMS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
H, W = 480, 640


def frames(count: int, seed: int) -> list[np.ndarray]:
    """Frames with a moving gradient, texture and noise: JPEG sizes and motion like a scene's."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    texture = rng.integers(0, 40, (H, W, 3), dtype=np.uint8)
    out = []
    for k in range(count):
        base = np.stack([(x + 8 * k) % 256, (y + 4 * k) % 256, np.full_like(x, 90 + seed * 20)], axis=-1)
        out.append(base.astype(np.uint8) // 2 + texture + rng.integers(0, 8, (H, W, 3), dtype=np.uint8))
    return out


def make_dataset(root: Path, episodes: int, steps: int) -> Dataset:
    info = DatasetInfo(rig="bench", fps=50.0, cameras=list(CAMS), image_size={c: [H, W] for c in CAMS},
                       compress=True, task="bench")
    pictures = {c: frames(25, k) for k, c in enumerate(CAMS)}
    with Dataset.create_or_open(root, info, say=lambda _: None) as dataset:
        for index in range(episodes):
            with EpisodeWriter(dataset.path(index), dict.fromkeys(CAMS, (H, W)), compress=True,
                               queue_size=steps + 1, attrs={"kind": "demo"}) as writer:
                for i in range(steps):
                    row = np.sin(np.arange(14, dtype=np.float32) + i / 50).astype(np.float32)
                    writer.append(StepRecord(t=i / 50, qpos=row, qvel=row, effort=row, action=row,
                                             images={c: pictures[c][i % 25] for c in CAMS},
                                             image_t=dict.fromkeys(CAMS, i / 50), intervention=150 <= i < 200))
                writer.close()
            dataset.add(EpisodeInfo(index, "demo", steps))
    return Dataset.open(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--dir", default=None, help="where the dataset goes (a temporary folder under it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        start = time.perf_counter()
        dataset = make_dataset(Path(tmp) / "data", args.episodes, args.steps)
        print(f"dataset: {args.episodes} episodes x {args.steps} steps, 4 cameras {H}x{W} JPEG, written in "
              f"{time.perf_counter() - start:.1f} s")
        runs = [("plots only", "h264", set())] + [(f"plots + {c} videos", c, None) for c in sorted(CODECS)]
        for label, codec, videos in runs:
            out = Path(tmp) / f"report_{codec}_{'plots' if videos == set() else 'videos'}"
            start = time.perf_counter()
            write_report(dataset, out, videos=videos, codec=codec, problems={})
            per = (time.perf_counter() - start) / args.episodes
            sizes = [p.stat().st_size for p in out.glob("*.mp4")]
            kbits = np.mean(sizes) * 8 / (args.steps / dataset.info.fps) / 1e3 if sizes else 0
            size = f", video {np.mean(sizes) / 1e6:.2f} MB/episode ({kbits:.0f} kbit/s)" if sizes else ""
            print(f"{label:>20}: {per:.2f} s/episode ({args.steps / per:.0f} steps/s), 50 episodes "
                  f"~{50 * per / 60:.1f} min{size}")


if __name__ == "__main__":
    main()
