"""tandem and LeRobot on each other's datasets, checked by LeRobot's own code (not run in CI).

1. Records 5 episodes on the simulated rig (scripted operator, four cameras at
   48x64), trains a tiny ACT on them for a few steps and runs it once with the
   scripted operator's `drift` gate, which saves the rollout (with its
   intervention flags) and the operator's correction into the dataset; then
   writes it all with tandem-export (AV1, LeRobot v3.0).
2. LeRobot's LeRobotDataset (video_backend="pyav") loads the export: episode
   boundaries, tasks, kinds and intervention flags are compared, and every
   frame's state, action and camera pictures against the tandem episodes: max
   state/action difference (exact is 0) and the frames' error from AV1.
3. LeRobot's ACT trains a few steps on the export (lerobot-train, CPU).
4. LeRobot's writer (LeRobotDataset.create / add_frame / save_episode /
   finalize) writes the same episodes again in the layout of lerobot/aloha_sim_*
   (observation.state, action, one camera `top`), from what LeRobotDataset read;
   tandem-import converts that, it is compared with the tandem episodes again,
   and tandem-train --preset tiny trains a few steps on it.

LeRobot runs in its own virtual environment (its releases pin an older torch);
this script makes it when missing (python3.11 -m venv VENV, pip install
lerobot==0.4.4; minutes) and runs itself there with --lerobot-side for the
LeRobot steps. Prints what it checked and the figures.

    python3 bench/interop.py [--venv /work/lerobot-venv] [--work DIR] [--episodes 5] [--seconds 4] [--steps 5]
                             [--image-size 48x64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

LEROBOT = "lerobot==0.4.4"
REPO_ID = "tandem/interop"
COPY_ID = "lerobot/aloha_sim_from_tandem"
COPY_CAMERA = "cam_high"  # written by LeRobot as `top`, as in lerobot/aloha_sim_*
HERE = Path(__file__).resolve()


# -- the LeRobot side (runs in LeRobot's environment; no tandem import) ------------------------------------------------
def lerobot_check(export: Path, reference: Path) -> dict:
    """LeRobotDataset loads the export; every frame compared with the tandem episodes."""
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    about = json.loads((reference / "episodes.json").read_text())
    kinds, tasks, cameras = about["kinds"], about["tasks"], about["cameras"]
    ref = {path.stem: np.load(path, mmap_mode="r") for path in reference.glob("*.npy")}  # read as needed
    dataset = LeRobotDataset(REPO_ID, root=export, video_backend="pyav")
    meta = dataset.meta.episodes
    lengths = [int(ref[f"{e}_qpos"].shape[0]) for e in range(len(kinds))]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
    checked = {"episodes": dataset.num_episodes == len(kinds), "frames": len(dataset) == sum(lengths),
               "boundaries": list(meta["dataset_from_index"]) == starts and list(meta["length"]) == lengths,
               "episode tasks": [list(t) for t in meta["tasks"]] == [[t] for t in tasks]}
    worst = {"state": 0.0, "action": 0.0, "frame mean": 0.0, "frame pixel": 0.0}
    frame_errors, flagged, kinds_seen = [], 0, {}
    flags_ok = kinds_ok = tasks_ok = True
    started = time.perf_counter()
    for index in range(len(dataset)):
        item = dataset[index]
        e, i = int(item["episode_index"]), int(item["frame_index"])
        for name, key, ours in (("state", "observation.state", "qpos"), ("action", "action", "action")):
            worst[name] = max(worst[name], float(np.abs(item[key].numpy() - ref[f"{e}_{ours}"][i]).max()))
        flags_ok &= bool(item["intervention"]) == bool(ref[f"{e}_intervention"][i])
        flagged += bool(item["intervention"])
        kinds_seen.setdefault(item["episode_kind"], set()).add(e)
        kinds_ok &= item["episode_kind"] == kinds[e]
        tasks_ok &= item["task"] == tasks[e]
        for cam in cameras:
            image = item[f"observation.images.{cam}"].permute(1, 2, 0).numpy() * 255
            error = np.abs(image - ref[f"{e}_{cam}"][i].astype(np.float32))
            frame_errors.append(float(error.mean()))
            worst["frame mean"] = max(worst["frame mean"], frame_errors[-1])
            worst["frame pixel"] = max(worst["frame pixel"], float(error.max()))
    checked.update({"intervention flags": flags_ok, "episode kinds": kinds_ok, "frame tasks": tasks_ok})
    return {"checked": checked, "worst": worst, "frame error": float(np.mean(frame_errors)), "items": len(dataset),
            "cameras": cameras, "flagged": flagged, "kinds": {k: len(v) for k, v in kinds_seen.items()},
            "seconds": time.perf_counter() - started}


def lerobot_write(export: Path, out: Path) -> dict:
    """LeRobot's writer makes an aloha_sim-like dataset (state, action, camera `top`) of what it read back."""
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    source = LeRobotDataset(REPO_ID, root=export, video_backend="pyav")
    names = source.meta.features["observation.state"]["names"]
    video = {"dtype": "video", "shape": tuple(source.meta.features[f"observation.images.{COPY_CAMERA}"]["shape"]),
             "names": ["height", "width", "channels"]}
    features = {"observation.state": {"dtype": "float32", "shape": (len(names),), "names": {"motors": names}},
                "action": {"dtype": "float32", "shape": (len(names),), "names": {"motors": names}},
                "observation.images.top": video}
    copy = LeRobotDataset.create(COPY_ID, fps=source.fps, features=features, root=out, robot_type="aloha")
    started = time.perf_counter()
    previous = 0
    for index in range(len(source)):
        item = source[index]
        if int(item["episode_index"]) != previous:
            copy.save_episode()
            previous = int(item["episode_index"])
        image = (item[f"observation.images.{COPY_CAMERA}"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        copy.add_frame({"observation.state": item["observation.state"].numpy(), "action": item["action"].numpy(),
                        "observation.images.top": image, "task": item["task"]})
    copy.save_episode()
    copy.finalize()
    return {"episodes": copy.meta.total_episodes, "frames": copy.meta.total_frames,
            "seconds": time.perf_counter() - started}


def lerobot_train(export: Path, out: Path, steps: int) -> dict:
    """lerobot-train's ACT for a few steps on the export (CPU, no pretrained backbone: nothing to download)."""
    command = [str(Path(sys.executable).with_name("lerobot-train")), f"--dataset.repo_id={REPO_ID}",
               f"--dataset.root={export}", "--dataset.video_backend=pyav", "--policy.type=act",
               "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
               f"--steps={steps}", "--batch_size=2", "--num_workers=0", "--log_freq=1", "--save_checkpoint=false",
               "--eval_freq=0", f"--output_dir={out}", "--wandb.enable=false"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    lines = (done.stdout + done.stderr).splitlines()
    losses = [float(word.split(":")[1]) for line in lines for word in line.split() if word.startswith("loss:")]
    return {"returncode": done.returncode, "losses": losses, "seconds": time.perf_counter() - started,
            "tail": lines[-15:] if done.returncode else []}


def lerobot_side(argv: list[str]) -> None:
    action, *rest = argv
    if action == "check":
        result = lerobot_check(Path(rest[0]), Path(rest[1]))
    elif action == "write":
        result = lerobot_write(Path(rest[0]), Path(rest[1]))
    else:
        result = lerobot_train(Path(rest[0]), Path(rest[1]), int(rest[2]))
    print(json.dumps(result))
    sys.stdout.flush()
    os._exit(0)  # LeRobot's decoder threads can abort the interpreter's exit ("terminate called ...")


# -- the tandem side ---------------------------------------------------------------------------------------------------
def ensure_venv(venv: Path, *, with_tandem: bool = False) -> Path:
    """LeRobot's environment (made when missing); `with_tandem`: tandem installed there too (install_tandem)."""
    python = venv / "bin" / "python"
    if not (python.exists() and subprocess.run([python, "-c", "import lerobot"], capture_output=True).returncode == 0):
        print(f"making LeRobot's environment in {venv} ({LEROBOT}; minutes)", flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", LEROBOT], check=True)
    if with_tandem:
        install_tandem(python)
    return python


# Run in LeRobot's environment: tandem's requirements (and its dev extra, for its tests) it lacks, as JSON.
UNMET = """
import json
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
missing, kept = [], []
for text in requires("tandem") or []:
    req = Requirement(text)
    if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", "dev")):
        continue
    try:
        have = version(req.name)
    except PackageNotFoundError:
        missing.append(f"{req.name}{req.specifier}")
        continue
    if not req.specifier.contains(have, prereleases=True):
        kept.append(f"{req.name} {have} (tandem asks {req.specifier})")
print(json.dumps({"missing": missing, "kept": kept}))
"""


def install_tandem(python: Path) -> None:
    """This checkout into LeRobot's environment, editable and without its dependencies, then those of tandem's
    requirements that are missing there, with every package already installed pinned: LeRobot's torch (and its
    other pins) are never replaced. A requirement met by an older version that LeRobot pins is kept and said."""
    root = HERE.parent.parent
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "-e", str(root)], check=True)
    unmet = json.loads(subprocess.run([str(python), "-c", UNMET], check=True, capture_output=True,
                                      text=True).stdout)
    if unmet["missing"]:
        print(f"installing tandem's requirements LeRobot's environment lacks: {', '.join(unmet['missing'])}",
              flush=True)
        frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"], check=True,
                                capture_output=True, text=True).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="lerobot-pins-") as pins:
            pins.write("\n".join(line for line in frozen.splitlines() if "==" in line and " @ " not in line))
            pins.flush()
            subprocess.run([*pip, "-c", pins.name, *unmet["missing"]], check=True)
    for line in unmet["kept"]:
        print(f"kept LeRobot's {line}", flush=True)


