"""How well checkpoints predict recorded episodes when fed the recorded frames (teacher forcing, no rollout).

Every --every steps of each episode, the checkpoint predicts a chunk from the recorded joint state and frames
through the deploy path (`ChunkPredictor`: the same resize and normalization as a rollout); the figure is the
mean |predicted - recorded action| over the chunk, in rig units (rad; grippers 0..1). By default the episodes
are the checkpoint's validation episodes. Comparing it with a rollout's success separates "the network cannot
fit the demos" from "it fits them, but errors compound in closed loop". Each figure is also given as a ratio
to the first checkpoint's.

With --spans (e.g. 0-50,50-140,140-400) each figure is also given per span of episode steps, which tells a policy
that fits the whole demo from one that fits its long easy part (a hold) and not its short hard one (the approach).

    python3 bench/open_loop_error.py runs/insertion_act/last runs/insertion_act_aug/last [--episodes 2 4]
    python3 bench/open_loop_error.py runs/insertion_act/last --every 10 --spans 0-50,50-140,140-400
    python3 bench/open_loop_error.py runs/insertion_act/last --every 10 --spans 0-50 --posterior
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deploy.inference import ChunkPredictor, Observation  # noqa: E402
from policies.checkpoint import load_checkpoint  # noqa: E402
from recording.dataset import Dataset  # noqa: E402
from recording.reader import EpisodeReader  # noqa: E402


def chunk_errors(predictor: ChunkPredictor, path: Path, every: int, posterior: bool = False) -> list[tuple[int, float]]:
    """(step, mean |predicted - recorded|) of a chunk predicted every `every` steps of the episode; with `posterior`
    the latent is the CVAE's posterior mean of the recorded chunk instead of zero."""
    reader = EpisodeReader(path)
    try:
        qpos, action = reader.qpos, reader.action
        errors = []
        for t in range(0, len(qpos), every):
            frames = {cam: reader.image(cam, t) for cam in predictor.camera_names}
            obs = Observation(t, qpos[t], predictor.images(frames))
            chunk = reconstruct(predictor, obs, action[t:t + predictor.chunk_size]) if posterior else predictor(obs)
            n = min(len(chunk), len(action) - t)
            errors.append((t, float(np.abs(chunk[:n] - action[t:t + n]).mean())))
        return errors
    finally:
        reader.close()


@torch.inference_mode()
def reconstruct(predictor: ChunkPredictor, obs: Observation, recorded: np.ndarray) -> np.ndarray:
    """The chunk ACT decodes for `obs` with the latent at the posterior mean of the `recorded` actions after it."""
    policy, stats, size = predictor.policy, predictor.stats, predictor.chunk_size
    action = np.zeros((size, recorded.shape[1]), np.float32)
    action[:len(recorded)] = stats.normalize_action(recorded.astype(np.float32))
    is_pad = torch.arange(size)[None] >= len(recorded)
    chunk = policy.reconstruct(*predictor.inputs(obs), torch.as_tensor(action)[None], is_pad)[0].float().numpy()
    return stats.unnormalize_action(chunk).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint directories (e.g. runs/act/last)")
    parser.add_argument("--dataset", type=Path, help="dataset folder (default: the one each checkpoint trained on)")
    parser.add_argument("--episodes", type=int, nargs="*",
                        help="episode indices (default: the first checkpoint's validation episodes)")
    parser.add_argument("--every", type=int, default=25, help="steps between predictions (default 25)")
    parser.add_argument("--spans", type=spans, default=[], help="also per span of steps: A-B,C-D (B, D excluded)")
    parser.add_argument("--posterior", action="store_true",
                        help="ACT: predict with the latent at the CVAE's posterior mean of the recorded chunk (as the "
                        "validation loss does) instead of zero (as a rollout does); equal figures mean the latent "
                        "carries nothing")
    args = parser.parse_args()
    episodes, baseline = args.episodes, None
    for path in args.checkpoints:
        checkpoint = load_checkpoint(path)
        dataset = Dataset.open(args.dataset or checkpoint.meta.extra["dataset"])
        episodes = episodes or checkpoint.meta.extra["val_episodes"]
        predictor = ChunkPredictor(checkpoint)
        if args.posterior and not hasattr(predictor.policy, "reconstruct"):
            sys.exit(f"{path}: --posterior needs an ACT policy (a CVAE latent), this is {checkpoint.config.policy!r}")
        errors = [e for index in episodes
                  for e in chunk_errors(predictor, dataset.path(index), args.every, args.posterior)]
        mean = float(np.mean([error for _, error in errors]))
        baseline = baseline or mean
        print(f"{path}: mean |predicted - recorded| {mean:.4f} ({mean / baseline:.2f}x the first) over "
              f"{len(errors)} chunks of episodes {', '.join(map(str, episodes))}", flush=True)
        for start, end in args.spans:
            inside = [error for t, error in errors if start <= t < end]
            figure = f"{np.mean(inside):.4f} over {len(inside)} chunks" if inside else "no chunk"
            print(f"  steps {start}-{end}: {figure}", flush=True)


def spans(text: str) -> list[tuple[int, int]]:
    try:
        pairs = [tuple(int(n) for n in part.split("-")) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"spans must be A-B,C-D with whole numbers, got {text!r}") from None
    if any(len(pair) != 2 or pair[0] >= pair[1] for pair in pairs):
        raise argparse.ArgumentTypeError(f"each span must be A-B with A < B, got {text!r}")
    return pairs


if __name__ == "__main__":
    main()
