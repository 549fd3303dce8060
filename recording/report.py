"""tandem-inspect's media: an episode's camera video, and the dataset's HTML report (the table of episodes, each
episode's joint plot and video) written into a folder; recording/report_html.py makes the page's markup.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recording.dataset import Dataset, EpisodeInfo
from recording.joint_plot import plot_joints, takeover_spans
from recording.reader import EpisodeFormatError, EpisodeReader
from recording.report_html import EpisodeEntry, write_page
from recording.video import DEFAULT_CODEC, VideoWriter, side_by_side


def camera_video(reader: EpisodeReader, path: Path, fps: float, codec: str = DEFAULT_CODEC,
                 height: int = 240) -> int:
    """Every camera side by side, scaled to `height`, each labelled with its name; returns the frames written."""
    cams = reader.camera_names
    if not cams or reader.length == 0:
        return 0
    with VideoWriter(path, fps, codec) as writer:
        for step in range(reader.length):
            writer.write(side_by_side([reader.image(c, step) for c in cams], height, cams))
    return writer.frames


def report_entry(dataset: Dataset, episode: EpisodeInfo, out: Path, *, video: bool, codec: str,
                 problem: str) -> EpisodeEntry:
    """One episode's row and section of the report, its plot (and video) written into `out`. A file that cannot be
    drawn gets its problem on the page instead; the rest of the report goes on."""
    fps = dataset.info.fps
    takeovers = None
    plot = movie = ""
    if not problem:
        try:
            with EpisodeReader(dataset.path(episode.index)) as reader:
                spans = takeover_spans(reader)
                takeovers = None if spans is None else len(spans)
                plot = f"episode_{episode.index}_joints.png"
                plot_joints(reader, out / plot, fps)
                if video and camera_video(reader, out / f"episode_{episode.index}_cameras.mp4", fps, codec):
                    movie = f"episode_{episode.index}_cameras.mp4"
        except (EpisodeFormatError, OSError) as exc:
            problem = str(exc)
    task = episode.task_description or dataset.info.task
    return EpisodeEntry(episode.index, episode.kind, episode.length, episode.length / fps, episode.success, task,
                        takeovers, plot, movie, problem)


def write_report(dataset: Dataset, out: Path, *, videos: set[int] | None, codec: str,
                 problems: dict[str, str]) -> Path:
    """out/index.html with every episode's plot and the videos of `videos` (None: all); returns the page."""
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    episodes = dataset.episodes()
    entries = []
    with tqdm(episodes, desc="report", unit="episode", file=sys.stderr, disable=None, leave=False) as bar:
        for e in bar:
            entries.append(report_entry(dataset, e, out, video=videos is None or e.index in videos, codec=codec,
                                        problem=problems.get(e.file, "")))
    info = dataset.info
    summary = [f"rig {info.rig or '-'}, {info.fps:g} Hz, cameras {', '.join(info.cameras) or 'none'}, task "
               f"{info.task or '-'}",
               f"{len(episodes)} episodes, {sum(e.length for e in episodes)} steps"]
    page = out / "index.html"
    write_page(page, f"{dataset.root.resolve().name}: {len(episodes)} episodes", summary, entries)
    return page
