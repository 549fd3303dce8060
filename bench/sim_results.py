"""The simulated rig's results table, end to end: demos -> ACT -> 50 seeded rollouts, a DAgger round, ablations.

    python3 bench/sim_results.py --work runs/results                  # everything (many hours on 2 cores)
    python3 bench/sim_results.py --work runs/results --only base      # some experiments (names below)
    python3 bench/sim_results.py --work runs/results --table          # the table from what is done so far
    python3 bench/sim_results.py --work runs/results --dry-run        # the commands (as for an empty folder)

Every step is one of the project's commands (tandem-record, tandem-train,
tandem-eval), printed before it runs, its output in WORK/logs/. A step whose
output exists is skipped and an interrupted training run resumes from its last
checkpoint, so running the script again continues where it stopped. Run it in
the background (nohup ... &); it is not part of the test suite.

Experiments (--only takes these names):
  base        50 transfer_cube demos, ACT (`--preset`), evaluated with temporal ensembling and open-loop chunks
  convnet     the base recipe with the five-convolution backbone (policies/convnet.py) in place of ResNet-18
  fast        the base recipe made cheap for a CPU: the convnet backbone, bf16 autocast and the demos' still frames
              (the final hold) sampled at 0.2 (`--still-weight`); `--fast-steps` (default 7500, about 18 minutes
              of two idle cores), not `--steps`
  insertion   the same recipe on insertion
  insertion_fast  the fast recipe on insertion (`--fast-steps` too)
  insertion_fast_240  the same at the demos' 240x320 (an 8x10 feature grid; the step costs ~1.75x)
  insertion_fast_96  the same at 96x128 (a 3x4 grid)
  insertion_fast_72  the same at 72x96 (a 3x3 grid)
  insertion_fast_72_all  the same on all 50 demos (none held out for validation)
  insertion_fast_72_longer  the insertion_fast_72 run trained on to twice --fast-steps (--resume with a larger
              --steps: the cosine schedule goes back up to its value there and decays again)
  insertion_100  the 72x96 recipe on 100 demos (twice --demos)
  insertion_perturb  the 72x96 recipe on 50 demos whose followers were pushed off the expert's path while it
              moved freely (tandem-record --perturb 0.03), its targets recorded as the actions (as in DART)
  insertion_fast_72_seed1  the insertion_fast_72 run again with training seed 1 (how far one recipe's runs spread)
  insertion_fast_72_gated  a human-gated DAgger round at scale on the insertion_fast_72_seed1 policy: the
              scripted gate's takeovers in --demos open-loop rollouts (seeds 2000..) become corrections, the policy
              is trained on for half --fast-steps on demos + corrections
  insertion_wrist  the 72x96 recipe with both wrist cameras beside the top one (three cameras, a 3x3 grid each)
  insertion_aug  insertion with DrQ random-shift augmentation and a GroupNorm ResNet (the recipe's 16% there
              comes with a validation loss that stops falling: a generalization gap)
  round       one human-gated DAgger round: the scripted gate's takeovers on seeds 2000.. become corrections,
              the base policy is trained further on demos + corrections; against it, the same further
              training on (a) plain demos and (b) expert-labelled rollouts (plain DAgger), each with as many
              labelled steps as the corrections hold
  insertion_round  the same round on the insertion policy (more telling where the base is far from 100%)
  chunks      chunk sizes 1, 10 and 100 (50 is the base)
  bc          the BC-ConvMLP baseline (one action per step, as in the ACT paper)
Each policy is evaluated on the same 50 seeds (1000..1049, none of them a demo's seed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from deploy.evaluate import wilson  # noqa: E402
from recording.dataset import INDEX, Dataset  # noqa: E402
from robot.sim.tasks import EPISODE_STEPS  # noqa: E402

EXPERIMENTS = ("base", "convnet", "fast", "insertion", "insertion_fast", "insertion_fast_240", "insertion_fast_96",
               "insertion_fast_72", "insertion_fast_72_all", "insertion_fast_72_longer", "insertion_100",
               "insertion_perturb", "insertion_fast_72_seed1", "insertion_fast_72_gated", "insertion_wrist",
               "insertion_aug", "round", "insertion_round", "chunks", "bc")


@dataclass(frozen=True)
class Settings:
    work: Path
    demos: int
    steps: int  # training steps of a policy from scratch
    extra_steps: int  # further training of the base policy in the DAgger round and its comparisons
    episodes: int  # evaluation rollouts per policy
    round_episodes: int  # gated rollouts that collect corrections
    gate: str
    preset: str
    image_size: str
    dry_run: bool
    fast_steps: int = 7500  # the fast experiments' training steps (about 18 min of two idle cores)

    def data(self, name: str) -> Path:
        return self.work / "data" / name

    def run(self, name: str) -> Path:
        return self.work / "runs" / name

    def result(self, name: str) -> Path:
        return self.work / "results" / f"{name}.json"


# -- running one command, skipped when its output exists ---------------------------------------------------------
def command(s: Settings, log_name: str, args: list[str]) -> None:
    if shutil.which(args[0]) is None:
        raise SystemExit(f"{args[0]} is not on PATH: install the project first (pip install -e .)")
    line = shlex.join(args)
    print(f"$ {line}", flush=True)
    if s.dry_run:
        return
    log = s.work / "logs" / f"{log_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {line}\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env={"MUJOCO_GL": "egl", **os.environ})
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}) after {time.perf_counter() - started:.0f} s; see {log}")
    print(f"  done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)


def episodes_of(path: Path, kind: str) -> list:
    return Dataset.open(path).episodes([kind]) if (path / INDEX).exists() else []


def record_demos(s: Settings, name: str, task: str, count: int, *extra: str, first_seed: int = 0) -> None:
    """`count` demos with seeds first_seed.. in data/NAME (`extra`: more tandem-record arguments); an interrupted
    recording goes on from its last seed."""
    have = len(episodes_of(s.data(name), "demo"))
    if have >= count:
        return
    command(s, f"record_{name}", ["tandem-record", "--rig", "sim", "--task", task, "--dataset", str(s.data(name)),
                                  "--episodes", str(count - have), "--seed", str(first_seed + have),
                                  "--image-size", s.image_size, *extra])


def copy_dataset(s: Settings, source: str, name: str) -> None:
    """A dataset that grows from another: the episode files are hard links (never rewritten), the index a copy."""
    target = s.data(name)
    if (target / INDEX).exists() or s.dry_run:
        return
    target.mkdir(parents=True, exist_ok=True)
    for f in s.data(source).glob("episode_*.hdf5"):
        if not (target / f.name).exists():
            os.link(f, target / f.name)
    shutil.copy2(s.data(source) / INDEX, target / INDEX)


def trained_step(run: Path) -> int:
    meta = run / "last" / "meta.json"
    return json.loads(meta.read_text())["step"] if meta.exists() else 0


def train(s: Settings, name: str, dataset: str, steps: int, *extra: str, start_from: str | None = None) -> None:
    """Train runs/NAME to `steps`; `start_from`: continue another run's last checkpoint on this dataset."""
    run = s.run(name)
    if trained_step(run) >= steps:
        return
    if start_from is not None and not (run / "last").exists() and not s.dry_run:
        shutil.copytree(s.run(start_from) / "last", run / "last")
    # a run killed before its first save left logs but no last/: start it again from scratch
    resume = ["--resume"] if (run / "last").exists() or start_from is not None else ["--overwrite"]
    command(s, f"train_{name}", ["tandem-train", "--dataset", str(s.data(dataset)), "--out", str(run),
                                 "--preset", s.preset, "--steps", str(steps), "--cache-images", "--workers", "0",
                                 "--save-every", "500", "--val-every", "1000", "--no-progress", *resume, *extra])


