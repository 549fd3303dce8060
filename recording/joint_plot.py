"""An episode's joints as a PNG drawn with OpenCV (no plotting library): one panel per joint, observed position
and the action sent over time in seconds, the spans where a person had control shaded and each takeover marked.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from recording.reader import EpisodeFormatError, EpisodeReader

PANEL = (170, 420)  # height, width of one joint's panel
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 40, 10, 15, 32  # the plot box's margins inside a panel
HEADER = 48  # title and legend above the panels
QPOS_COLOR, ACTION_COLOR = (200, 90, 20), (30, 140, 240)  # BGR: blue observed, orange action
HUMAN_SHADE = (215, 215, 255)  # BGR: light red behind the steps a person drove
TAKEOVER_COLOR = (40, 40, 200)  # BGR: dark red line where a takeover starts
GRID_COLOR, BOX_COLOR, TEXT_COLOR = (238, 238, 238), (200, 200, 200), (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def episode_times(reader: EpisodeReader, fps: float) -> np.ndarray:
    """Seconds from the episode's first step: its control timestamps where they are usable (simulated episodes run
    on simulated time), else step index / fps."""
    t = reader.optional("/timestamps/control")
    if t is not None and t.shape == (reader.length,) and reader.length > 1 and np.all(np.isfinite(t)) \
            and np.all(np.diff(t) >= 0) and t[-1] > t[0]:
        return (t - t[0]).astype(np.float64)
    return np.arange(reader.length, dtype=np.float64) / fps


def takeover_spans(reader: EpisodeReader) -> list[tuple[int, int]] | None:
    """[start, stop) steps where a person had control (the `/intervention` mask of rollouts); None where the file
    has no mask (ALOHA's files, and ours from before it)."""
    mask = reader.optional("/intervention")
    if mask is None:
        return None
    if mask.shape != (reader.length,):
        raise EpisodeFormatError(reader.path, "/intervention", f"shape {mask.shape}, expected ({reader.length},) "
                                 "as /observations/qpos")
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def tick_step(span: float, target: int = 6) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span` seconds."""
    raw = max(span, 1e-9) / target
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def plot_joints(reader: EpisodeReader, path: Path, fps: float) -> None:
    """Write the joints PNG of one episode; `fps` places the steps in time when the file has no usable timestamps."""
    qpos, action = reader.qpos, reader.action
    names = [str(n) for n in reader.attrs.get("state_names", [f"joint {i}" for i in range(reader.dim)])]
    times = episode_times(reader, fps)
    spans = takeover_spans(reader) or []
    end = max(float(times[-1]) if len(times) else 0.0, 1.0 / fps)
    columns = 2
    rows = -(-reader.dim // columns)
    ph, pw = PANEL
    canvas = np.full((rows * ph + HEADER, columns * pw, 3), 255, np.uint8)
    cv2.putText(canvas, f"{reader.path.name}: observed (blue) and action (orange) against time (s)", (10, 20), FONT,
                0.5, TEXT_COLOR, 1, cv2.LINE_AA)
    if spans:
        cv2.rectangle(canvas, (10, 30), (24, 40), HUMAN_SHADE, cv2.FILLED)
        cv2.line(canvas, (10, 30), (10, 40), TAKEOVER_COLOR, 2)
        cv2.putText(canvas, f"a person in control ({len(spans)} takeover(s), each start marked)", (30, 40), FONT,
                    0.4, TEXT_COLOR, 1, cv2.LINE_AA)
    step = tick_step(end)
    ticks = np.arange(0.0, end + step * 1e-6, step)
    for j in range(reader.dim):
        y0, x0 = HEADER + (j % rows) * ph, (j // rows) * pw
        left, right, top, bottom = x0 + PLOT_LEFT, x0 + pw - PLOT_RIGHT, y0 + PLOT_TOP, y0 + ph - PLOT_BOTTOM

        def x_of(t: np.ndarray | float, left: int = left, right: int = right) -> np.ndarray:
            return left + np.asarray(t) / end * (right - left)

        for start, stop in spans:  # stop: the first step handed back, or the end
            x1 = x_of(times[start])
            x2 = x_of(times[stop]) if stop < len(times) else right
            cv2.rectangle(canvas, (int(round(x1)), top), (int(round(x2)), bottom), HUMAN_SHADE, cv2.FILLED)
        for t in ticks:
            x = int(round(x_of(t)))
            cv2.line(canvas, (x, top), (x, bottom), GRID_COLOR, 1)
            cv2.line(canvas, (x, bottom), (x, bottom + 4), BOX_COLOR, 1)
            label = tick_label(t, step)
            (w, _), _ = cv2.getTextSize(label, FONT, 0.33, 1)
            cv2.putText(canvas, label, (x - w // 2, bottom + 15), FONT, 0.33, TEXT_COLOR, 1, cv2.LINE_AA)
        for start, _ in spans:
            x = int(round(x_of(times[start])))
            cv2.line(canvas, (x, top), (x, bottom), TAKEOVER_COLOR, 2)
        series = [qpos[:, j]] + ([action[:, j]] if j < action.shape[1] else [])
        finite = np.concatenate([s[np.isfinite(s)] for s in series])  # a NaN is tandem-inspect's check to name
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        hi = hi if hi > lo else lo + 1e-3
        cv2.rectangle(canvas, (left, top), (right, bottom), BOX_COLOR, 1)
        cv2.putText(canvas, f"{names[j]}  [{lo:.2f}, {hi:.2f}]", (left + 5, top - 3), FONT, 0.38, TEXT_COLOR, 1,
                    cv2.LINE_AA)
        for values, color in zip(series, (QPOS_COLOR, ACTION_COLOR), strict=False):
            ok = np.isfinite(values)
            if ok.sum() < 2:
                continue
            ys = bottom - (values[ok] - lo) / (hi - lo) * (bottom - top)
            points = np.stack([x_of(times[ok]), ys], axis=1).round().astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], False, color, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"{path}: could not write the plot")
