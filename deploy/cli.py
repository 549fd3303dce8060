"""tandem-deploy (the policy on the rig, with pedal takeovers) and tandem-eval (seeded sim rollouts).

Argument handling and set-up only: the episodes run in deploy/hardware.py (the
rig's arms) and deploy/evaluate.py (the simulated world). Checkpoint and
dataset are checked against the rig file before any bus or world starts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from calibration.connection import connect
from deploy.compat import camera_sources, check_dataset, check_rig, existing_dataset
from deploy.evaluate import Collect, EpisodeOutcome, EvalReport, evaluate
from deploy.hardware import HardwareRun, run_hardware
from deploy.inference import ChunkPredictor, inference_threads
from deploy.progress import Progress
from deploy.render import render_settings
from deploy.rollout import MODES, DeployOptions, policy_view
from policies.checkpoint import Checkpoint, load_checkpoint
from recording.dataset import Dataset, DatasetError, DatasetInfo
from recording.session import RecordOptions, dataset_info, open_dataset, warn_if_low_space
from robot.commands import (
    EXIT_OK,
    Motion,
    UsageError,
    add_display_argument,
    add_keys_argument,
    add_motion_arguments,
    add_render_argument,
    add_rig_argument,
    add_task_description_argument,
    add_verbose_argument,
    camera_map,
    command_parser,
    image_size,
    is_sim_world,
    positive_int,
    rig_from_args,
    run_command,
    setup_process,
)
from robot.rig import PEDAL_BACKENDS, Rig
from robot.sim.gate import parse_gate
from robot.sim.tasks import EPISODE_STEPS, REWARD_STAGES, TASK_NAMES

INTERRUPTED = "interrupted: followers held, then released; saved episodes are kept"


def say(text: str) -> None:
    print(text, flush=True)


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    add_rig_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory written by tandem-train "
                        "(e.g. runs/act/best), or the training run folder (its best/, else last/)")
    parser.add_argument("--mode", choices=MODES, default="ensemble",
                        help="ensemble: query every step and average the overlapping chunks (temporal ensembling); "
                        "chunk: play each chunk open-loop, query every --query-every steps; async: "
                        "inference on its own thread on the newest observation, the loop never waits for it")
    parser.add_argument("--query-every", type=int, default=0, metavar="K",
                        help="chunk mode: steps between queries (0: the chunk size)")
    parser.add_argument("--ensemble-m", type=float, default=0.01, metavar="M",
                        help="temporal ensembling weight exp(-M*i), i=0 the oldest prediction")
    parser.add_argument("--device", default="cpu", help="torch device for inference (cpu, cuda, cuda:1 ...)")
    parser.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for inference (unset: all "
                        "cores but one on hardware, leaving the control loop and the cameras a core; all of them in "
                        "the simulated world, which waits in lockstep)")
    parser.add_argument("--dataset", help="dataset folder: every takeover is saved there as a correction episode")
    parser.add_argument("--keep-rollouts", action="store_true", help="with --dataset: also save each whole "
                        "rollout as a `rollout` episode with a per-step intervention mask")
    parser.add_argument("--raw", action="store_true", help="with --dataset: raw frames instead of JPEG rows")
    add_task_description_argument(parser)
    parser.add_argument("--camera-map", type=camera_map, metavar="POLICY=RIG[,...]",
                        help="feed the checkpoint's camera POLICY from the rig's camera RIG where their names differ, "
                        "e.g. top=cam_high for a policy trained on ACT's or gym-aloha's simulated images")
    add_motion_arguments(parser)
    add_display_argument(parser)
    sim = parser.add_argument_group("simulated rig (--rig sim)")
    sim.add_argument("--task", choices=TASK_NAMES, help="task (unset: the one the checkpoint's dataset recorded)")
    sim.add_argument("--seed", type=int, default=1000, help="seed of the first episode; the next ones count up "
                     "(1000 is away from the seeds demonstrations are recorded with, 0 up)")
    sim.add_argument("--gate", default="", metavar="RULE",
                     help="the scripted operator takes over when RULE fires: drift[:RAD[:STEPS]], dropped, "
                     "stalled[:STEPS] (see robot/sim/gate.py); empty: no takeovers")
    sim.add_argument("--expert-labels", action="store_true",
                     help="with --dataset: plain DAgger; the policy drives every step and each rollout is saved as a "
                     "correction episode holding the action the scripted expert would command in every state it "
                     "visited (not with --gate)")
    sim.add_argument("--image-size", type=image_size, metavar="HxW", help="rendered camera size (unset: the "
                     "size of the dataset corrections join, else of the checkpoint's training dataset, else the "
                     "policy's input size)")
    add_render_argument(sim, default=None, unset=" (unset: the style of the dataset corrections join, else of the "
                        "policy's training images, else fast)")
    sim.add_argument("--episode-steps", type=positive_int, metavar="N",
                     help="control steps per episode (unset: the task's, 400 = 8 s)")
    sim.add_argument("--videos", type=Path, metavar="DIR", help="write an MP4 of the cameras per episode")
    sim.add_argument("--progress-every", type=positive_int, default=50, metavar="STEPS",
                     help="without a terminal (a log, a pipe): print a progress line every STEPS steps")
    add_verbose_argument(parser)


def deploy_options(args: argparse.Namespace) -> DeployOptions:
    motion = Motion.from_args(args)
    return DeployOptions(mode=args.mode, query_every=args.query_every, m=args.ensemble_m,
                         max_step_rad=motion.max_step, approach_speed=motion.approach_speed,
                         refuse_above=motion.refuse_above)


# -- the simulated rig -----------------------------------------------------------------------------------------
def training_dataset(checkpoint: Checkpoint) -> DatasetInfo | None:
    path = checkpoint.meta.extra.get("dataset")
    try:
        return Dataset.open(path).info if path else None
    except DatasetError:
        return None


def run_sim(prog: str, args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint, verbose: bool) -> int:
    from robot.sim.world_process import SimWorldProcess  # MuJoCo only for the simulated rig

    trained_on = training_dataset(checkpoint)
    task = args.task or (trained_on.task if trained_on else "")
    if task not in TASK_NAMES:
        raise UsageError(f"say which task to run: --task {' or '.join(TASK_NAMES)} (the checkpoint's dataset "
                         "does not name one)")
    if args.gate:
        try:
            parse_gate(args.gate)  # a bad rule is refused before the world starts
        except ValueError as exc:
            raise UsageError(f"--gate {args.gate}: {exc}") from None
    if args.expert_labels and (args.gate or not args.dataset):
        raise UsageError("--expert-labels needs --dataset (where the labelled rollouts go) and no --gate: the "
                         "expert labels every step instead of taking over")
    check_rig(checkpoint, rig, args.camera_map)
    existing = existing_dataset(args.dataset)
    fed = list(camera_sources(checkpoint.config.camera_names, args.camera_map).values())
    render = render_settings(fed, checkpoint.config.image_size,
                             [c.name for c in rig.cameras], requested=args.image_size, existing=existing,
                             collecting=bool(args.dataset), trained_on=trained_on, dataset=str(args.dataset),
                             requested_render=args.render, policy_render=checkpoint.meta.extra.get("render", ""))
    if render.warning:
        say(f"warning: {render.warning}")
    if args.dataset:
        check_dataset(args.dataset, existing, rig, dict.fromkeys(render.cameras, render.image_size), not args.raw,
                      task, render.render)
    steps = args.episode_steps or EPISODE_STEPS[task]
    episodes, stages = args.episodes, REWARD_STAGES[task]
    report = EvalReport(task, str(checkpoint.path), args.mode, args.gate, expert_labels=args.expert_labels,
                        planned=episodes)
    progress = Progress(episodes, steps, every=args.progress_every, rate_hz=rig.control_hz, gated=bool(args.gate))

    def episode_done(outcome: EpisodeOutcome) -> None:
        say(f"episode {len(report.episodes)}/{episodes} {outcome.line(stages)} ({outcome.wall_s:.1f} s)")

    world = SimWorldProcess(rig, task, image_size=render.image_size,  # every camera where they are shown
                            cameras=True if args.display else list(render.cameras), operator="off",
                            render=render.render)
    try:
        with world as live, connect(live, say=say if verbose else (lambda s: None), **world.bus_options) as connected, \
                policy_view(args.display, connected, world.cameras, prog=prog, near=args.dataset, say=say) as view:
            collect = None
            if args.dataset:
                # the cameras recorded, not every one the world renders for --display
                sizes = {name: world.image_size for name in render.cameras}
                dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, not args.raw, task,
                                                                  render.render))
                warn_if_low_space(dataset, steps, episodes)
                collect = Collect(dataset, RecordOptions(compress=not args.raw), keep_rollouts=args.keep_rollouts,
                                  expert_labels=args.expert_labels,
                                  task_description=args.task_description)
            predictor = ChunkPredictor(checkpoint, args.device, camera_map=args.camera_map)
            h, w = render.image_size
            say(f"{task}: {episodes} episode(s) of {steps} steps from seed {args.seed}, policy {checkpoint.path} "
                f"({checkpoint.config.policy}, chunk {checkpoint.config.chunk_size}, cameras "
                f"{', '.join(fed_by(predictor.camera_sources)) or 'none'}), mode {args.mode}, cameras rendered at "
                f"{h}x{w} ({render.size_from}), render {render.render} ({render.render_from})"
                + (f", gate {args.gate}" if args.gate else "")
                + (", the expert labels every step" if args.expert_labels else ""))
            evaluate(world, connected, predictor, task, range(args.seed, args.seed + episodes), steps,
                     deploy_options(args), gate=args.gate, collect=collect, videos=args.videos,
                     checkpoint=str(checkpoint.path), on_episode=episode_done, report=report, progress=progress,
                     view=view)
    except KeyboardInterrupt:
        progress.clear()
        finish_report(prog, args, report)  # the episodes that finished are results too
        raise
    finish_report(prog, args, report)
    return EXIT_OK


def fed_by(sources: dict[str, str]) -> list[str]:
    """The policy's cameras for the start-up line, each mapped one with the rig camera that feeds it."""
    return [name if source == name else f"{name} <- {source}" for name, source in sources.items()]