def finished(report: Path) -> bool:
    """A report of a whole evaluation: one stopped early (Ctrl-C) is written too, marked interrupted."""
    return report.exists() and not json.loads(report.read_text()).get("interrupted", False)


def evaluate(s: Settings, name: str, run: str, *extra: str, episodes: int | None = None, seed: int = 1000) -> None:
    # A stopped evaluation runs again; a stopped collection (--dataset) does not: its saved episodes would come twice.
    if finished(s.result(name)) or (s.result(name).exists() and "--dataset" in extra):
        return
    command(s, f"eval_{name}", ["tandem-eval", "--rig", "sim", "--checkpoint", str(s.run(run) / "last"),
                                "--episodes", str(episodes or s.episodes), "--seed", str(seed),
                                "--json", str(s.result(name)), *extra])


def labelled_steps(s: Settings, name: str) -> int:
    if s.dry_run and not s.result(name).exists():
        return 1600  # a stand-in for printing the commands
    return json.loads(s.result(name).read_text())["labelled_steps"]


# -- the experiments ------------------------------------------------------------------------------------------
def recipe(s: Settings, task: str, run: str, steps: int, *extra: str) -> None:
    """50 demos of `task`, a policy trained on them, evaluated with temporal ensembling and open-loop chunks."""
    record_demos(s, task, task, s.demos)
    train(s, run, task, steps, *extra)
    evaluate(s, f"{run}_ensemble", run)
    evaluate(s, f"{run}_chunk", run, "--mode", "chunk")


