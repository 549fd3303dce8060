"""LeRobot's ACT beside tandem's: trained on the same demonstrations, evaluated by the same tandem-eval (--rig sim).

    python3 bench/lerobot_act.py --work runs/lerobot_act                     # 50 demos, 20000 steps, 50 rollouts
    python3 bench/lerobot_act.py --work runs/la --steps 3000 --mode chunk    # both sides 3000 steps, open loop
    python3 bench/lerobot_act.py --work runs/la --steps 1000 --mode chunk --side lerobot   # its 1000-step checkpoint
    python3 bench/lerobot_act.py --work runs/la7500 --dataset runs/la/data/demos --steps 7500 --mode chunk --side tandem
    python3 bench/lerobot_act.py --work /tmp/la --demos 3 --image-size 96x128 --steps 20 --episodes 2   # a check
    python3 bench/lerobot_act.py --work runs/li --task insertion --record-size 240x320 --image-size 72x96 --mode chunk
    python3 bench/lerobot_act.py --work runs/lerobot_act --dataset runs/results/data/transfer_cube  # demos recorded
    python3 bench/lerobot_act.py --work runs/lerobot_act --table              # the table of what is done so far
    python3 bench/lerobot_act.py --work runs/lerobot_act --dry-run            # the commands (as for an empty folder)

Every step is a command, printed before it runs, its output in WORK/logs/ (bench/sim_results.py's runner). A step
whose output exists is skipped and an interrupted training run resumes from its last checkpoint, so running the
script again continues where it stopped.
  demos    --dataset, else --demos scripted demonstrations (seeds 0..) recorded with the one camera only (the sim
           rig file without its other cameras, WORK/sim_<camera>.yaml) at --record-size: WORK/data/demos
  export   tandem-export --kinds demo, its frames shrunk to --image-size where that is smaller than the recorded
           size: WORK/data/lerobot (LeRobot v3.0, AV1)
  lerobot  lerobot-train --policy.type=act in LeRobot's environment (--venv): WORK/runs/lerobot_act
  tandem   tandem-train --preset cpu, with the 20-minute recipe's flags unless --tandem-recipe cpu:
           WORK/runs/tandem_act
  eval     tandem-eval --rig sim of each on the same seeds (1000..) in --mode (ensemble: temporal ensembling, a query
           every step; chunk: open-loop chunks); the LeRobot checkpoint from LeRobot's environment, where tandem is
           installed beside it (bench/interop.py's ensure_venv(with_tandem=True))

The same on both sides: the demonstrations (all of them: tandem-train --val-fraction 0), the camera (--camera, the
top one by default) at --image-size, chunk 50, batch 8, --steps, no ImageNet weights (LeRobot's default
downloads them; tandem's cpu preset has none), and the evaluation's seeds, image size and render style. The rest is
each one's own recipe, shown in the table: LeRobot's ACT defaults (dim 512, ffn 3200, 4+1 layers, ResNet-18, lr
1e-5, frames decoded from AV1 for every sample) and tandem's cpu preset (hidden 256, ffn 1024, 2+2 layers, lr 1e-4,
frames decoded once and cached), by default as the README's 20-minute recipe runs it (--tandem-recipe fast: the
convnet backbone, bf16 autocast, still frames sampled at 0.2; sim_results.py's FAST), or with its ResNet-18 in fp32
(--tandem-recipe cpu). --lerobot-arg passes more options to lerobot-train (e.g. --lerobot-arg=--num_workers=0).

Image size: LeRobot 0.4.4's ACT neither resizes nor crops. Its config takes the dataset's image shape, and the only
way to resize is a torchvision Resize in --dataset.image_transforms, which runs in training only while the saved
config still names the dataset's size. So the export is shrunk to --image-size (tandem-export --image-size, with
INTER_AREA as tandem-train shrinks its frames), LeRobot trains on that, and tandem-train is given that size. Both are
evaluated with tandem-eval rendering at the recorded size and shrinking each frame to the policy's size the same way
(for LeRobot's checkpoint too). Given neither size, both are 120x160 (tandem's cpu preset); given one, the other
follows it; an existing dataset's recorded size and an existing export's or tandem run's trained size are kept (a
different one is refused).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import yaml  # noqa: E402

from deploy.evaluate import wilson  # noqa: E402
from recording.dataset import INDEX, Dataset  # noqa: E402
from robot.commands import image_size  # noqa: E402
from robot.rig import PRESET_DIR  # noqa: E402
from robot.sim.tasks import TASK_NAMES  # noqa: E402

HERE = Path(__file__).resolve()
REPO_ID = "tandem/lerobot_act_bench"
CHUNK, BATCH, FIRST_SEED = 50, 8, 1000


def bench_module(name: str) -> ModuleType:
    """Another bench script as a module (bench/ is no package, and its deploy.py would shadow tandem's deploy)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE.with_name(f"{name}.py"))
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


interop, sim_results = bench_module("interop"), bench_module("sim_results")
TANDEM_RECIPES = {"fast": sim_results.FAST, "cpu": ()}  # tandem-train flags beyond the cpu preset's


@dataclass(frozen=True)
class Settings:
    work: Path
    dataset: Path | None
    demos: int
    steps: int
    episodes: int
    image_size: tuple[int, int] | None  # the size both train at (None: the recorded size)
    record_size: tuple[int, int] | None  # the size demos are recorded at (None: image_size, else 120x160)
    camera: str
    task: str
    venv: Path
    save_every: int
    lerobot_args: tuple[str, ...]
    tandem_recipe: str  # a key of TANDEM_RECIPES
    mode: str  # tandem-eval --mode
    dry_run: bool  # read by sim_results.command

    @property
    def demos_dir(self) -> Path:
        return self.dataset or self.work / "data" / "demos"

    @property
    def export(self) -> Path:
        return self.work / "data" / "lerobot"

    def run(self, side: str) -> Path:
        return self.work / "runs" / f"{side}_act"

    def result(self, name: str) -> Path:
        return self.work / "results" / f"{name}.json"


# -- the steps ----------------------------------------------------------------------------------------------------
def one_camera_rig(s: Settings) -> Path:
    """The sim rig file with only the camera the policies see: the demos render and store nothing else."""
    rig = yaml.safe_load((PRESET_DIR / "sim.yaml").read_text())
    if s.camera not in rig["cameras"]:
        raise SystemExit(f"--camera {s.camera}: the sim rig has cameras {', '.join(rig['cameras'])}")
    rig["cameras"] = {s.camera: rig["cameras"][s.camera]}
    path = s.work / f"sim_{s.camera}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(rig, sort_keys=False))
    return path


def record_demos(s: Settings) -> None:
    if s.dataset is not None:
        return
    have = len(sim_results.episodes_of(s.demos_dir, "demo"))
    if have < s.demos:
        sim_results.command(s, "record", ["tandem-record", "--rig", str(one_camera_rig(s)), "--task", s.task,
                                          "--dataset", str(s.demos_dir), "--episodes", str(s.demos - have),
                                          "--seed", str(have), "--image-size", hxw(recorded(s))])


def export(s: Settings) -> None:
    if not (s.export / "meta" / "info.json").exists():
        shrink = [] if trained(s) == recorded(s) else ["--image-size", hxw(trained(s))]
        sim_results.command(s, "export", ["tandem-export", str(s.demos_dir), "--out", str(s.export), "--repo-id",
                                          REPO_ID, "--kinds", "demo", *shrink])


def timed(s: Settings, side: str, args: list[str]) -> None:
    """Run a training command; its wall time adds to WORK/results/train_<side>.json (a resumed run's too)."""
    started = time.perf_counter()
    sim_results.command(s, f"train_{side}", args)
    if s.dry_run:
        return
    path = s.result(f"train_{side}")
    before = json.loads(path.read_text())["seconds"] if path.exists() else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": before + time.perf_counter() - started}) + "\n")


def lerobot_step(run: Path) -> int:
    path = run / "checkpoints" / "last" / "training_state" / "training_step.json"
    return int(json.loads(path.read_text())["step"]) if path.exists() else 0


def lerobot_checkpoint(s: Settings) -> tuple[Path, int]:
    """LeRobot's model to evaluate and its step: the checkpoint of --steps where lerobot-train kept one (it keeps
    every --save-every, and ACT's learning rate is constant, so a shorter run would end the same), else the newest."""
    run = s.run("lerobot")
    at = run / "checkpoints" / f"{s.steps:06d}" / "pretrained_model"
    if at.exists():
        return at, s.steps
    return run / "checkpoints" / "last" / "pretrained_model", lerobot_step(run)


def tandem_checkpoint(s: Settings) -> tuple[Path, int]:
    return s.run("tandem") / "last", sim_results.trained_step(s.run("tandem"))


def train_lerobot(s: Settings, python: Path) -> None:
    run, done = s.run("lerobot"), lerobot_step(s.run("lerobot"))
    if done >= s.steps:
        return
    train = str(python.with_name("lerobot-train"))
    if done:
        config = run / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
        timed(s, "lerobot", [train, f"--config_path={config}", "--resume=true", f"--steps={s.steps}"])
        return
    if run.exists() and not s.dry_run:
        shutil.rmtree(run)  # stopped before its first checkpoint: LeRobot starts only in a new folder
    h, w = trained(s)
    state = _export_state_dim(s)
    features = {"observation.state": {"type": "STATE", "shape": [state]},  # the state and one camera, no others
                f"observation.images.{s.camera}": {"type": "VISUAL", "shape": [3, h, w]}}
    timed(s, "lerobot", [
        train, f"--dataset.repo_id={REPO_ID}", f"--dataset.root={s.export}", "--dataset.video_backend=pyav",
        "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null", f"--policy.chunk_size={CHUNK}", f"--policy.n_action_steps={CHUNK}",
        f"--policy.input_features={json.dumps(features)}", f"--steps={s.steps}", f"--batch_size={BATCH}",
        f"--save_freq={s.save_every}", "--eval_freq=0", f"--log_freq={max(1, min(100, s.steps // 10))}",
        f"--output_dir={run}", "--wandb.enable=false", *s.lerobot_args])


def train_tandem(s: Settings) -> None:
    run = s.run("tandem")
    if sim_results.trained_step(run) >= s.steps:
        return
    resume = ["--resume"] if (run / "last").exists() else ["--overwrite"]
    timed(s, "tandem", [
        "tandem-train", "--dataset", str(s.demos_dir), "--out", str(run), "--preset", "cpu", "--cameras", s.camera,
        "--image-size", hxw(trained(s)), "--chunk-size", str(CHUNK), "--batch-size", str(BATCH),
        "--steps", str(s.steps),
        "--kinds", "demo", "--val-fraction", "0", "--cache-images", "--workers", "0",
        "--save-every", str(min(500, s.save_every)), "--log-every", str(max(1, min(100, s.steps // 10))),
        "--no-progress", "--device", "cpu", *TANDEM_RECIPES[s.tandem_recipe], *resume])


def evaluated(side: str, steps: int, mode: str) -> str:
    """The name of a side's evaluation (its result and log) after `steps` training steps, in tandem-eval's `mode`."""
    return f"eval_{side}_{steps}steps" + ("" if mode == "ensemble" else f"_{mode}")


def evaluate(s: Settings, side: str, eval_command: str, checkpoint: Path, steps: int) -> None:
    name = evaluated(side, steps if not s.dry_run else s.steps, s.mode)
    if s.result(name).exists():
        return
    render = [] if s.dry_run or not Dataset.open(s.demos_dir).info.render else \
        ["--render", Dataset.open(s.demos_dir).info.render]
    sim_results.command(s, name, [
        eval_command, "--rig", "sim", "--checkpoint", str(checkpoint), "--task", task(s), "--episodes",
        str(s.episodes), "--seed", str(FIRST_SEED), "--image-size", hxw(recorded(s)), *render,
        "--mode", s.mode,
        "--json", str(s.result(name))])


# -- the dataset's facts ------------------------------------------------------------------------------------------
def recorded(s: Settings) -> tuple[int, int]:
    """The camera's recorded size, at which the evaluations render too (the asked one while nothing is recorded)."""
    if (s.demos_dir / INDEX).exists():
        info = Dataset.open(s.demos_dir).info
        if s.camera not in info.cameras:
            raise SystemExit(f"{s.demos_dir} has cameras {', '.join(info.cameras)}, not --camera {s.camera}")
        if s.camera in info.image_size:
            return agreed("--record-size", s.record_size, tuple(info.image_size[s.camera]), s.demos_dir,
                          "--dataset" if s.dataset else "--work")
    return s.record_size or s.image_size or (120, 160)


def trained(s: Settings) -> tuple[int, int]:
    """The size both policies train at: that of what is trained or exported already, else --image-size, else the
    recorded size."""
    info, config = s.export / "meta" / "info.json", s.run("tandem") / "last" / "config.json"
    if info.exists():
        shape = json.loads(info.read_text())["features"][f"observation.images.{s.camera}"]["shape"]
        return agreed("--image-size", s.image_size, tuple(shape[:2]), s.export)
    if config.exists():
        return agreed("--image-size", s.image_size, tuple(json.loads(config.read_text())["image_size"]), config.parent)
    return s.image_size or recorded(s)


def agreed(flag: str, asked: tuple[int, int] | None, done: tuple[int, int], where: Path,
           instead: str = "--work") -> tuple[int, int]:
    """The size of what exists, which a run in the same work folder (or on the same --dataset) cannot change."""
    if asked is not None and asked != done:
        raise SystemExit(f"{flag} {hxw(asked)}: {where} is at {hxw(done)}; use another {instead} (or leave {flag} out)")
    return done


def hxw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def task(s: Settings) -> str:
    recorded = Dataset.open(s.demos_dir).info.task if (s.demos_dir / INDEX).exists() else ""
    return recorded or s.task


def _export_state_dim(s: Settings) -> int:
    info = s.export / "meta" / "info.json"
    return json.loads(info.read_text())["features"]["observation.state"]["shape"][0] if info.exists() else 14


# -- the table ----------------------------------------------------------------------------------------------------
def recipe(folder: Path) -> str:
    """A checkpoint's recipe in a few words, from what it saved."""
    config = json.loads((folder / "config.json").read_text())
    if "dim_model" in config:  # LeRobot's ACTConfig
        return (f"LeRobot ACT: dim {config['dim_model']}, ffn {config['dim_feedforward']}, "
                f"{config['n_encoder_layers']}+{config['n_decoder_layers']} layers, {config['vision_backbone']}, "
                f"lr {config['optimizer_lr']:.0e}")
    runs = json.loads((folder / "meta.json").read_text())["extra"].get("training") or [{}]  # one per (resumed) run
    return (f"tandem ACT (cpu preset): hidden {config['hidden_dim']}, ffn {config['dim_feedforward']}, "
            f"{config['enc_layers']}+{config['dec_layers']} layers, {config['backbone']}, lr {config['lr']:.0e}, "
            f"{runs[-1].get('precision', 'fp32')}, still frames at {runs[-1].get('still_weight', 1.0)}")


def inference_p50(log: Path) -> str:
    """tandem-eval's own figure, from the last summary in its log."""
    lines = [line.strip() for line in log.read_text().splitlines() if "inference p50" in line] if log.exists() else []
    return lines[-1].removeprefix("inference p50 ").removesuffix(" per chunk") if lines else ""


def table(s: Settings) -> str:
    n_demos = len(sim_results.episodes_of(s.demos_dir, "demo"))
    shrunk = "" if trained(s) == recorded(s) else f" (trained at {hxw(trained(s))})"
    lines = [f"{n_demos} {task(s)} demos, camera {s.camera} at {hxw(recorded(s))}{shrunk}, chunk {CHUNK}, "
             f"batch {BATCH}; "
             f"tandem-eval --rig sim, seeds {FIRST_SEED}.., --mode {s.mode}",
             "| policy | steps | training | s/step | inference p50 | success (95% CI) | episodes reaching each stage |",
             "|---|---|---|---|---|---|---|"]
    for side, (folder, steps) in {"lerobot": lerobot_checkpoint(s), "tandem": tandem_checkpoint(s)}.items():
        if not (folder / "config.json").exists():
            continue
        seconds = json.loads(s.result(f"train_{side}").read_text())["seconds"] \
            if s.result(f"train_{side}").exists() else float("nan")
        run_steps = lerobot_step(s.run(side)) if side == "lerobot" else steps  # an earlier checkpoint: its share
        per_step = seconds / max(run_steps, 1)
        training = f"{per_step * steps / 60:.1f} min" + ("" if steps == run_steps else
                                                         f" (its share of a {run_steps}-step run)")
        success, stages, latency = "not evaluated yet", "", ""
        result = s.result(evaluated(side, steps, s.mode))
        if result.exists():
            r = json.loads(result.read_text())
            lo, hi = wilson(r["successes"], r["episodes"])
            success = (f"{r['successes']}/{r['episodes']} = {100 * r['success_rate']:.0f}% "
                       f"({100 * lo:.0f}-{100 * hi:.0f}%)")
            stages = ", ".join(f"{k} {v}" for k, v in r["stages"].items())
            latency = inference_p50(s.work / "logs" / f"{evaluated(side, steps, s.mode)}.log")
        lines.append(f"| {recipe(folder)} | {steps} | "
                     f"{training} | {per_step:.2f} | {latency} | {success} | {stages} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the data, runs, results and logs")
    parser.add_argument("--dataset", type=Path, help="a tandem dataset of demos to use instead of recording them")
    parser.add_argument("--demos", type=int, default=50, help="demonstrations to record (default 50)")
    parser.add_argument("--steps", type=int, default=20000, help="training steps of each side (default 20000)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation rollouts of each side (default 50)")
    parser.add_argument("--image-size", type=image_size, metavar="HxW", help="the size both policies train at "
                        "(default: the recorded size); smaller than recorded: the export is shrunk to it, larger is "
                        "refused")
    parser.add_argument("--record-size", type=image_size, metavar="HxW", help="the size demos are recorded and "
                        "evaluations rendered at (default: --image-size, else 120x160; an existing dataset's own)")
    parser.add_argument("--camera", default="cam_high", help="the one camera both policies see (default cam_high)")
    parser.add_argument("--task", choices=TASK_NAMES, default="transfer_cube", help="the task of recorded demos")
    parser.add_argument("--venv", type=Path, default=Path("/work/lerobot-venv"), help="LeRobot's environment")
    parser.add_argument("--save-every", type=int, default=5000, help="LeRobot's checkpoint interval in steps (each "
                        "is kept: ~0.6 GB at LeRobot's default size); tandem saves every min(500, this)")
    parser.add_argument("--lerobot-arg", action="append", default=[], metavar="--NAME=VALUE",
                        help="one more option for lerobot-train (repeatable)")
    parser.add_argument("--tandem-recipe", choices=TANDEM_RECIPES, default="fast",
                        help="tandem's side: fast, the README's 20-minute recipe (convnet, bf16, still frames at 0.2); "
                        "cpu, the cpu preset as it is (ResNet-18, fp32)")
    parser.add_argument("--mode", choices=("ensemble", "chunk"), default="ensemble",
                        help="tandem-eval's mode for both sides: ensemble (temporal ensembling, a query every step) or "
                        "chunk (open-loop chunks, one query per chunk: far fewer of LeRobot's slower queries)")
    parser.add_argument("--side", choices=("lerobot", "tandem"), action="append",
                        help="train and evaluate only this side (repeatable; default both), e.g. --side tandem "
                        "--steps 7500 in a work folder of its own for tandem's 20-minute run on the same --dataset")
    parser.add_argument("--table", action="store_true", help="only print the table of what is done")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args()
    args.side = args.side or ["lerobot", "tandem"]
    if args.dataset is not None and not (args.dataset / INDEX).exists():
        parser.error(f"--dataset {args.dataset}: no tandem dataset there (no {INDEX})")
    s = Settings(args.work, args.dataset, args.demos, args.steps, args.episodes, args.image_size, args.record_size,
                 args.camera, args.task, args.venv, args.save_every, tuple(args.lerobot_arg), args.tandem_recipe,
                 args.mode, args.dry_run)
    if any(t > r for t, r in zip(trained(s), recorded(s), strict=True)):
        origin = "--image-size" if args.image_size else "the existing export's or tandem run's size"
        parser.error(f"{origin} {hxw(trained(s))} is larger than the recorded {hxw(recorded(s))}: frames are "
                     "only shrunk")
    if not args.table:
        record_demos(s)
        if "lerobot" in args.side:
            python = args.venv / "bin" / "python" if args.dry_run else interop.ensure_venv(args.venv, with_tandem=True)
            export(s)
            train_lerobot(s, python)
            evaluate(s, "lerobot", str(python.with_name("tandem-eval")), *lerobot_checkpoint(s))
        if "tandem" in args.side:
            train_tandem(s)
            evaluate(s, "tandem", "tandem-eval", *tandem_checkpoint(s))
    print(table(s) if (s.demos_dir / INDEX).exists() else "no demos yet")


if __name__ == "__main__":
    main()
