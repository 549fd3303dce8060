"""tandem-deploy (the policy on the rig, with pedal takeovers) and tandem-eval (seeded sim rollouts)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import torch

from calibration.connection import ConnectedRig, connect
from calibration.file import CalibrationError
from deploy.corrections import TakeoverRecorder
from deploy.evaluate import Collect, EpisodeOutcome, evaluate
from deploy.inference import ChunkPredictor
from deploy.rollout import MODES, STOP_KEYS, DeployOptions, ramp_to, run_rollout
from policies.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from recording.dataset import Dataset, DatasetError
from recording.layout import StateLayout
from recording.session import RecordOptions, dataset_info, open_dataset, warn_if_low_space
from robot.clock import RealClock
from robot.commands import image_size, raise_interrupt
from robot.dynamixel.errors import DynamixelError
from robot.loop import TooFarError
from robot.rig import PEDAL_BACKENDS, Rig, load_rig
from robot.sim.gate import parse_gate
from robot.sim.tasks import EPISODE_STEPS, REWARD_STAGES, TASK_NAMES
from teleop.keys import open_keys
from teleop.pedal import open_pedal

HARDWARE_ROLLOUT_S = 60.0  # a rollout without --seconds, for the free-space estimate
ERRORS = (ValueError, RuntimeError, DynamixelError, CalibrationError, DatasetError, TooFarError, OSError)


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rig", default="sim", help="rig YAML file, or a preset: aloha, sim (default: sim)")
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory written by tandem-train "
                        "(e.g. runs/act/best)")
    parser.add_argument("--mode", choices=MODES, default="ensemble",
                        help="ensemble: query every step and average the overlapping chunks (temporal ensembling, "
                        "default); chunk: play each chunk open-loop, query every --query-every steps; async: "
                        "inference on its own thread on the newest observation, the loop never waits for it")
    parser.add_argument("--query-every", type=int, default=0, metavar="K",
                        help="chunk mode: steps between queries (default: the chunk size)")
    parser.add_argument("--ensemble-m", type=float, default=0.01, metavar="M",
                        help="temporal ensembling weight exp(-M*i), i=0 the oldest prediction (default 0.01)")
    parser.add_argument("--device", default="cpu", help="torch device for inference (cpu, cuda, cuda:1 ...)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for inference (default: all cores "
                        "but one on hardware, leaving the control loop and the cameras a core; all of them in the "
                        "simulated world, which waits in lockstep)")
    parser.add_argument("--dataset", help="dataset folder: every takeover is saved there as a correction episode")
    parser.add_argument("--keep-rollouts", action="store_true", help="with --dataset: also save each whole "
                        "rollout as a `rollout` episode with a per-step intervention mask")
    parser.add_argument("--raw", action="store_true", help="with --dataset: raw frames instead of JPEG rows")
    parser.add_argument("--max-step", type=float, default=0.1, metavar="RAD",
                        help="largest change of a joint command per step, rad (default 0.1)")
    parser.add_argument("--approach-speed", type=float, default=0.5, metavar="RAD_S",
                        help="joint speed of the ramp to the start pose, rad/s (default 0.5)")
    parser.add_argument("--refuse-above", type=float, default=1.5, metavar="RAD",
                        help="refuse to ramp when a joint is further than this from the start pose (default 1.5)")
    sim = parser.add_argument_group("simulated rig (--rig sim)")
    sim.add_argument("--task", choices=TASK_NAMES, help="task (default: the one the checkpoint's dataset recorded)")
    sim.add_argument("--seed", type=int, default=1000, help="seed of the first episode; the next ones count up "
                     "(default 1000: away from the seeds demonstrations are recorded with, 0 up)")
    sim.add_argument("--gate", default="", metavar="RULE",
                     help="the scripted operator takes over when RULE fires: drift[:RAD[:STEPS]], dropped, "
                     "stalled[:STEPS] (see robot/sim/gate.py); default: no takeovers")
    sim.add_argument("--expert-labels", action="store_true",
                     help="with --dataset: plain DAgger; the policy drives every step and each rollout is saved as a "
                     "correction episode holding the action the scripted expert would command in every state it "
                     "visited (not with --gate)")
    sim.add_argument("--image-size", type=image_size, metavar="HxW", help="rendered camera size (default: the "
                     "size the checkpoint's dataset was recorded at, else the policy's input size)")
    sim.add_argument("--episode-steps", type=int, default=0, metavar="N",
                     help="control steps per episode (default: the task's, 400 = 8 s)")
    sim.add_argument("--videos", type=Path, metavar="DIR", help="write an MP4 of the cameras per episode")
    parser.add_argument("-v", "--verbose", action="store_true", help="log bus retries")


def deploy_options(args: argparse.Namespace) -> DeployOptions:
    return DeployOptions(mode=args.mode, query_every=args.query_every, m=args.ensemble_m,
                         max_step_rad=args.max_step, approach_speed=args.approach_speed,
                         refuse_above=args.refuse_above)


def check_rig(checkpoint: Checkpoint, rig: Rig, layout: StateLayout) -> None:
    """The checkpoint's cameras and state/action layout against the rig's (CheckpointMismatchError says what)."""
    checkpoint.check_compatible([c.name for c in rig.cameras], layout.dim, layout.dim, source=f"rig {rig.name}")
    if checkpoint.meta.state_names != layout.names:
        raise CheckpointError(f"checkpoint {checkpoint.path} was trained on joints "
                              f"{', '.join(checkpoint.meta.state_names)}; rig {rig.name} has {', '.join(layout.names)}")


# -- the simulated rig -----------------------------------------------------------------------------------------
def training_dataset(checkpoint: Checkpoint) -> Dataset | None:
    path = checkpoint.meta.extra.get("dataset")
    try:
        return Dataset.open(path) if path else None
    except DatasetError:
        return None


def run_sim(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint, verbose: bool) -> int:
    from robot.sim.world_process import SimWorldProcess  # MuJoCo only for the simulated rig

    trained_on = training_dataset(checkpoint)
    task = args.task or (trained_on.info.task if trained_on else "")
    if task not in TASK_NAMES:
        raise ValueError(f"say which task to run: --task {' or '.join(TASK_NAMES)} (the checkpoint's dataset "
                         "does not name one)")
    if args.gate:
        parse_gate(args.gate)  # a bad rule is refused before the world starts
    if args.expert_labels and (args.gate or not args.dataset):
        raise ValueError("--expert-labels needs --dataset (where the labelled rollouts go) and no --gate: the "
                         "expert labels every step instead of taking over")
    existing = Dataset.open(args.dataset) if args.dataset and (Path(args.dataset) / "dataset.json").exists() else None
    cameras = list(checkpoint.config.camera_names)
    size = args.image_size
    if existing is not None:  # corrections join the dataset: render what it was recorded with
        sizes = {tuple(s) for s in existing.info.image_size.values()}
        size = size or (sizes.pop() if len(sizes) == 1 else None)
        cameras = sorted(set(cameras) | set(existing.info.cameras))
    elif args.dataset:
        cameras = [c.name for c in rig.cameras]
    if size is None and trained_on is not None and trained_on.info.image_size:
        size = tuple(next(iter(trained_on.info.image_size.values())))
    size = size or checkpoint.config.image_size
    steps = args.episode_steps or EPISODE_STEPS[task]
    episodes = args.episodes
    world = SimWorldProcess(rig, task, image_size=size, cameras=cameras, operator="off")
    with world as live, connect(live, say=print if verbose else (lambda s: None), **world.bus_options) as connected:
        layout = StateLayout.from_connected(connected)
        check_rig(checkpoint, rig, layout)
        collect = None
        if args.dataset:
            sizes = {name: world.image_size for name in world.cameras}
            dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, not args.raw, task))
            warn_if_low_space(dataset, steps, episodes)
            collect = Collect(dataset, RecordOptions(compress=not args.raw), keep_rollouts=args.keep_rollouts,
                              expert_labels=args.expert_labels)
        predictor = ChunkPredictor(checkpoint, args.device)
        print(f"{task}: {episodes} episode(s) of {steps} steps from seed {args.seed}, policy {checkpoint.path} "
              f"({checkpoint.config.policy}, chunk {checkpoint.config.chunk_size}, cameras "
              f"{', '.join(checkpoint.config.camera_names) or 'none'}), mode {args.mode}, cameras rendered at "
              f"{size[0]}x{size[1]}" + (f", gate {args.gate}" if args.gate else "")
              + (", the expert labels every step" if args.expert_labels else ""), flush=True)
        stages = REWARD_STAGES[task]
        count = [0]

        def progress(outcome: EpisodeOutcome) -> None:
            count[0] += 1
            print(f"episode {count[0]}/{episodes} {outcome.line(stages)} ({outcome.wall_s:.1f} s)", flush=True)

        report = evaluate(world, connected, predictor, task, range(args.seed, args.seed + episodes), steps,
                          deploy_options(args), gate=args.gate, collect=collect, videos=args.videos,
                          checkpoint=str(checkpoint.path), on_episode=progress)
    print(report.summary())
    if getattr(args, "json", None):
        report.save(args.json)
        print(f"report written to {args.json}")
    return 0


# -- hardware ---------------------------------------------------------------------------------------------------
def run_hardware(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
    from robot.cameras import open_cameras

    if args.expert_labels:
        raise ValueError("--expert-labels needs the simulated rig's scripted expert (--rig sim)")
    options = deploy_options(args)
    steps = round(args.seconds * rig.control_hz) if args.seconds > 0 else None
    with ExitStack() as stack:
        if rig.virtual:  # virtual arms on a kinematic bench, no cameras: a state-only policy can run here
            from robot.sim.rig_process import VirtualRigProcess

            rig = stack.enter_context(VirtualRigProcess(rig, leader_motion="still"))
        connected: ConnectedRig = stack.enter_context(connect(rig))
        layout = StateLayout.from_connected(connected)
        check_rig(checkpoint, rig, layout)
        wanted = set(checkpoint.config.camera_names) | ({c.name for c in rig.cameras} if args.dataset else set())
        cameras = open_cameras([c for c in rig.cameras if c.name in wanted and c.device != "sim"])
        stack.callback(lambda: [c.close() for c in cameras.values()])
        dataset = None
        if args.dataset:
            sizes = {c.name: (c.height, c.width) for c in rig.cameras if c.name in cameras}
            dataset = open_dataset(args.dataset, dataset_info(rig, connected, sizes, not args.raw))
            warn_if_low_space(dataset, steps or round(HARDWARE_ROLLOUT_S * rig.control_hz), args.episodes)
        keys = open_keys(args.keys)
        stack.callback(keys.close)
        pedal = open_pedal(rig.pedal, args.pedal)
        if pedal is not None:
            stack.callback(pedal.close)
        print(f"keys: {keys.backend}; stop with {' or '.join(STOP_KEYS)} or Ctrl-C")
        print(f"pedal: {pedal.backend if pedal else 'none (no takeovers)'}")
        predictor = ChunkPredictor(checkpoint, args.device)
        start = checkpoint.meta.extra.get("start_qpos")
        for episode in range(args.episodes):
            if args.episodes > 1 and not wait_for_start(keys, episode, args.episodes):
                break
            if start is not None:
                ramped = ramp_to(connected, start, RealClock(), options)
                print(f"followers at the start pose ({ramped / rig.control_hz:.1f} s)")
            takeovers = (TakeoverRecorder(dataset, layout, cameras, RecordOptions(compress=not args.raw),
                                          checkpoint=str(checkpoint.path), rate_hz=rig.control_hz,
                                          keep_rollout=args.keep_rollouts) if dataset else None)
            print(f"policy running ({args.mode})" + (f" for {args.seconds:g} s" if steps else ""), flush=True)
            try:
                result = run_rollout(connected, predictor, cameras, RealClock(), options, steps=steps, pedal=pedal,
                                     keys=keys.events, takeovers=takeovers)
            except BaseException:
                if takeovers:
                    takeovers.discard()
                raise
            saved = takeovers.finish(result.stop_reason) if takeovers else []
            print(f"episode {episode + 1}: {result.line()}")
            for e in saved:
                print(f"  saved {e.kind} episode {e.index} ({e.length} steps)")
    return 0


def wait_for_start(keys, episode: int, total: int) -> bool:
    """Between episodes the person resets the scene; space starts the next one, q stops."""
    print(f"reset the scene, then press space to start episode {episode + 1}/{total} (q stops)", flush=True)
    while True:
        for key in keys.events():
            if key in ("space", "enter"):
                return True
            if key in STOP_KEYS:
                return False
        time.sleep(0.02)


def deploy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem-deploy",
        description="Run a trained policy on the rig in the 50 Hz control loop. The checkpoint is checked against "
        "the rig (cameras, joints); the followers ramp slowly to the demonstrations' start pose; then every step "
        "the policy's action (temporal ensembling by default) goes through the joint limits and the per-step "
        "clamp to the followers. While the policy runs the leaders follow the followers; hold the pedal to take "
        "over with the leaders, release it to hand back (the policy restarts from the state as it is). With "
        "--dataset each takeover is saved as a correction episode. Stop with q, Esc or Ctrl-C: the followers "
        "hold where they are. With --rig sim (the default) the policy runs in the simulated world, where the "
        "scripted operator takes over per --gate.",
    )
    add_policy_arguments(parser)
    parser.add_argument("--episodes", type=int, default=1, help="rollouts to run (default 1); on hardware space "
                        "starts each after the first")
    parser.add_argument("--seconds", type=float, default=0.0, help="hardware: stop each rollout after this long "
                        "(default: run until q)")
    parser.add_argument("--pedal", choices=PEDAL_BACKENDS, help="pedal backend (default: the rig file's)")
    parser.add_argument("--keys", choices=("auto", "pynput", "terminal", "none"), default="auto",
                        help="operator key backend (auto: pynput with a display, else this terminal)")
    return parser


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem-eval",
        description="Evaluate a policy on the simulated rig: N seeded rollouts through the real loop, driver and "
        "virtual buses; prints the success rate with its 95%% (Wilson) interval and how many episodes reached "
        "each reward stage. With --gate the scripted operator takes over when the rule fires; the report then "
        "shows takeovers per episode and the share of steps under human control, and with --dataset the "
        "takeovers are saved as correction episodes for the next round of training.",
    )
    add_policy_arguments(parser)
    parser.add_argument("--episodes", type=int, default=50, help="seeded rollouts (default 50)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    return parser


def inference_threads() -> int:
    """All cores but one: the control loop, the bus I/O and the camera readers keep a core."""
    return max(1, (os.cpu_count() or 2) - 1)


def is_sim_world(rig: Rig) -> bool:
    """The simulated rig with its world (cameras rendered by MuJoCo), as opposed to bare virtual arms."""
    return rig.virtual and any(c.device == "sim" for c in rig.cameras)


def _setup(args: argparse.Namespace) -> tuple[Rig, Checkpoint]:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, raise_interrupt)
    if args.episodes < 1:
        raise ValueError("--episodes must be at least 1")
    rig = load_rig(args.rig)
    # torch's CPU threads spin while they wait: on a core shared with the loop they cost it whole periods
    torch.set_num_threads(args.threads or (torch.get_num_threads() if is_sim_world(rig) else inference_threads()))
    return rig, load_checkpoint(args.checkpoint, args.device)


def deploy_main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
        if is_sim_world(rig):
            return run_sim(args, rig, checkpoint, verbose=True)
        return run_hardware(args, rig, checkpoint)

    return _main("tandem-deploy", deploy_parser().parse_args(argv), run)


def eval_main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace, rig: Rig, checkpoint: Checkpoint) -> int:
        if not is_sim_world(rig):
            raise ValueError(f"tandem-eval runs on the simulated rig (--rig sim); {rig.source} is hardware: use "
                             "tandem-deploy there")
        return run_sim(args, rig, checkpoint, verbose=False)

    return _main("tandem-eval", eval_parser().parse_args(argv), run)


def _main(prog: str, args: argparse.Namespace, run) -> int:
    try:
        rig, checkpoint = _setup(args)
        return run(args, rig, checkpoint)
    except KeyboardInterrupt:
        print("interrupted: followers held, then released; saved episodes are kept", file=sys.stderr)
        return 130
    except (*ERRORS, CheckpointError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(deploy_main())