def finish_report(prog: str, args: argparse.Namespace, report: EvalReport) -> None:
    if not report.episodes:
        return
    say(report.summary())
    json_path = getattr(args, "json", None)
    if json_path:
        report.save(json_path)
        say(f"report written to {json_path}")


# -- hardware ---------------------------------------------------------------------------------------------------
def run_arms(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
    if args.expert_labels:
        raise UsageError("--expert-labels needs the simulated rig's scripted expert (--rig sim)")
    run = HardwareRun(episodes=args.episodes, seconds=args.seconds, dataset=args.dataset,
                      keep_rollouts=args.keep_rollouts, compress=not args.raw, keys=args.keys, pedal=args.pedal,
                      device=args.device, task_description=args.task_description, camera_map=args.camera_map,
                      display=args.display)
    run_hardware(rig, checkpoint, deploy_options(args), run, say=say)
    return EXIT_OK


# -- the commands -----------------------------------------------------------------------------------------------
def deploy_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "tandem-deploy",
        "Run a trained policy on the rig in the 50 Hz control loop. The checkpoint is checked against "
        "the rig (cameras, joints); the followers ramp slowly to the demonstrations' start pose; then every step "
        "the policy's action (temporal ensembling by default) goes through the joint limits and the per-step "
        "clamp to the followers. While the policy runs the leaders follow the followers; hold the pedal to take "
        "over with the leaders, release it to hand back (the policy restarts from the state as it is). With "
        "--dataset each takeover is saved as a correction episode. Stop with q, Esc or Ctrl-C: the followers "
        "hold where they are. With --rig sim (the default) the policy runs in the simulated world, where the "
        "scripted operator takes over per --gate.",
    )
    add_policy_arguments(parser)
    parser.add_argument("--episodes", type=positive_int, default=1, help="rollouts to run; on hardware space "
                        "starts each after the first")
    parser.add_argument("--seconds", type=float, default=0.0, help="hardware: stop each rollout after this long "
                        "(0: run until q)")
    parser.add_argument("--pedal", choices=PEDAL_BACKENDS, help="pedal backend (unset: the rig file's)")
    add_keys_argument(parser)
    return parser