CONVNET = ("--set", "backbone=convnet", "--set", "backbone_norm=group")  # a cheaper step on a CPU than ResNet-18
FAST = (*CONVNET, "--precision", "bf16", "--still-weight", "0.2")


def base(s: Settings) -> None:
    recipe(s, "transfer_cube", "act", s.steps)


def convnet(s: Settings) -> None:
    recipe(s, "transfer_cube", "act_convnet", s.steps, *CONVNET)


def fast(s: Settings) -> None:
    recipe(s, "transfer_cube", "act_fast", s.fast_steps, *FAST)


def insertion(s: Settings) -> None:
    recipe(s, "insertion", "insertion_act", s.steps)


def insertion_fast(s: Settings) -> None:
    recipe(s, "insertion", "insertion_act_fast", s.fast_steps, *FAST)


def insertion_fast_at(size: str, height: int, *, all_demos: bool = False):
    """The fast recipe on insertion at another training image size (run insertion_act_fast_HEIGHT); `all_demos`:
    trained on all 50, none held out for validation (run insertion_act_fast_HEIGHT_all)."""
    run = f"insertion_act_fast_{height}{'_all' if all_demos else ''}"
    no_validation = ("--val-fraction", "0") if all_demos else ()
    return lambda s: recipe(s, "insertion", run, s.fast_steps, *FAST, "--image-size", size, *no_validation)


def insertion_fast_72_longer(s: Settings) -> None:
    """Whether more steps help: the 72x96 run's last checkpoint trained on to twice its steps."""
    insertion_fast_at("72x96", 72)(s)
    run = "insertion_act_fast_72_longer"
    train(s, run, "insertion", 2 * s.fast_steps, *FAST, "--image-size", "72x96", start_from="insertion_act_fast_72")
    evaluate(s, f"{run}_chunk", run, "--mode", "chunk")
    evaluate(s, f"{run}_ensemble", run)


def insertion_100_demos(s: Settings) -> None:
    """The 72x96 recipe on twice the demos (seeds 0-99): whether more starts carry the reach (beyond the 50 demos
    the results are meant for)."""
    record_demos(s, "insertion", "insertion", s.demos)
    copy_dataset(s, "insertion", "insertion_100")
    record_demos(s, "insertion_100", "insertion", 2 * s.demos)
    train(s, "insertion_act_fast_72_100", "insertion_100", s.fast_steps, *FAST, "--image-size", "72x96")
    evaluate(s, "insertion_act_fast_72_100_chunk", "insertion_act_fast_72_100", "--mode", "chunk")
    evaluate(s, "insertion_act_fast_72_100_ensemble", "insertion_act_fast_72_100")


