"""A dataset's report as one static HTML page: the table of episodes, then per episode its joint plot and its
camera video, by paths relative to the page, so the folder opens from file:// in any browser with no server.

Only the markup is made here (recording/report.py writes the plots and videos); every text is escaped.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.number { text-align: right; }
section { margin-top: 2em; }
img, video { max-width: 100%; display: block; margin-top: 0.5em; }
.problem { color: #a00; }
"""


@dataclass(frozen=True)
class EpisodeEntry:
    index: int
    kind: str
    steps: int
    seconds: float
    success: bool | None  # None: not known
    task: str
    takeovers: int | None  # None: the file has no intervention mask
    plot: str = ""  # path relative to the page, "" when there is none
    video: str = ""
    problem: str = ""  # why the plot or video is missing, or what is wrong with the file


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _src(relative: str) -> str:
    return _text(quote(relative))


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _row(e: EpisodeEntry) -> str:
    cells = [f'<a href="#episode-{e.index}">{e.index}</a>', _text(e.kind), str(e.steps), f"{e.seconds:.1f}",
             _yes_no(e.success), _text(e.task or "-"), "-" if e.takeovers is None else str(e.takeovers)]
    numbers = {0, 2, 3, 6}
    return "<tr>" + "".join(f'<td class="number">{c}</td>' if i in numbers else f"<td>{c}</td>"
                            for i, c in enumerate(cells)) + "</tr>"


def _section(e: EpisodeEntry) -> str:
    parts = [f'<section id="episode-{e.index}">',
             f"<h2>Episode {e.index}: {_text(e.kind)}, {e.steps} steps, {e.seconds:.1f} s</h2>"]
    if e.task:
        parts.append(f"<p>{_text(e.task)}</p>")
    if e.problem:
        parts.append(f'<p class="problem">{_text(e.problem)}</p>')
    if e.video:  # above the plot, which is taller than a screen
        parts.append(f'<video controls preload="metadata" src="{_src(e.video)}"></video>')
    if e.plot:
        parts.append(f'<img src="{_src(e.plot)}" alt="joints of episode {e.index}">')
    parts.append("</section>")
    return "\n".join(parts)


def render_page(title: str, summary: Sequence[str], episodes: Sequence[EpisodeEntry]) -> str:
    header = "".join(f"<th>{h}</th>" for h in ("episode", "kind", "steps", "seconds", "success", "task",
                                                 "takeovers"))
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_text(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_text(title)}</h1>",
        *(f"<p>{_text(line)}</p>" for line in summary),
        '<table id="episodes">',
        f"<thead><tr>{header}</tr></thead>",
        "<tbody>",
        *(_row(e) for e in episodes),
        "</tbody>",
        "</table>",
        *(_section(e) for e in episodes),
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"


def write_page(path: Path, title: str, summary: Sequence[str], episodes: Sequence[EpisodeEntry]) -> None:
    """The page under a temporary name, then renamed: a browser open on the old page never sees half a new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render_page(title, summary, episodes), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
