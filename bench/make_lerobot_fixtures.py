"""Writes tests/fixtures/lerobot_v3/: small LeRobotDataset v3.0 folders made by LeRobot's own writer.

tandem's tests read them without LeRobot installed (tandem-import, and the layout
tandem-export must match), so run this only to regenerate them, with the
interpreter of a virtual environment that has LeRobot (not tandem's: LeRobot pins
an older torch). bench/interop.py builds one at /work/lerobot-venv:

    python3.11 -m venv /work/lerobot-venv && /work/lerobot-venv/bin/pip install lerobot==0.4.4
    /work/lerobot-venv/bin/python bench/make_lerobot_fixtures.py [--out tests/fixtures/lerobot_v3]

Every folder goes through LeRobotDataset.create, add_frame, save_episode and
finalize (AV1 videos through PyAV, as LeRobot records), then is loaded back
with LeRobotDataset to be sure it is valid. Four datasets:

  bimanual      3 episodes (12, 15, 9 frames): tandem's features as LeRobot writes them: state, velocity,
                effort, action (14, ALOHA's names), cameras cam_high and cam_left_wrist at 48x64, the
                per-step intervention flag and episode_kind (demo, correction, rollout), two tasks
  aloha_sim     2 episodes (10, 8 frames) in the layout of lerobot/aloha_sim_*: observation.state and action
                of 14 with names {"motors": [...]}, one camera `top`, one task
  single_arm    1 episode of 6 frames of a 6-joint arm (state and action 6), no camera: what a 14-joint rig
                must refuse
  aloha_images  1 episode of 6 frames as aloha_sim, its camera `top` stored as PNG images in the parquet rows
                (dtype "image", LeRobot's use_videos=False) instead of a video

Values are exact functions of (episode, frame) and each camera's frame is a smooth picture whose mean level
encodes the frame, so a reader can check states exactly and frames within the codec's error; expected.json in
each folder lists per episode its length, task, kind and every frame's mean level per camera.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

FPS = 50
H, W = 48, 64
JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")
ALOHA_NAMES = [f"{side}_{joint}" for side in ("left", "right") for joint in JOINTS]
HERE = Path(__file__).resolve().parent


def level(episode: int, frame: int, camera: int) -> int:
    """The mean grey level of a camera's frame: steps of 6 per frame, so neighbours are far apart after AV1."""
    return 40 + (episode * 37 + frame * 6 + camera * 20) % 170


def picture(episode: int, frame: int, camera: int) -> np.ndarray:
    """A smooth picture (a gentle diagonal ramp around the level) that AV1 keeps within a few grey levels."""
    y, x = np.mgrid[0:H, 0:W]
    ramp = (x - W / 2) * 0.4 + (y - H / 2) * 0.3  # mean 0
    base = level(episode, frame, camera) + ramp
    return np.stack([base, base + 8, base - 8], axis=-1).clip(0, 255).round().astype(np.uint8)


def row(episode: int, frame: int, dim: int, offset: float) -> np.ndarray:
    """Exact float32 values (multiples of 1/1024) that differ per episode, frame and column."""
    return ((np.arange(dim) + 1) * (frame + 1) / 1024 + episode + offset).astype(np.float32)