def insertion_perturbed(s: Settings) -> None:
    """The 72x96 recipe on demos recorded with pushes: states off the expert's path, labelled with its targets."""
    record_demos(s, "insertion_perturb", "insertion", s.demos, "--perturb", "0.03")
    train(s, "insertion_act_fast_72_perturb", "insertion_perturb", s.fast_steps, *FAST, "--image-size", "72x96")
    evaluate(s, "insertion_act_fast_72_perturb_chunk", "insertion_act_fast_72_perturb", "--mode", "chunk")
    evaluate(s, "insertion_act_fast_72_perturb_ensemble", "insertion_act_fast_72_perturb")


def insertion_fast_72_seed1(s: Settings) -> None:
    """The 72x96 recipe with another training seed (initial weights, batches, validation demos): the spread of one
    recipe's runs."""
    recipe(s, "insertion", "insertion_act_fast_72_seed1", s.fast_steps, *FAST, "--image-size", "72x96", "--seed", "1")


def insertion_fast_72_gated(s: Settings) -> None:
    """Corrections where the 72x96 policy goes wrong (the reach, mostly), as many rollouts as demos."""
    insertion_fast_72_seed1(s)
    base_run, run = "insertion_act_fast_72_seed1", "insertion_act_fast_72_gated"
    copy_dataset(s, "insertion", "insertion_gated_72")
    evaluate(s, "insertion_72_collect_gated", base_run, "--mode", "chunk", "--gate", s.gate, "--dataset",
             str(s.data("insertion_gated_72")), episodes=s.demos, seed=2000)
    train(s, run, "insertion_gated_72", s.fast_steps + s.fast_steps // 2, *FAST, "--image-size", "72x96",
          "--seed", "1", "--correction-weight", "2", start_from=base_run)
    evaluate(s, f"{run}_chunk", run, "--mode", "chunk")
    evaluate(s, f"{run}_ensemble", run)


def insertion_wrist(s: Settings) -> None:
    """The 72x96 recipe seeing the grasp and the socket's mouth up close: the wrist cameras beside the top one."""
    cameras = ("--cameras", "cam_high,cam_left_wrist,cam_right_wrist")
    recipe(s, "insertion", "insertion_act_fast_72_wrist", s.fast_steps, *FAST, "--image-size", "72x96", *cameras)


def insertion_aug(s: Settings) -> None:
    record_demos(s, "insertion", "insertion", s.demos)
    train(s, "insertion_act_aug", "insertion", s.steps, "--set", "image_shift=8", "--set", "backbone_norm=group")
    evaluate(s, "insertion_act_aug_ensemble", "insertion_act_aug")