def run_lerobot(python: Path, *args: object) -> dict:
    done = subprocess.run([str(python), str(HERE), "--lerobot-side", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "SVT_LOG": "1"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"the LeRobot side ({args[0]}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def reference(dataset_root: Path, folder: Path) -> None:
    """The tandem episodes as .npy files for the LeRobot side, which has no h5py (one array at a time in memory)."""
    import numpy as np

    from recording.dataset import Dataset
    from recording.lerobot_export import episode_task
    from recording.reader import EpisodeReader

    dataset = Dataset.open(dataset_root)
    folder.mkdir()
    kinds, tasks = [], []
    for e, episode in enumerate(dataset.episodes()):
        with EpisodeReader(dataset.path(episode.index)) as reader:
            np.save(folder / f"{e}_qpos.npy", reader.qpos)
            np.save(folder / f"{e}_action.npy", reader.action)
            np.save(folder / f"{e}_intervention.npy", reader.array("/intervention"))
            for cam in dataset.info.cameras:
                np.save(folder / f"{e}_{cam}.npy", np.stack([reader.image(cam, i) for i in range(reader.length)]))
        kinds.append(episode.kind)
        tasks.append(episode_task(dataset, episode))
    (folder / "episodes.json").write_text(json.dumps({"kinds": kinds, "tasks": tasks,
                                                      "cameras": dataset.info.cameras}))


def compare_import(source: Path, imported: Path) -> dict:
    """The tandem episodes against what came back through LeRobot's writer and tandem-import."""
    import numpy as np

    from recording.dataset import Dataset
    from recording.reader import EpisodeReader

    a, b = Dataset.open(source), Dataset.open(imported)
    worst = {"state": 0.0, "action": 0.0, "frame mean": 0.0}
    for x, y in zip(a.episodes(), b.episodes(), strict=True):
        with EpisodeReader(a.path(x.index)) as before, EpisodeReader(b.path(y.index)) as after:
            worst["state"] = max(worst["state"], float(np.abs(before.qpos - after.qpos).max()))
            worst["action"] = max(worst["action"], float(np.abs(before.action - after.action).max()))
            for i in range(after.length):
                error = np.abs(before.image(COPY_CAMERA, i).astype(float) - after.image("top", i)).mean()
                worst["frame mean"] = max(worst["frame mean"], float(error))
    return {"episodes": [len(a.episodes()), len(b.episodes())], "lengths": [x.length for x in b.episodes()] ==
            [x.length for x in a.episodes()], "worst": worst}


def tandem(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def show(title: str, checked: dict, worst: dict | None = None) -> None:
    print(f"\n{title}")
    for name, ok in checked.items():
        print(f"  {name:<22} {'ok' if ok else 'DIFFERENT'}")
    for name, value in (worst or {}).items():
        print(f"  max {name} difference: {value:.6g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/work/lerobot-venv"), help="LeRobot's environment")
    parser.add_argument("--work", type=Path, help="folder for the datasets and runs (default: a temporary one)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each simulated episode")
    parser.add_argument("--steps", type=int, default=5, help="training steps for each side")
    parser.add_argument("--image-size", default="48x64", metavar="HxW", help="rendered camera size")
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    work = args.work or Path(tempfile.mkdtemp(prefix="interop-"))
    work.mkdir(parents=True, exist_ok=True)
    source, export, copy, imported = work / "tandem", work / "lerobot", work / "lerobot_written", work / "imported"
    for folder in (source, export, copy, imported):
        if folder.exists():
            sys.exit(f"{folder} exists; give a new --work folder")

    started = time.perf_counter()
    tandem("-m", "recording.cli", "--rig", "sim", "--task", "transfer_cube", "--episodes", str(args.episodes),
           "--seconds", str(args.seconds), "--image-size", args.image_size, "--dataset", str(source))
    print(f"recorded {args.episodes} simulated episodes of {args.seconds:g} s at {args.image_size} into {source} "
          f"({time.perf_counter() - started:.0f} s)")
    started = time.perf_counter()
    tandem("-m", "policies.cli", "--dataset", str(source), "--out", str(work / "tandem_demo_act"), "--preset", "tiny",
           "--steps", str(args.steps), "--workers", "0", "--no-progress", "--val-fraction", "0", "--device", "cpu")
    tandem("-m", "deploy.cli", "--rig", "sim", "--checkpoint", str(work / "tandem_demo_act" / "last"), "--dataset",
           str(source), "--keep-rollouts", "--gate", "drift", "--episodes", "1", "--episode-steps",
           str(round(args.seconds * 50)), "--image-size", args.image_size, "--device", "cpu")
    from recording.dataset import Dataset

    kinds = [e.kind for e in Dataset.open(source).episodes()]
    print(f"a tiny ACT ({args.steps} steps) run once, gated: {kinds.count('rollout')} rollout and "
          f"{kinds.count('correction')} correction episode(s) added ({time.perf_counter() - started:.0f} s)")

    from recording.lerobot_export import export_dataset

    summary = export_dataset(source, export, repo_id=REPO_ID)
    print(f"tandem-export: {summary.episodes} episodes, {summary.frames} frames, {len(summary.cameras)} cameras, "
          f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s ({summary.frames / summary.seconds:.0f} frames/s)")
    reference(source, work / "reference")

    check = run_lerobot(python, "check", export, work / "reference")
    show(f"LeRobot's LeRobotDataset on the export ({check['items']} items, each with its "
         f"{len(check['cameras'])} camera frames, {check['seconds']:.0f} s):", check["checked"], check["worst"])
    print(f"  frames' mean absolute error, averaged over all frames: {check['frame error']:.3f} grey levels of 255")
    print(f"  as LeRobot reads them: {', '.join(f'{n} {k}' for k, n in check['kinds'].items())} episode(s), "
          f"{check['flagged']} steps with intervention true")

    trained = run_lerobot(python, "train", export, work / "lerobot_act", args.steps)
    losses = trained["losses"]
    print(f"\nLeRobot's ACT (lerobot-train, CPU) on the export: exit {trained['returncode']}, {len(losses)} steps "
          f"logged, loss {losses[0]:.3f} -> {losses[-1]:.3f}, {trained['seconds']:.0f} s" if losses else
          f"\nLeRobot's ACT (lerobot-train) on the export: exit {trained['returncode']}, no loss logged:\n  " +
          "\n  ".join(trained["tail"]))

    written = run_lerobot(python, "write", export, copy)
    print(f"\nLeRobot's writer: {written['episodes']} episodes, {written['frames']} frames in the aloha_sim layout "
          f"(camera top) at {copy} ({written['seconds']:.0f} s)")
    started = time.perf_counter()
    from recording.lerobot_import import import_dataset
    from robot.rig import load_rig

    result = import_dataset(copy, imported, load_rig("sim"), say=lambda _: None)
    print(f"tandem-import: {len(result.episodes)} episodes, {result.frames} steps, cameras "
          f"{', '.join(result.cameras)}, {time.perf_counter() - started:.1f} s")
    back = compare_import(source, imported)
    show("the tandem episodes against LeRobot's copy, imported (its frames went through AV1 twice):",
         {"episodes": back["episodes"][0] == back["episodes"][1], "lengths": back["lengths"]}, back["worst"])

    out = tandem("-m", "policies.cli", "--dataset", str(imported), "--out", str(work / "tandem_act"), "--preset",
                 "tiny", "--cameras", "top", "--steps", str(args.steps), "--workers", "0", "--no-progress",
                 "--val-fraction", "0", "--log-every", "1", "--device", "cpu")
    steps = [line for line in out.splitlines() if line.lstrip().startswith("step")]
    print(f"\ntandem-train --preset tiny --cameras top on it: {len(steps)} steps logged")
    for line in steps[:1] + steps[-1:]:
        print(f"  {line.strip()}")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--lerobot-side":
        lerobot_side(sys.argv[2:])
    else:
        main()
