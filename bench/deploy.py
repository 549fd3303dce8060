"""The deploy loop at 50 Hz in each inference mode, with the small and the paper preset, on this machine.

For each preset a policy with random weights (latency does not depend on the
weights) is saved as a checkpoint and loaded the way tandem-deploy loads one.
The real deploy loop (RealClock, 4 arms on virtual Dynamixel buses in their own
process, the real driver, the leaders following the followers) runs it for
--seconds per mode with 4 cameras serving 480x640 frames, which the policy
resizes to its input size. Printed per run: steps, the loop's period p50/p99
and overruns, the inference latency per chunk (p50/p99), chunks computed, and
the steps that had no chunk yet (async only). Bus reads may wait 50 ms: the bus
emulator shares this machine's cores, and a reply it sends late shows up as a
long period, not as a lost run.

- ensemble: a query every step, inside the step (the loop waits for it).
- chunk: a query every chunk_size steps, inside the step.
- async: inference on its own thread on the newest observation; the loop never
  waits for it (the ratio of its overruns to the sync modes' is the point).

    python3 bench/deploy.py [--seconds 10] [--presets small,paper] [--modes ensemble,chunk,async]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from calibration.connection import connect  # noqa: E402
from deploy.inference import ChunkPredictor, inference_threads  # noqa: E402
from deploy.rollout import MODES, DeployOptions, run_rollout  # noqa: E402
from policies.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from policies.config import preset  # noqa: E402
from policies.normalize import NormStats  # noqa: E402
from policies.registry import make_policy  # noqa: E402
from robot.cameras import Frame  # noqa: E402
from robot.clock import RealClock  # noqa: E402
from robot.rig import load_rig  # noqa: E402
from robot.sim.rig_process import VirtualRigProcess  # noqa: E402

CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")


class StillCamera:
    """A 480x640 frame with a fresh timestamp: the policy's cost does not depend on what it shows."""

    def __init__(self, seed: int) -> None:
        self.image = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        self.index = 0

    def latest(self) -> Frame:
        self.index += 1
        return Frame(self.image, time.perf_counter(), self.index)


def checkpoint_for(name: str, folder: Path) -> Path:
    config = preset(name)
    torch.manual_seed(0)
    policy = make_policy(config)
    dim = config.state_dim
    # Actions stay within a few hundredths of a radian of zero: the virtual arms barely move.
    stats = NormStats(np.zeros(dim), np.ones(dim), -np.ones(dim), np.ones(dim),
                      np.zeros(dim), np.full(dim, 0.01), -np.ones(dim), np.ones(dim))
    return save_checkpoint(folder / name, policy, config, stats, step=0, dataset_digest="bench")


def stop_after(seconds: float):
    """A key source that presses q once `seconds` have passed."""
    deadline = time.perf_counter() + seconds
    return lambda: ["q"] if time.perf_counter() >= deadline else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="per preset and mode (default 10)")
    parser.add_argument("--presets", default="small,paper")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: as tandem-deploy, cores - 1)")
    args = parser.parse_args()
    rig = replace(load_rig("sim"), cameras=())  # bare virtual arms; the cameras are StillCameras
    cameras = {name: StillCamera(i) for i, name in enumerate(CAMERAS)}
    torch.set_num_threads(args.threads or inference_threads())
    print(f"deploy loop at {rig.control_hz:g} Hz, 4 virtual arms, 4 cameras at 480x640, {args.seconds:g} s per run, "
          f"torch {torch.__version__} on CPU with {torch.get_num_threads()} threads")
    print(f"{'preset':<7} {'mode':<9} {'steps':>6} {'rate Hz':>8} {'period p50':>11} {'p99 ms':>8} {'overruns':>9} "
          f"{'infer p50':>10} {'p99 ms':>8} {'chunks':>7} {'no chunk':>9}")
    with tempfile.TemporaryDirectory() as tmp, VirtualRigProcess(rig, leader_motion="still") as live, \
            connect(live, say=lambda s: None, read_deadline_s=0.05) as connected:
        for name in args.presets.split(","):
            predictor = ChunkPredictor(load_checkpoint(checkpoint_for(name, Path(tmp))))
            for mode in args.modes.split(","):
                r = run_rollout(connected, predictor, cameras, RealClock(), DeployOptions(mode=mode), steps=None,
                                keys=stop_after(args.seconds))
                p50, p99, _ = r.latency_ms
                print(f"{name:<7} {mode:<9} {r.steps:>6} {r.loop.rate_hz:>8.2f} {r.loop.p50_ms:>11.2f} "
                      f"{r.loop.p99_ms:>8.2f} {r.loop.overruns:>9} {p50:>10.1f} {p99:>8.1f} {r.inferences:>7} "
                      f"{r.uncovered_steps:>9}", flush=True)


if __name__ == "__main__":
    main()