def dagger_round(s: Settings, task: str = "transfer_cube") -> None:
    """One round on `task`'s base policy. Datasets are named TASK_gated etc.; runs and results are named like
    the base run's (no prefix for transfer_cube, `insertion_` for insertion)."""
    prefix = "" if task == "transfer_cube" else f"{task}_"
    base_run = f"{prefix}act"
    BASE[task](s)
    total = trained_step(s.run(base_run)) + s.extra_steps if not s.dry_run else s.steps + s.extra_steps
    # 1. human-gated: the scripted operator takes over when its gate fires; its steps are the corrections
    copy_dataset(s, task, f"{task}_gated")
    evaluate(s, f"{prefix}collect_gated", base_run, "--gate", s.gate, "--dataset", str(s.data(f"{task}_gated")),
             episodes=s.round_episodes, seed=2000)
    budget = labelled_steps(s, f"{prefix}collect_gated")
    train(s, f"{prefix}gated", f"{task}_gated", total, "--correction-weight", "2", start_from=base_run)
    evaluate(s, f"{prefix}gated_ensemble", f"{prefix}gated")
    # 2. the same number of labelled steps as plain demonstrations (new seeds after the base demos)
    demos = max(1, math.ceil(budget / EPISODE_STEPS[task]))
    copy_dataset(s, task, f"{task}_more_demos")
    record_demos(s, f"{task}_more_demos", task, s.demos + demos)
    train(s, f"{prefix}more_demos", f"{task}_more_demos", total, start_from=base_run)
    evaluate(s, f"{prefix}more_demos_ensemble", f"{prefix}more_demos")
    # 3. plain DAgger: the policy drives whole rollouts, the expert labels every state they visit
    copy_dataset(s, task, f"{task}_expert_labels")
    evaluate(s, f"{prefix}collect_expert_labels", base_run, "--expert-labels", "--dataset",
             str(s.data(f"{task}_expert_labels")), "--episode-steps", str(math.ceil(budget / demos)),
             episodes=demos, seed=2000)
    train(s, f"{prefix}expert_labels", f"{task}_expert_labels", total, "--correction-weight", "2",
          start_from=base_run)
    evaluate(s, f"{prefix}expert_labels_ensemble", f"{prefix}expert_labels")


def chunks(s: Settings) -> None:
    record_demos(s, "transfer_cube", "transfer_cube", s.demos)
    for size in (1, 10, 100):
        train(s, f"act_chunk{size}", "transfer_cube", s.steps, "--chunk-size", str(size))
        evaluate(s, f"act_chunk{size}_ensemble", f"act_chunk{size}")
        if size > 1:
            evaluate(s, f"act_chunk{size}_chunk", f"act_chunk{size}", "--mode", "chunk")


def bc(s: Settings) -> None:
    record_demos(s, "transfer_cube", "transfer_cube", s.demos)
    # one action per step, as the ACT paper's baseline (ACT without chunking is the chunks experiment's chunk 1)
    train(s, "bc_convmlp", "transfer_cube", s.steps, "--policy", "bc_convmlp", "--chunk-size", "1")
    evaluate(s, "bc_convmlp", "bc_convmlp")


BASE = {"transfer_cube": base, "insertion": insertion}  # what trains and evaluates each task's base policy
RUN = {"base": base, "convnet": convnet, "fast": fast, "insertion": insertion, "insertion_fast": insertion_fast,
       "insertion_fast_240": insertion_fast_at("240x320", 240),
       "insertion_fast_96": insertion_fast_at("96x128", 96), "insertion_fast_72": insertion_fast_at("72x96", 72),
       "insertion_fast_72_all": insertion_fast_at("72x96", 72, all_demos=True), "insertion_100": insertion_100_demos,
       "insertion_fast_72_longer": insertion_fast_72_longer, "insertion_perturb": insertion_perturbed,
       "insertion_fast_72_seed1": insertion_fast_72_seed1, "insertion_fast_72_gated": insertion_fast_72_gated,
       "insertion_wrist": insertion_wrist,
       "insertion_aug": insertion_aug, "round": dagger_round,
       "insertion_round": lambda s: dagger_round(s, "insertion"), "chunks": chunks, "bc": bc}