def eval_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "tandem-eval",
        "Evaluate a policy on the simulated rig: N seeded rollouts through the real loop, driver and "
        "virtual buses; prints the success rate with its 95% (Wilson) interval and how many episodes reached "
        "each reward stage. With --gate the scripted operator takes over when the rule fires; the report then "
        "counts the policy's own successes (no takeover) apart from successes with the operator's help, the "
        "takeovers and the share of steps under human control, and with --dataset the takeovers are saved as "
        "correction episodes for the next round of training. Ctrl-C prints the report of the finished episodes.",
    )
    add_policy_arguments(parser)
    parser.add_argument("--episodes", type=positive_int, default=50, help="seeded rollouts")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    return parser


def load(args: argparse.Namespace) -> tuple[Rig, Checkpoint]:
    rig = rig_from_args(args)
    # torch's CPU threads spin while they wait: on a core shared with the loop they cost it whole periods
    torch.set_num_threads(args.threads or (torch.get_num_threads() if is_sim_world(rig) else inference_threads()))
    checkpoint = load_checkpoint(args.checkpoint, args.device)
    if checkpoint.note:  # a run folder was given: say which of its checkpoints runs
        say(checkpoint.note)
    return rig, checkpoint


def deploy_main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
        if is_sim_world(rig):
            return run_sim("tandem-deploy", args, rig, checkpoint, verbose=True)
        return run_arms(args, rig, checkpoint)

    return _main("tandem-deploy", deploy_parser().parse_args(argv), run)


def eval_main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
        if not is_sim_world(rig):
            what = "run --virtual has no simulated world to score it" if rig.virtual else "is hardware"
            raise UsageError(f"tandem-eval runs on the simulated rig (--rig sim); {rig.source} {what}: use "
                             "tandem-deploy there")
        return run_sim("tandem-eval", args, rig, checkpoint, verbose=False)

    return _main("tandem-eval", eval_parser().parse_args(argv), run)


def _main(prog: str, args: argparse.Namespace,
          run: Callable[[argparse.Namespace, Rig, Checkpoint], int]) -> int:
    setup_process(args.verbose)
    return run_command(prog, lambda: run(args, *load(args)), interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(deploy_main())
