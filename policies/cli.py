"""tandem-train: train a policy (ACT by default) on a dataset folder; torchrun runs it on several processes."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from policies.checkpoint import CheckpointError
from policies.config import PRESETS, preset
from recording.dataset import DatasetError
from recording.reader import EpisodeFormatError
from robot.commands import image_size


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE, e.g. kl_weight=10")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem-train",
        description="Train a policy on a dataset folder recorded with tandem-record (or by ALOHA's scripts). "
        "Writes OUT/last (every --save-every steps and at the end, with the optimizer state for --resume), "
        "OUT/best (lowest validation loss) and OUT/metrics.jsonl; TensorBoard logs too when it is installed. "
        "Several processes or GPUs: torchrun --nproc_per_node N -m policies.cli --dataset ... (gloo on CPU, "
        "NCCL on GPU; rank 0 writes).",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint folder")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                        help="model and optimizer sizes (default cpu: the top camera, trains on a 2-core CPU in "
                        "hours; small: all four cameras, ~2.7x the cost; paper: the ACT paper's, for a GPU)")
    parser.add_argument("--policy", choices=("act", "bc_convmlp"), help="policy (default: the preset's, act)")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps in all (default 2000)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last: weights, optimizer, "
                        "schedule, step and normalization stats")
    parser.add_argument("--batch-size", type=int, help="per process (default: the preset's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    parser.add_argument("--lr-backbone", type=float, help="ResNet learning rate (default: the preset's; 0 freezes)")
    parser.add_argument("--chunk-size", type=int, help="actions per prediction (default: the preset's)")
    parser.add_argument("--kl-weight", type=float, help="ACT's KL weight (default: the preset's)")
    parser.add_argument("--cameras", help="comma-separated cameras to use (default: the preset's four); "
                        "'none' for a state-only policy")
    parser.add_argument("--image-size", type=image_size, metavar="HxW",
                        help="training image size (default: the preset's)")
    parser.add_argument("--set", type=_assignment, action="append", default=[], metavar="FIELD=VALUE",
                        help="any other policy config field, e.g. --set dec_layers=1 (repeatable)")
    parser.add_argument("--warmup-steps", type=int, default=100, help="linear warm-up before cosine decay")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="episodes held out for validation")
    parser.add_argument("--val-every", type=int, default=250, help="validate every N steps")
    parser.add_argument("--save-every", type=int, default=500, help="write OUT/last every N steps")
    parser.add_argument("--correction-weight", type=float, default=1.0,
                        help="sampling weight of correction episodes' frames relative to demos (default 1)")
    parser.add_argument("--kinds", default="demo,correction", help="episode kinds to train on (default "
                        "demo,correction)")
    parser.add_argument("--workers", type=int, default=2, help="data loader processes per training process")
    parser.add_argument("--cache-images", action="store_true",
                        help="decode and resize every frame once into DATASET/.cache (memory-mapped afterwards)")
    parser.add_argument("--pretrained-backbone", type=Path, metavar="FILE",
                        help="ImageNet weights: a torchvision resnet18 state dict saved with torch.save")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return parser


def settings_from(args: argparse.Namespace):
    from policies.train import TrainSettings

    overrides = {name: getattr(args, name) for name in ("policy", "batch_size", "lr", "lr_backbone", "chunk_size",
                                                          "kl_weight", "image_size")
                 if getattr(args, name) is not None}
    if args.cameras is not None:
        overrides["camera_names"] = () if args.cameras == "none" else tuple(args.cameras.split(","))
    config = preset(args.preset, **overrides)
    if args.set:
        config = config.from_dict({**config.to_dict(), **_parsed(args.set)}, source="--set")
    return TrainSettings(
        dataset=args.dataset, out=args.out, policy=config, steps=args.steps, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip, val_fraction=args.val_fraction, val_every=args.val_every,
        save_every=args.save_every, correction_weight=args.correction_weight, kinds=tuple(args.kinds.split(",")),
        workers=args.workers, cache_images=args.cache_images, seed=args.seed, resume=args.resume,
        pretrained_backbone=args.pretrained_backbone, device=args.device, progress=not args.no_progress)


def _parsed(assignments: list[tuple[str, str]]) -> dict:
    import json

    out = {}
    for key, value in assignments:
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from policies.train import train

    try:
        settings = settings_from(args)
        result = train(settings)
    except KeyboardInterrupt:
        print("interrupted; OUT/last holds the last saved step", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, DatasetError, EpisodeFormatError, CheckpointError) as exc:
        print(f"tandem-train: {exc}", file=sys.stderr)
        return 1
    if result.world_size > 1:
        print(f"rank {os.environ.get('RANK', '?')}: parameters differ across the {result.world_size} processes by "
              f"at most {result.rank_divergence:.3g}")
        if os.environ.get("RANK", "0") != "0":
            return 0
    best = f", best validation loss {result.best_val_loss:.4f}" if result.best_val_loss is not None else ""
    print(f"trained to step {result.step}: loss {result.train_loss:.4f}{best}, {result.samples_per_s:.1f} "
          f"samples/s; checkpoints in {result.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