# -- the table ---------------------------------------------------------------------------------------------------
ROWS = [  # (result, run, what)
    ("act_ensemble", "act", "ACT, temporal ensembling"),
    ("act_chunk", "act", "ACT, open-loop chunks"),
    ("act_convnet_ensemble", "act_convnet", "ACT, convnet backbone, temporal ensembling"),
    ("act_convnet_chunk", "act_convnet", "ACT, convnet backbone, open-loop chunks"),
    ("act_fast_ensemble", "act_fast", "ACT, fast recipe (convnet, bf16, still frames 0.2), temporal ensembling"),
    ("act_fast_chunk", "act_fast", "ACT, fast recipe, open-loop chunks"),
    ("insertion_act_ensemble", "insertion_act", "ACT, temporal ensembling"),
    ("insertion_act_chunk", "insertion_act", "ACT, open-loop chunks"),
    ("insertion_act_fast_ensemble", "insertion_act_fast", "ACT, fast recipe, temporal ensembling"),
    ("insertion_act_fast_chunk", "insertion_act_fast", "ACT, fast recipe, open-loop chunks"),
    ("insertion_act_fast_240_ensemble", "insertion_act_fast_240", "ACT, fast recipe at 240x320, temporal ensembling"),
    ("insertion_act_fast_240_chunk", "insertion_act_fast_240", "ACT, fast recipe at 240x320, open-loop chunks"),
    ("insertion_act_fast_96_ensemble", "insertion_act_fast_96", "ACT, fast recipe at 96x128, temporal ensembling"),
    ("insertion_act_fast_96_chunk", "insertion_act_fast_96", "ACT, fast recipe at 96x128, open-loop chunks"),
    ("insertion_act_fast_72_ensemble", "insertion_act_fast_72", "ACT, fast recipe at 72x96, temporal ensembling"),
    ("insertion_act_fast_72_chunk", "insertion_act_fast_72", "ACT, fast recipe at 72x96, open-loop chunks"),
    ("insertion_act_fast_72_all_ensemble", "insertion_act_fast_72_all", "ACT, fast recipe at 72x96 on all 50 demos, "
     "temporal ensembling"),
    ("insertion_act_fast_72_all_chunk", "insertion_act_fast_72_all", "ACT, fast recipe at 72x96 on all 50 demos, "
     "open-loop chunks"),
    ("insertion_act_fast_72_longer_chunk", "insertion_act_fast_72_longer", "ACT, fast recipe at 72x96 trained on "
     "to twice the steps, open-loop chunks"),
    ("insertion_act_fast_72_longer_ensemble", "insertion_act_fast_72_longer", "ACT, fast recipe at 72x96 trained "
     "on to twice the steps, temporal ensembling"),
    ("insertion_act_fast_72_100_chunk", "insertion_act_fast_72_100", "ACT, fast recipe at 72x96 on 100 demos, "
     "open-loop chunks"),
    ("insertion_act_fast_72_100_ensemble", "insertion_act_fast_72_100", "ACT, fast recipe at 72x96 on 100 demos, "
     "temporal ensembling"),
    ("insertion_act_fast_72_perturb_chunk", "insertion_act_fast_72_perturb", "ACT, fast recipe at 72x96 on "
     "pushed demos (--perturb 0.03), open-loop chunks"),
    ("insertion_act_fast_72_perturb_ensemble", "insertion_act_fast_72_perturb", "ACT, fast recipe at 72x96 on "
     "pushed demos (--perturb 0.03), temporal ensembling"),
    ("insertion_act_fast_72_seed1_chunk", "insertion_act_fast_72_seed1", "ACT, fast recipe at 72x96, training "
     "seed 1, open-loop chunks"),
    ("insertion_act_fast_72_seed1_ensemble", "insertion_act_fast_72_seed1", "ACT, fast recipe at 72x96, training "
     "seed 1, temporal ensembling"),
    ("insertion_act_fast_72_gated_chunk", "insertion_act_fast_72_gated", "ACT, fast recipe at 72x96, training "
     "seed 1, + one human-gated DAgger round of 50 rollouts, open-loop chunks"),
    ("insertion_act_fast_72_gated_ensemble", "insertion_act_fast_72_gated", "ACT, fast recipe at 72x96, training "
     "seed 1, + one human-gated DAgger round of 50 rollouts, temporal ensembling"),
    ("insertion_act_fast_72_wrist_chunk", "insertion_act_fast_72_wrist", "ACT, fast recipe at 72x96 with the "
     "wrist cameras beside the top one, open-loop chunks"),
    ("insertion_act_fast_72_wrist_ensemble", "insertion_act_fast_72_wrist", "ACT, fast recipe at 72x96 with the "
     "wrist cameras beside the top one, temporal ensembling"),
    ("insertion_act_aug_ensemble", "insertion_act_aug", "ACT + random shift 8, GroupNorm, temporal ensembling"),
    *((f"{prefix}{run}_ensemble", f"{prefix}{run}", what) for prefix in ("", "insertion_") for run, what in (
        ("gated", "ACT + one human-gated DAgger round"),
        ("more_demos", "ACT + as many labelled steps of plain demos"),
        ("expert_labels", "ACT + as many expert-labelled rollout steps (plain DAgger)"))),
    ("act_chunk1_ensemble", "act_chunk1", "ACT, chunk 1 (no chunking)"),
    ("act_chunk10_ensemble", "act_chunk10", "ACT, chunk 10, temporal ensembling"),
    ("act_chunk10_chunk", "act_chunk10", "ACT, chunk 10, open-loop chunks"),
    ("act_chunk100_ensemble", "act_chunk100", "ACT, chunk 100, temporal ensembling"),
    ("act_chunk100_chunk", "act_chunk100", "ACT, chunk 100, open-loop chunks"),
    ("bc_convmlp", "bc_convmlp", "BC-ConvMLP"),
]


