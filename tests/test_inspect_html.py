"""tandem-inspect's browser outputs: the episode video (H.264 or AV1 MP4, labelled panels) decoded back with PyAV,
the joint plot's takeover shading found in its pixels, and the --html report loaded in real headless Chromium."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from headless_chromium import CHROMIUM, HeadlessChromium

from recording.dataset import Dataset, EpisodeInfo
from recording.inspect import main as inspect_main
from recording.joint_plot import (
    HEADER,
    HUMAN_SHADE,
    PANEL,
    PLOT_BOTTOM,
    PLOT_LEFT,
    PLOT_RIGHT,
    PLOT_TOP,
    TAKEOVER_COLOR,
    plot_joints,
    tick_label,
    tick_step,
)
from recording.reader import EpisodeReader
from recording.video import VideoWriter, side_by_side
from recording.writer import EpisodeWriter, StepRecord

TAKEOVERS = [(50, 100), (150, 170)]  # [start, stop) steps a person drove in the test rollout
TASK = 'hand the cube over <b>twice</b> & "back"'  # markup that must show as text


def decoded_frames(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.codec.name, [f.to_ndarray(format="rgb24") for f in container.decode(stream)]


def camera_row(reader: EpisodeReader, step: int, labelled: bool) -> np.ndarray:
    cams = reader.camera_names
    return side_by_side([reader.image(c, step) for c in cams], 240, cams if labelled else ())


def write_rollout(path: Path, source: EpisodeReader, times: np.ndarray, spans: list[tuple[int, int]],
                  compress: bool, **attrs) -> None:
    """A rollout episode with `source`'s arrays and images, the control timestamps `times` and a person in control
    over `spans`, written by the real EpisodeWriter."""
    mask = np.zeros(source.length, bool)
    for start, stop in spans:
        mask[start:stop] = True
    cams = source.camera_names
    sizes = {c: source.image_size(c) for c in cams}
    qpos, qvel, action = source.qpos, source.array("/observations/qvel"), source.action
    attrs = {"kind": "rollout", "state_names": source.attrs["state_names"], **attrs}
    with EpisodeWriter(path, sizes, compress=compress, attrs=attrs) as writer:
        for i in range(source.length):
            assert writer.append(StepRecord(t=float(times[i]), qpos=qpos[i], qvel=qvel[i], effort=qvel[i],
                                            action=action[i], images={c: source.image(c, i) for c in cams},
                                            image_t={c: float(times[i]) for c in cams}, intervention=bool(mask[i])))
        writer.close()


@pytest.fixture(scope="module")
def with_rollout(demos, tmp_path_factory):
    """The two demos and a rollout (episode 2) with two takeovers and a task description full of markup."""
    root = tmp_path_factory.mktemp("inspect_html") / "data"
    shutil.copytree(demos, root)
    with Dataset.create_or_open(root, Dataset.open(root).info, say=lambda _: None) as dataset:
        with EpisodeReader(dataset.path(0)) as source:
            write_rollout(dataset.path(2), source, np.arange(source.length) / dataset.info.fps, TAKEOVERS,
                          dataset.info.compress, task_description=TASK)
            dataset.add(EpisodeInfo(2, "rollout", source.length, success=False, task_description=TASK))
    return root


# -- the episode video ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("codec, decoder", [("h264", "h264"), ("av1", "libdav1d")])
def test_episode_video_decodes_with_every_frame_and_labelled_panels(demos, tmp_path, codec, decoder):
    assert inspect_main(["--dataset", str(demos), "--episode", "0", "--out", str(tmp_path), "--codec", codec]) == 0
    video = tmp_path / "episode_0_cameras.mp4"
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and 0 < data.find(b"moov") < data.find(b"mdat")  # faststart: plays while loading
    name, frames = decoded_frames(video)
    with EpisodeReader(Dataset.open(demos).path(0)) as reader:
        step = reader.length // 2
        plain, labelled = camera_row(reader, step, False), camera_row(reader, step, True)
        assert name == decoder and len(frames) == reader.length
    assert frames[0].shape == labelled.shape  # 4 panels of 240x320: already even
    label = np.any(plain != labelled, axis=2)  # where the names are drawn
    panel_width = labelled.shape[1] // 4
    assert all(label[:, k * panel_width:(k + 1) * panel_width].any() for k in range(4)), "a panel has no label"
    got = frames[step].astype(np.int16)
    off_label = np.abs(got - plain)[label].mean()
    on_label = np.abs(got - labelled)[label].mean()
    elsewhere = np.abs(got - plain)[~label].mean()
    assert on_label < 15 and off_label > 40 and elsewhere < 8, (on_label, off_label, elsewhere)


def test_a_video_stopped_by_an_error_is_closed_and_plays_what_it_has(tmp_path):
    path = tmp_path / "cut.mp4"
    with pytest.raises(ValueError, match="frame 10 is 64x64, the video is 48x64"), VideoWriter(path, 50) as writer:
        for i in range(11):
            writer.write(np.full((48 if i < 10 else 64, 64, 3), 20 * i, np.uint8))
    name, frames = decoded_frames(path)
    assert name == "h264" and len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert abs(int(frames[9].mean()) - 180) <= 3
    with pytest.raises(OSError, match="no_such_folder/x.mp4: cannot write a video file here"):
        VideoWriter(tmp_path / "no_such_folder" / "x.mp4", 50)


# -- the joint plot ---------------------------------------------------------------------------------------------
def test_joint_plot_shades_the_takeovers_at_their_times(demos, tmp_path):
    # the loop ran slow in its second half: the time axis must follow the timestamps, not step / fps
    with EpisodeReader(Dataset.open(demos).path(0)) as source:
        n = source.length
        times = 100.0 + np.concatenate([np.arange(n // 2) * 0.02, (n // 2) * 0.02 + np.arange(n - n // 2) * 0.04])
        write_rollout(tmp_path / "rollout.hdf5", source, times, TAKEOVERS, False)
        plot_joints(source, tmp_path / "demo.png", 50.0)
    with EpisodeReader(tmp_path / "rollout.hdf5") as rollout:
        plot_joints(rollout, tmp_path / "rollout.png", 50.0)
    image = cv2.imread(str(tmp_path / "rollout.png"))
    ph, pw = PANEL
    box = image[HEADER + PLOT_TOP + 1:HEADER + ph - PLOT_BOTTOM, :pw]  # the first joint's plot box
    left, right = PLOT_LEFT, pw - PLOT_RIGHT
    seconds = times - times[0]

    def x(step: int) -> float:
        return left + seconds[step] / seconds[-1] * (right - left)

    shaded = np.flatnonzero(np.all(box == HUMAN_SHADE, axis=2).any(axis=0))
    expected = np.concatenate([np.arange(round(x(a)), round(x(b)) + 1) for a, b in TAKEOVERS])
    assert set(shaded) <= set(expected) and len(shaded) >= 0.8 * len(expected), (shaded, expected)
    # the second span sits where the timestamps put it, far from where step / fps would (150/199 of the width)
    assert abs(shaded.max() - x(170)) <= 2 and abs(left + 150 / (n - 1) * (right - left) - x(150)) > 20
    marked = np.flatnonzero(np.all(box == TAKEOVER_COLOR, axis=2).sum(axis=0) > box.shape[0] // 2)
    for start, _ in TAKEOVERS:
        assert np.min(np.abs(marked - x(start))) <= 1, f"no takeover line at step {start}"
    demo = cv2.imread(str(tmp_path / "demo.png"))
    assert not np.all(demo == HUMAN_SHADE, axis=2).any(), "a demo has no takeover to shade"


def test_time_ticks_are_round_seconds():
    assert [tick_step(s) for s in (3.98, 8.0, 0.5, 40.0, 25.0)] == [1, 2, 0.1, 10, 5]
    assert tick_label(2.0, 1) == "2" and tick_label(0.30000000000000004, 0.1) == "0.3"


# -- the HTML report --------------------------------------------------------------------------------------------
class PageParts(HTMLParser):
    """The table's rows (cell texts), and every img, video and problem note of a report page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.media: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self._cell: list[str] | None = None
        self._in_body = self._in_problem = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag in ("img", "video"):
            self.media.append((tag, attrs["src"]))
        elif tag == "p" and attrs.get("class") == "problem":
            self._in_problem = True
            self.problems.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p":
            self._in_problem = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_problem:
            self.problems[-1] += data


