"""How the simulated cameras render, by name, without importing MuJoCo (for argument parsers and dataset checks).

`fast` (the default) turns shadows, reflections and multisampling off: about
half the time per frame on a CPU. `aloha` renders as gym-aloha and ACT render
the same scene (dm_control's Physics.render: shadows, reflections and the
scene's 4x multisampling), pixel for pixel, so a policy trained on their images
or on LeRobot's simulated ALOHA datasets is evaluated on what it was trained on.
`python3 bench/render_match.py` measures both against gym-aloha's own frames.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderStyle:
    shadows: bool
    reflections: bool
    multisampling: bool  # the scene's own offscreen samples (gym-aloha's scene.xml: 4); False: none


RENDER_STYLES = {"fast": RenderStyle(shadows=False, reflections=False, multisampling=False),
                 "aloha": RenderStyle(shadows=True, reflections=True, multisampling=True)}
RENDER_NAMES = tuple(RENDER_STYLES)
DEFAULT_RENDER = "fast"


def render_style(name: str) -> RenderStyle:
    if name not in RENDER_STYLES:
        raise ValueError(f"unknown render {name!r}; choose one of: {', '.join(RENDER_NAMES)}")
    return RENDER_STYLES[name]
