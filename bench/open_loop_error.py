"""How well checkpoints predict recorded episodes when fed the recorded frames (teacher forcing, no rollout).

Every --every steps of each episode, the checkpoint predicts a chunk from the recorded joint state and frames
through the deploy path (`ChunkPredictor`: the same resize and normalization as a rollout); the figure is the
mean |predicted - recorded action| over the chunk, in rig units (rad; grippers 0..1). By default the episodes
are the checkpoint's validation episodes. Comparing it with a rollout's success separates "the network cannot
fit the demos" from "it fits them, but errors compound in closed loop". Each figure is also given as a ratio
to the first checkpoint's.

    python3 bench/open_loop_error.py runs/insertion_act/last runs/insertion_act_aug/last [--episodes 2 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from deploy.inference import ChunkPredictor, Observation  # noqa: E402
from policies.checkpoint import load_checkpoint  # noqa: E402
from recording.dataset import Dataset  # noqa: E402
from recording.reader import EpisodeReader  # noqa: E402


def chunk_errors(predictor: ChunkPredictor, path: Path, every: int) -> list[float]:
    reader = EpisodeReader(path)
    try:
        qpos, action = reader.qpos, reader.action
        errors = []
        for t in range(0, len(qpos), every):
            frames = {cam: reader.image(cam, t) for cam in predictor.camera_names}
            chunk = predictor(Observation(t, qpos[t], predictor.images(frames)))
            n = min(len(chunk), len(action) - t)
            errors.append(float(np.abs(chunk[:n] - action[t:t + n]).mean()))
        return errors
    finally:
        reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint directories (e.g. runs/act/last)")
    parser.add_argument("--dataset", type=Path, help="dataset folder (default: the one each checkpoint trained on)")
    parser.add_argument("--episodes", type=int, nargs="*",
                        help="episode indices (default: the first checkpoint's validation episodes)")
    parser.add_argument("--every", type=int, default=25, help="steps between predictions (default 25)")
    args = parser.parse_args()
    episodes, baseline = args.episodes, None
    for path in args.checkpoints:
        checkpoint = load_checkpoint(path)
        dataset = Dataset.open(args.dataset or checkpoint.meta.extra["dataset"])
        episodes = episodes or checkpoint.meta.extra["val_episodes"]
        predictor = ChunkPredictor(checkpoint)
        errors = [e for index in episodes for e in chunk_errors(predictor, dataset.path(index), args.every)]
        mean = float(np.mean(errors))
        baseline = baseline or mean
        print(f"{path}: mean |predicted - recorded| {mean:.4f} ({mean / baseline:.2f}x the first) over "
              f"{len(errors)} chunks of episodes {', '.join(map(str, episodes))}", flush=True)


if __name__ == "__main__":
    main()