def table(s: Settings) -> str:
    lines = ["| task | policy | demos | corrections (labelled steps) | policy, chunk | training | success (95% CI) "
             "| episodes reaching each stage |", "|---|---|---|---|---|---|---|---|"]
    for result, run, what in ROWS:
        if not s.result(result).exists():
            continue
        r = json.loads(s.result(result).read_text())
        meta = json.loads((s.run(run) / "last" / "meta.json").read_text())
        config = json.loads((s.run(run) / "last" / "config.json").read_text())
        data = Path(meta["extra"]["dataset"])
        demos, corrections = len(episodes_of(data, "demo")), episodes_of(data, "correction")
        hours = meta["extra"].get("train_seconds", 0.0) / 3600
        trained = f"{meta['step']} steps" + (f", {hours:.1f} h" if hours else "")
        lo, hi = wilson(r["successes"], r["episodes"])
        stages = ", ".join(f"{k} {v}" for k, v in r["stages"].items())
        fixes = f"{len(corrections)} ({sum(e.length for e in corrections)})" if corrections else "0"
        lines.append(f"| {r['task']} | {what} | {demos} | {fixes} | {config['policy']}, "
                     f"{config['chunk_size']} | {trained} | {r['successes']}/{r['episodes']} = "
                     f"{100 * r['success_rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%) | {stages} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for datasets, runs, results and logs")
    parser.add_argument("--only", default=",".join(EXPERIMENTS), help=f"comma-separated: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--demos", type=int, default=50, help="demonstrations per task (default 50)")
    parser.add_argument("--steps", type=int, default=20000, help="training steps from scratch (default 20000)")
    parser.add_argument("--fast-steps", type=int, default=7500,
                        help="training steps of the fast and insertion_fast experiments (default 7500)")
    parser.add_argument("--extra-steps", type=int, default=5000,
                        help="further training in the DAgger round and its comparisons (default 5000)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation rollouts per policy (default 50)")
    parser.add_argument("--round-episodes", type=int, default=20, help="gated rollouts collecting corrections")
    parser.add_argument("--gate", default="drift", help="the scripted operator's gate rule (default drift)")
    parser.add_argument("--preset", default="cpu", help="tandem-train preset (default cpu)")
    parser.add_argument("--image-size", default="240x320", help="rendered camera size of the demos")
    parser.add_argument("--table", action="store_true", help="only print the table of what is done")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    s = Settings(args.work, args.demos, args.steps, args.extra_steps, args.episodes, args.round_episodes, args.gate,
                 args.preset, args.image_size, args.dry_run, args.fast_steps)
    if not args.table:
        for name in only:
            print(f"== {name}", flush=True)
            RUN[name](s)
    print(table(s) if (s.work / "results").is_dir() else "no results yet")


if __name__ == "__main__":
    main()