def test_report_shows_every_episode_and_the_chosen_videos(with_rollout, tmp_path):
    out = tmp_path / "report"
    assert inspect_main(["--dataset", str(with_rollout), "--html", str(out), "--html-episodes", "2"]) == 0
    page = PageParts((out / "index.html").read_text())
    assert [r[0] for r in page.rows] == ["0", "1", "2"]
    assert page.rows[2][1:] == ["rollout", "200", "4.0", "no", TASK, "2"]
    assert page.rows[0][1] == "demo" and page.rows[0][6] == "0"
    assert page.media == [("img", "episode_0_joints.png"), ("img", "episode_1_joints.png"),
                          ("video", "episode_2_cameras.mp4"), ("img", "episode_2_joints.png")]
    assert all((out / src).stat().st_size > 0 for _, src in page.media)


def test_report_says_what_is_wrong_with_a_bad_file_and_shows_the_rest(with_rollout, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(with_rollout, root)
    bad = root / "episode_1.hdf5"
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated
    assert inspect_main(["--dataset", str(root), "--html", "--no-video"]) == 1
    page = PageParts((root / "report" / "index.html").read_text())
    assert len(page.rows) == 3 and [src for _, src in page.media] == ["episode_0_joints.png", "episode_2_joints.png"]
    assert len(page.problems) == 1 and "episode_1.hdf5" in page.problems[0]
    assert (root / "episode_0.hdf5").exists() and bad.stat().st_size == 5000  # nothing recorded was touched


def test_report_options_are_checked_before_anything_is_written(with_rollout, tmp_path, capsys):
    out = tmp_path / "report"
    assert inspect_main(["--dataset", str(with_rollout), "--html", str(out), "--html-episodes", "1,7-8"]) == 2
    assert "no episode 7, 8" in capsys.readouterr().err and not out.exists()
    assert inspect_main(["--dataset", str(with_rollout), "--html-episodes", "1"]) == 2
    with pytest.raises(SystemExit):
        inspect_main(["--dataset", str(with_rollout), "--html", str(out), "--html-episodes", "3-1"])


PROBE = """(async () => {
  const videos = [...document.querySelectorAll('video')];
  await Promise.all(videos.map(v => new Promise(done => {
    if (v.error) return done();
    v.addEventListener('error', done, {once: true});
    const seek = () => { v.addEventListener('seeked', done, {once: true}); v.currentTime = %(at)s; };
    if (v.readyState >= 1) seek(); else v.addEventListener('loadedmetadata', seek, {once: true});
  })));
  const panels = v => {  // the frame on show, as Chromium decoded it: mean RGB of each quarter
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const w = c.width / 4;
    return [0, 1, 2, 3].map(k => {
      const d = g.getImageData(k * w, 0, w, c.height).data, sum = [0, 0, 0];
      for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
      return sum.map(s => s / (d.length / 4));
    });
  };
  return {
    rows: [...document.querySelectorAll('#episodes tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
    images: [...document.images].map(i => i.naturalWidth),
    videos: videos.map(v => ({src: v.getAttribute('src'), duration: v.duration, error: v.error && v.error.code,
                              ready: v.readyState, width: v.videoWidth, height: v.videoHeight,
                              panels: v.error ? null : panels(v)})),
  };
})()"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium; CI does)")
@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_report_plays_in_headless_chromium(with_rollout, tmp_path, codec):
    out = tmp_path / "report"
    assert inspect_main(["--dataset", str(with_rollout), "--html", str(out), "--codec", codec]) == 0
    dataset = Dataset.open(with_rollout)
    step = 120
    # the flag lets the probe read a frame back from a canvas (a file:// video taints it otherwise); playing needs
    # no flag
    with HeadlessChromium(timeout_s=90, flags=("--allow-file-access-from-files",)) as browser:
        seen = browser.evaluate((out / "index.html").as_uri(), PROBE % {"at": (step + 0.5) / dataset.info.fps})
    assert [r[0] for r in seen["rows"]] == [str(e.index) for e in dataset.episodes()]
    assert seen["rows"][2][5:] == [TASK, "2"]
    assert len(seen["images"]) == 3 and all(w > 0 for w in seen["images"])
    assert len(seen["videos"]) == 3
    for video in seen["videos"]:
        assert video["error"] is None, f"{video['src']}: Chromium cannot play it (MediaError {video['error']})"
        assert video["duration"] is not None and 0 < video["duration"] < 1e6, video
        assert video["duration"] == pytest.approx(200 / dataset.info.fps, abs=0.05)
        assert video["ready"] >= 2 and (video["width"], video["height"]) == (1280, 240)
    name, frames = decoded_frames(out / "episode_2_cameras.mp4")
    ours = frames[step].reshape(240, 4, 320, 3).mean(axis=(0, 2))
    assert np.abs(np.asarray(seen["videos"][2]["panels"]) - ours).max() < 6, (seen["videos"][2]["panels"], ours)