def write(root: Path, repo_id: str, features: dict, episodes: list[dict], robot_type: str) -> None:
    cameras = [k for k, f in features.items() if f["dtype"] in ("video", "image")]
    dim = features["observation.state"]["shape"][0]
    videos = any(f["dtype"] == "video" for f in features.values())
    dataset = LeRobotDataset.create(repo_id, fps=FPS, features=features, root=root, robot_type=robot_type,
                                    use_videos=videos)
    expected = []
    for e, spec in enumerate(episodes):
        means = {k: [] for k in cameras}
        for i in range(spec["length"]):
            frame = {"task": spec["task"], "observation.state": row(e, i, dim, 0.0),
                     "action": row(e, i, dim, 0.5)}
            for key, offset in (("observation.velocity", 0.25), ("observation.effort", 0.75)):
                if key in features:
                    frame[key] = row(e, i, dim, offset)
            for c, key in enumerate(cameras):
                frame[key] = picture(e, i, c)
                means[key].append(float(frame[key].mean()))
            if "intervention" in features:
                frame["intervention"] = np.array([spec["kind"] == "rollout" and 3 <= i < 7])
            if "episode_kind" in features:
                frame["episode_kind"] = spec["kind"]
            dataset.add_frame(frame)
        dataset.save_episode()
        expected.append({**spec, "frame_means": means})
    dataset.finalize()
    (root / "expected.json").write_text(json.dumps({"fps": FPS, "episodes": expected}, indent=1) + "\n")
    loaded = LeRobotDataset(repo_id, root=root, video_backend="pyav")  # LeRobot itself reads it back
    assert loaded.num_episodes == len(episodes) and len(loaded) == sum(s["length"] for s in episodes)
    loaded[len(loaded) - 1]


def vector(names: object, dim: int) -> dict:
    return {"dtype": "float32", "shape": (dim,), "names": names}


def video(dtype: str = "video") -> dict:
    return {"dtype": dtype, "shape": (H, W, 3), "names": ["height", "width", "channels"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "tests" / "fixtures" / "lerobot_v3")
    parser.add_argument("--only", nargs="*", metavar="NAME", help="regenerate only these (default: all)")
    args = parser.parse_args()
    datasets = {
        "bimanual": ("tandem/bimanual", "aloha", {
            "observation.state": vector(ALOHA_NAMES, 14), "observation.velocity": vector(ALOHA_NAMES, 14),
            "observation.effort": vector(ALOHA_NAMES, 14), "action": vector(ALOHA_NAMES, 14),
            "observation.images.cam_high": video(), "observation.images.cam_left_wrist": video(),
            "intervention": {"dtype": "bool", "shape": (1,), "names": None},
            "episode_kind": {"dtype": "string", "shape": (1,), "names": None},
        }, [{"length": 12, "task": "transfer the cube", "kind": "demo"},
            {"length": 15, "task": "transfer the cube", "kind": "rollout"},
            {"length": 9, "task": "insert the peg", "kind": "correction"}]),
        "aloha_sim": ("lerobot/aloha_sim_fixture", "aloha", {
            "observation.state": vector({"motors": ALOHA_NAMES}, 14), "action": vector({"motors": ALOHA_NAMES}, 14),
            "observation.images.top": video(),
        }, [{"length": 10, "task": "Transfer the cube.", "kind": "demo"},
            {"length": 8, "task": "Transfer the cube.", "kind": "demo"}]),
        "single_arm": ("lerobot/single_arm_fixture", "koch", {
            "observation.state": vector([f"{j}.pos" for j in JOINTS[:6]], 6),
            "action": vector([f"{j}.pos" for j in JOINTS[:6]], 6),
        }, [{"length": 6, "task": "wave", "kind": "demo"}]),
        "aloha_images": ("lerobot/aloha_images_fixture", "aloha", {
            "observation.state": vector({"motors": ALOHA_NAMES}, 14), "action": vector({"motors": ALOHA_NAMES}, 14),
            "observation.images.top": video("image"),
        }, [{"length": 6, "task": "Transfer the cube.", "kind": "demo"}]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (repo_id, robot_type, features, episodes) in datasets.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / name
            write(root, repo_id, features, episodes, robot_type)
            shutil.rmtree(args.out / name, ignore_errors=True)
            shutil.copytree(root, args.out / name)
        size = sum(p.stat().st_size for p in (args.out / name).rglob("*") if p.is_file())
        print(f"{args.out / name}: {len(episodes)} episodes, {size / 1000:.0f} kB")


if __name__ == "__main__":
    main()
