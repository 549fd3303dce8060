"""tandem-train: train a policy (ACT by default) on a dataset folder; torchrun runs it on several processes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from policies.config import PRECISIONS, PRESETS, STILL_THRESHOLD, preset
from policies.registry import POLICIES
from robot.commands import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    add_verbose_argument,
    command_parser,
    dataset_folder,
    image_size,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_command,
    setup_process,
)

PROG = "tandem-train"
RUN_FILES = ("best", "last", "metrics.jsonl", "tensorboard")  # what one run writes into OUT (--overwrite clears)


# -- argument types -------------------------------------------------------------------------------------------------
def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE, e.g. kl_weight=10")
    return key, value


def _fraction(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction below 1")
    return value


def _out_folder(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder for the run's checkpoints")
    return path


def _preset_values(field: str) -> str:
    """What each preset sets a field to, for help texts: 'cpu 8; paper 8; ...'."""
    def shown(value: object) -> str:
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value) if all(isinstance(v, str) for v in value) \
                else "x".join(str(v) for v in value)
        return str(value)

    return "; ".join(f"{name} {shown(getattr(config, field))}" for name, config in sorted(PRESETS.items()))


# -- the parser -----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        "Train a policy on a dataset folder recorded with tandem-record (or by ALOHA's scripts).\n\n"
        "Writes OUT/last (every --save-every steps, at the end and on Ctrl-C, with the optimizer state for "
        "--resume), OUT/best (lowest validation loss; the one to deploy: tandem-deploy --checkpoint OUT takes it) "
        "and OUT/metrics.jsonl; TensorBoard logs too when it is installed. An OUT that holds a run is refused "
        "unless --resume (continue it) or --overwrite (start again).\n\n"
        "Several processes or GPUs: torchrun --nproc_per_node N -m policies.cli --dataset ... (gloo on CPU, "
        "NCCL on GPU; rank 0 writes).")
    # Preset-dependent options default to SUPPRESS: absent from the namespace unless given, so the preset decides
    # and --help says what each preset sets instead of "None".
    keep = argparse.SUPPRESS
    parser.add_argument("--dataset", required=True, default=keep, type=dataset_folder, help="dataset folder")
    parser.add_argument("--out", required=True, default=keep, type=_out_folder,
                        help="run folder (best/, last/, metrics.jsonl)")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                        help="model and optimizer sizes. cpu: the top camera, trains on a 2-core CPU in hours; "
                        "small: all four cameras, ~2.7x the cost; paper: the ACT paper's, for a GPU; tiny: tests")
    parser.add_argument("--policy", choices=sorted(POLICIES), default=keep,
                        help=f"policy (default: the preset's: {_preset_values('policy')})")
    parser.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps in all (a resumed run "
                        "counts the steps it already has)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/last: weights, optimizer, "
                       "schedule, step and normalization stats")
    again.add_argument("--overwrite", action="store_true",
                       help=f"start again in an OUT that holds a run: deletes its {', '.join(RUN_FILES)} first")
    parser.add_argument("--batch-size", type=positive_int, default=keep,
                        help=f"per process (default: the preset's: {_preset_values('batch_size')})")
    parser.add_argument("--lr", type=positive_float, default=keep,
                        help=f"learning rate (default: the preset's: {_preset_values('lr')})")
    parser.add_argument("--lr-backbone", type=non_negative_float, default=keep,
                        help=f"ResNet learning rate, 0 freezes it (default: the preset's: "
                        f"{_preset_values('lr_backbone')})")
    parser.add_argument("--chunk-size", type=positive_int, default=keep,
                        help=f"actions per prediction (default: the preset's: {_preset_values('chunk_size')})")
    parser.add_argument("--kl-weight", type=non_negative_float, default=keep,
                        help=f"ACT's KL weight (default: the preset's: {_preset_values('kl_weight')})")
    parser.add_argument("--cameras", default=keep,
                        help="comma-separated cameras to use, or 'none' for a state-only policy (default: the "
                        f"preset's: {_preset_values('camera_names')})")
    parser.add_argument("--image-size", type=image_size, metavar="HxW", default=keep,
                        help=f"training image size (default: the preset's: {_preset_values('image_size')})")
    parser.add_argument("--set", type=_assignment, action="append", default=[], metavar="FIELD=VALUE",
                        help="any other policy config field, e.g. --set dec_layers=1 (repeatable)")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=100, help="linear warm-up before cosine decay")
    parser.add_argument("--grad-clip", type=positive_float, default=1.0, help="gradient norm clip")
    parser.add_argument("--val-fraction", type=_fraction, default=0.1,
                        help="share of the episodes held out for validation (at least one when there are two)")
    parser.add_argument("--val-every", type=positive_int, default=250, help="validate every N steps")
    parser.add_argument("--save-every", type=positive_int, default=500, help="write OUT/last every N steps")
    parser.add_argument("--log-every", type=positive_int, default=10,
                        help="write metrics.jsonl every N steps; with --no-progress also print a line (step, loss, "
                        "steps/s, ETA)")
    parser.add_argument("--correction-weight", type=positive_float, default=1.0,
                        help="sampling weight of correction episodes' frames relative to demos")
    parser.add_argument("--still-weight", type=positive_float, default=1.0,
                        help="sampling weight of the demos' still frames, whose next chunk of actions moves no joint "
                        "more than --still-threshold (a pause, or the hold at a demo's end: often most of its frames, "
                        "teaching little beyond staying put). 0.2 spends the steps on the motion (the README's "
                        "20-minute recipe); 1: no change. Corrections' frames are never counted as still")
    parser.add_argument("--still-threshold", type=positive_float, default=STILL_THRESHOLD, metavar="RAD",
                        help="largest move over a chunk, in rig units (rad; grippers 0..1), of a still frame "
                        "(0.01 rad is 0.6 degrees; a human operator's hold may need more)")
    parser.add_argument("--kinds", default="demo,correction", help="episode kinds to train on")
    parser.add_argument("--workers", type=non_negative_int, default=2,
                        help="data loader processes per training process")
    parser.add_argument("--cache-images", action="store_true",
                        help="decode and resize every frame once into DATASET/.cache (memory-mapped afterwards)")
    parser.add_argument("--pretrained-backbone", metavar="imagenet|FILE|URL", default=keep,
                        help="start the ResNet from these weights: 'imagenet' (torchvision's ResNet-18 ImageNet "
                        "weights, downloaded once into torch.hub's cache and checked by hash), a torchvision resnet18 "
                        "state dict saved with torch.save, or a URL named as torch.hub's are (name-<sha256 prefix>.pth;"
                        " file:// works). Without internet: copy the file here and pass its path")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 autocast on GPUs that support it, fp32 on the CPU; bf16: autocast on the "
                        "CPU too (1.2-1.4x the steps/s of the cpu preset on AVX-512 BF16 cores; "
                        "slower on CPUs without bf16 instructions); fp32: never. Weights and checkpoints stay fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a line every --log-every steps instead (for logs and batch jobs)")
    add_verbose_argument(parser)
    return parser


def settings_from(args: argparse.Namespace):
    from policies.train import TrainSettings

    overrides = {name: getattr(args, name) for name in ("policy", "batch_size", "lr", "lr_backbone", "chunk_size",
                                                          "kl_weight", "image_size") if hasattr(args, name)}
    if hasattr(args, "cameras"):
        overrides["camera_names"] = () if args.cameras == "none" else tuple(args.cameras.split(","))
    config = preset(args.preset, **overrides)
    if args.set:
        config = config.from_dict({**config.to_dict(), **_parsed(args.set)}, source="--set")
    return TrainSettings(
        dataset=args.dataset, out=args.out, policy=config, steps=args.steps, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip, val_fraction=args.val_fraction, val_every=args.val_every,
        save_every=args.save_every, log_every=args.log_every, correction_weight=args.correction_weight,
        still_weight=args.still_weight, still_threshold=args.still_threshold,
        kinds=tuple(args.kinds.split(",")), workers=args.workers, cache_images=args.cache_images, seed=args.seed,
        resume=args.resume, pretrained_backbone=getattr(args, "pretrained_backbone", None), device=args.device,
        precision=args.precision, progress=not args.no_progress)


def _parsed(assignments: list[tuple[str, str]]) -> dict:
    out = {}
    for key, value in assignments:
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def prepare_out(out: Path, *, resume: bool, overwrite: bool, rank: int) -> None:
    """Refuse to train into a run folder by accident; with --overwrite, rank 0 clears the old run first."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if not existing or resume:
        return
    if not overwrite:
        raise UsageError(f"{out} already holds a training run ({', '.join(existing)}); add --resume to continue "
                         "it, --overwrite to delete it and start again, or choose another --out")
    if rank == 0:  # the other processes leave the folder alone
        for name in existing:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        print(f"--overwrite: deleted {', '.join(existing)} in {out}", flush=True)


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose)
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from policies.train import TrainingInterrupted, train

    rank = int(os.environ.get("RANK", "0"))
    settings = settings_from(args)
    prepare_out(args.out, resume=args.resume, overwrite=args.overwrite, rank=rank)
    try:
        result = train(settings, report=_say)
    except TrainingInterrupted as stop:
        if stop.saved is None:
            print(f"{PROG}: interrupted at step {stop.step}; nothing was saved", file=sys.stderr)
        else:
            print(f"{PROG}: interrupted at step {stop.step}; saved {stop.saved} at step {stop.saved_step}: "
                  f"continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        last = args.out / "last"
        kept = f"{last} is as it was" if last.is_dir() else "nothing was saved"
        print(f"{PROG}: interrupted before training began; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FloatingPointError as exc:  # a diverged run: a runtime error, said in one line like the others
        raise RuntimeError(str(exc)) from None
    if result.nothing_to_do:
        _say(f"nothing to do: {args.out / 'last'} is at step {result.step} and --steps is {args.steps}; raise "
             "--steps to train further")
        return EXIT_OK
    if result.world_size > 1:
        print(f"rank {rank}: parameters differ across the {result.world_size} processes by at most "
              f"{result.rank_divergence:.3g}")
        if rank != 0:
            return EXIT_OK
    best = f", best validation loss {result.best_val_loss:.4f}" if result.best_val_loss is not None else ""
    _say(f"done: step {result.step}, training loss {result.train_loss:.4f}{best}, {result.samples_per_s:.1f} "
         f"samples/s; saved {args.out / 'last'} (for --resume) and {args.out / 'best'} (for tandem-deploy)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
