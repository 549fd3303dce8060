"""The training loop: one function, top to bottom, from this laptop's CPU to torchrun on a cluster.

Each step draws a batch of frames, runs the policy's forward (its own loss),
clips the gradient and steps AdamW (backbone at its own learning rate) under a
warm-up-then-cosine schedule. Under torchrun every process trains on its own
share of the samples, DistributedDataParallel all-reduces the gradients, and
rank 0 alone validates, logs and writes checkpoints. `last/` is written every
`save_every` steps, at the end and on Ctrl-C (it carries the optimizer state
for --resume); `best/` whenever the validation loss improves, without the
optimizer state (a third of the size; resuming always starts from `last/`).
What it does is said in lines through `report` (rank 0 only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from policies.backbones import imagenet_weights_problem
from policies.checkpoint import load_checkpoint, read_meta, save_checkpoint
from policies.config import PRECISIONS, STILL_THRESHOLD, PolicyConfig
from policies.dataset import (
    EpisodeDataset,
    column_names,
    compute_stats,
    dataset_digest,
    load_episodes,
    split_episodes,
)
from policies.normalize import NormStats
from policies.pretrained import resolve_weights
from policies.registry import make_policy
from policies.resnet import load_pretrained_backbone
from recording.dataset import Dataset

log = logging.getLogger(__name__)
Report = Callable[[str], None]


@dataclass(frozen=True)
class TrainSettings:
    dataset: Path
    out: Path
    policy: PolicyConfig
    steps: int = 2000
    warmup_steps: int = 100
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    val_every: int = 250
    val_batches: int = 10
    save_every: int = 500
    log_every: int = 10  # metrics.jsonl, and a printed line when there is no progress bar
    correction_weight: float = 1.0
    still_weight: float = 1.0  # sampling weight of still frames (policies.dataset.still_frames)
    still_threshold: float = STILL_THRESHOLD
    kinds: tuple[str, ...] = ("demo", "correction")
    workers: int = 2
    cache_images: bool = False
    seed: int = 0
    resume: bool = False
    pretrained_backbone: str | Path | None = None  # imagenet, a file or a URL (policies.pretrained)
    device: str = "auto"
    precision: str = "auto"  # PRECISIONS
    progress: bool = True


@dataclass(frozen=True)
class TrainResult:
    step: int
    train_loss: float
    best_val_loss: float | None
    samples_per_s: float
    out: Path
    world_size: int = 1
    rank_divergence: float = 0.0  # largest parameter difference between processes; 0 when data-parallel works
    start_step: int = 0  # where this run began (the resumed step); step == start_step: nothing was trained

    @property
    def nothing_to_do(self) -> bool:
        return self.step <= self.start_step


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) at `step`; `saved` is OUT/last when it holds a checkpoint (at `saved_step`), else None."""

    def __init__(self, step: int, saved: Path | None, saved_step: int) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step, self.saved, self.saved_step = step, saved, saved_step


class WeightedSampler(Sampler[int]):
    """Frames drawn with replacement in proportion to their weights; each rank draws its own stream."""

    def __init__(self, weights: np.ndarray, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.seed, self.rank, self.n = seed, rank, math.ceil(len(weights) / world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 1_009 + self.rank)
        return iter(torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist())


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


# Where torch has a fused AdamW kernel, from which version: one kernel per step instead of a loop over tensors.
FUSED_ADAMW_SINCE = {"cuda": (2, 0), "cpu": (2, 4)}


def fused_adamw_on(device: torch.device) -> bool:
    since = FUSED_ADAMW_SINCE.get(device.type)
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return since is not None and version >= since


def adamw(groups: list[dict], weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel where this torch has one for the device (the same update)."""
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=fused_adamw_on(device) or None)


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context each forward runs in (config.PRECISIONS)."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    bf16 = {"auto": cuda_bf16, "fp32": False, "bf16": True}.get(precision)
    if bf16 is None:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if bf16 and device.type == "cuda" and not cuda_bf16:
        raise ValueError(f"precision bf16: {device} does not support bfloat16; use --precision fp32")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# TrainSettings fields that shape what a run learns beyond its PolicyConfig (paths and logging left out)
TRAINING_FIELDS = ("steps", "warmup_steps", "grad_clip", "val_fraction", "correction_weight", "still_weight",
                   "still_threshold", "kinds", "seed", "pretrained_backbone")
# those a resumed run is told about when they differ from the run it continues
RESUME_CHECKED = ("correction_weight", "still_weight", "still_threshold", "kinds", "precision")


def training_record(s: TrainSettings, precision: str, world: int) -> dict[str, Any]:
    """What meta.json keeps of how a run trains: the fields above, the precision used and the process count."""
    record = {name: getattr(s, name) for name in TRAINING_FIELDS}
    record["kinds"] = list(s.kinds)
    if record["pretrained_backbone"] is not None:
        record["pretrained_backbone"] = str(record["pretrained_backbone"])
    return {**record, "precision": precision, "processes": world}


def _say_changed_settings(now: dict[str, Any], before: dict[str, Any], report: Report) -> None:
    """A resumed run that samples or computes differently from the run it continues says so: the flags are not
    carried over, each run states its own."""
    changed = [f"{name} {now[name]} (was {before[name]})" for name in RESUME_CHECKED
               if name in before and before[name] != now[name]]
    if changed:
        report(f"note: resumed with {', '.join(changed)}; pass the earlier flags to keep them")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    epoch = 0
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(s: TrainSettings, report: Report = print) -> TrainResult:
    if s.resume and (s.out / "last").is_dir() and (done := read_meta(s.out / "last").step) >= s.steps:
        # before any process group or data loading: there is nothing to train
        return TrainResult(done, float("nan"), None, 0.0, s.out, start_step=done)
    if s.pretrained_backbone is not None and not s.resume:  # a failed download fails before any data is loaded
        if problem := imagenet_weights_problem(s.policy):
            raise ValueError(f"--pretrained-backbone: {problem}")
        s = replace(s, pretrained_backbone=resolve_weights(s.pretrained_backbone, progress=s.progress))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = _device(s.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    try:
        return _train(s, device, rank, world, distributed, report if rank == 0 else _quiet)
    finally:
        if distributed:
            dist.destroy_process_group()


def _quiet(text: str) -> None:
    pass


def _ignore_interrupt(worker: int) -> None:
    """Data loader workers leave Ctrl-C to the main process, which saves OUT/last and then shuts them down
    (a worker killed mid-batch would add a traceback to the orderly stop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _train(s: TrainSettings, device: torch.device, rank: int, world: int, distributed: bool,
           report: Report) -> TrainResult:
    main_process = rank == 0  # validates, logs and writes checkpoints
    torch.manual_seed(s.seed)
    dataset = Dataset.open(s.dataset)
    indices = [e.index for e in dataset.episodes(s.kinds)]
    train_ids, val_ids = split_episodes(indices, s.val_fraction, s.seed)
    config = s.policy
    start_step, stats, resumed, best_val, trained_before = 0, None, None, None, 0.0
    last_dir, best_dir = s.out / "last", s.out / "best"
    if s.resume:
        if not last_dir.is_dir():
            raise FileNotFoundError(f"{last_dir}: no checkpoint to resume from; train without --resume first")
        resumed = load_checkpoint(last_dir)
        config, stats, start_step = resumed.config, resumed.stats, resumed.meta.step
        best_val = resumed.meta.extra.get("best_val_loss")
        trained_before = float(resumed.meta.extra.get("train_seconds", 0.0))
        report(f"resuming {last_dir} at step {start_step} of {s.steps}")
    threads = f"{torch.get_num_threads()} threads" + (f" x {world} processes" if world > 1 else "")
    autocast = autocast_for(s.precision, device)
    precision = "bf16" if isinstance(autocast, torch.autocast) else "fp32"
    report(f"device {device}, {threads}, {'bf16 autocast' if precision == 'bf16' else 'fp32'}")
    # how this run trains beyond the config, kept in every checkpoint it writes (one entry per resumed run)
    earlier = list(resumed.meta.extra.get("training") or []) if resumed is not None else []
    training = [*earlier, {"from_step": start_step, **training_record(s, precision, world)}]
    if earlier:
        _say_changed_settings(training[-1], earlier[-1], report)
    if main_process and not val_ids:
        if len(indices) < 2:
            log.warning("%s: only %d %s episode(s): no validation; best/ will be the last step, and overfitting "
                        "goes unseen (record more episodes)", s.dataset, len(indices), "/".join(s.kinds))
        else:
            report("no validation (--val-fraction 0): best/ will be the last step")
    if stats is None:
        stats = compute_stats(load_episodes(dataset, train_ids))
    if s.cache_images and config.camera_names:
        if main_process:
            build_image_cache(dataset, train_ids + val_ids, config, stats, report)
        if distributed:
            dist.barrier()  # the other processes read the cache rank 0 built
    data = EpisodeDataset(dataset, train_ids, camera_names=config.camera_names, image_size=config.image_size,
                          chunk_size=config.chunk_size, stats=stats, cache_images=s.cache_images)
    val = (EpisodeDataset(dataset, val_ids, camera_names=config.camera_names, image_size=config.image_size,
                          chunk_size=config.chunk_size, stats=stats, cache_images=s.cache_images)
           if val_ids and main_process else None)
    report(f"dataset {s.dataset}: {len(train_ids)} training episode(s), {len(data)} frames; "
           f"{len(val_ids)} validation episode(s), {len(val) if val is not None else 0} frames")
    state_names, action_names = column_names(data.episodes)  # the joints of the rig that recorded them
    if (config.state_dim, config.action_dim) != (len(state_names), len(action_names)):
        if resumed is not None:
            raise ValueError(f"{s.dataset}: its episodes have {len(state_names)} state and {len(action_names)} "
                             f"action columns; {last_dir} was trained with {config.state_dim} and "
                             f"{config.action_dim}: train a new run on this dataset")
        config = config.replace(state_dim=len(state_names), action_dim=len(action_names))
    if s.correction_weight != 1.0 or s.still_weight != 1.0:
        still = data.still_mask(s.still_threshold) if s.still_weight != 1.0 else None
        weights = data.frame_weights(s.correction_weight, s.still_weight, still)
        if not weights.sum() > 0:
            raise ValueError(f"{s.dataset}: every training frame has sampling weight 0 (correction weight "
                             f"{s.correction_weight:g}, still weight {s.still_weight:g})")
        if still is not None:
            report(f"sampling: {still.mean():.0%} of the training frames are still (no joint moves more than "
                   f"{s.still_threshold:g} over the next chunk); weighted {s.still_weight:g}, they are "
                   f"{weights[still].sum() / weights.sum():.0%} of the samples")
        sampler = WeightedSampler(weights, s.seed, rank, world)
    else:
        sampler = DistributedSampler(data, world, rank, shuffle=True, seed=s.seed, drop_last=True) if distributed \
            else None
    loader = DataLoader(data, batch_size=config.batch_size, sampler=sampler, shuffle=sampler is None,
                        num_workers=s.workers, drop_last=True, persistent_workers=s.workers > 0,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(s.seed + rank),
                        worker_init_fn=_ignore_interrupt)
    if len(loader) == 0:
        raise ValueError(f"{s.dataset}: {len(data)} training frames are fewer than one batch of "
                         f"{config.batch_size} per process")

    policy = make_policy(config).to(device)
    if resumed is not None:
        policy.load_state_dict(resumed.policy.state_dict())
    elif s.pretrained_backbone is not None:
        if policy.backbone is None:
            raise ValueError("--pretrained-backbone given, but this policy uses no cameras (no backbone)")
        load_pretrained_backbone(policy.backbone, s.pretrained_backbone)
    report(f"policy {config.policy}: {_count(p.numel() for p in policy.parameters())} parameters "
           f"({_count(p.numel() for p in policy.parameters() if p.requires_grad)} trainable), cameras "
           f"{', '.join(config.camera_names) or 'none'} at {config.image_size[0]}x{config.image_size[1]}, "
           f"batch {config.batch_size}, chunk {config.chunk_size}")
    optimizer = adamw(policy.param_groups(), config.weight_decay, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, s.warmup_steps, s.steps))
    if resumed is not None and (state := resumed.optimizer_state()) is not None:
        # A saved state brings the kernel choice of the machine that saved it; use this one's. Set before loading:
        # loading puts the step counters on the parameters' device only for a fused optimizer.
        for group in state["optimizer"]["param_groups"]:
            group["fused"] = optimizer.defaults["fused"]
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
    model = DistributedDataParallel(policy) if distributed else policy
    digest = dataset_digest(dataset, train_ids)
    # where deploy moves the followers before it starts the policy: the demonstrations' average first pose
    start_qpos = np.mean([e.qpos[0] for e in data.episodes], axis=0).round(5).tolist()
    metrics = _Log(s.out, main_process, start_step, s.steps, s.progress, report)

    def save(directory: Path, step: int, *, resumable: bool) -> None:
        save_checkpoint(directory, policy, config, stats, step=step, dataset_digest=digest,
                        state_names=state_names, action_names=action_names,
                        optimizer=optimizer if resumable else None, scheduler=scheduler if resumable else None,
                        extra={"best_val_loss": best_val, "train_episodes": train_ids, "val_episodes": val_ids,
                               "dataset": str(s.dataset), "start_qpos": start_qpos,
                               "render": dataset.info.render,  # how a simulated rig drew the training images
                               "training": training,
                               # wall time spent training, over every resumed run
                               "train_seconds": trained_before + time.perf_counter() - started})

    batches = _batches(loader)
    step, loss_value, started, samples = start_step, float("nan"), time.perf_counter(), 0
    saved_step = start_step  # the step OUT/last holds
    metrics.say(f"training steps {start_step + 1}..{s.steps} into {s.out}")
    policy.train()
    try:
        while step < s.steps:
            batch = _to(next(batches), device)
            with autocast:
                loss, values = model(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), s.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            samples += config.batch_size * world
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at step {step}; lower the learning rate")
            elapsed = time.perf_counter() - started
            if step % s.log_every == 0 or step == s.steps:
                metrics.write(step, {**values, "loss": loss_value, "grad_norm": float(grad_norm),
                                     "lr": scheduler.get_last_lr()[-1], "samples_per_s": samples / elapsed})
            metrics.progress(step, loss_value, samples / elapsed, (step - start_step) / elapsed,
                             every=s.log_every)
            if main_process and val is not None and (step % s.val_every == 0 or step == s.steps):
                val_loss = validate(policy, val, config.batch_size, s.val_batches, device, s.seed)
                metrics.write(step, {"val_loss": val_loss})
                improved = best_val is None or val_loss < best_val
                if improved:
                    best_val = val_loss
                    save(best_dir, step, resumable=False)
                metrics.say(f"step {step}: validation loss {val_loss:.4f}" +
                            (f", the best so far: saved {best_dir}" if improved else f" (best {best_val:.4f})"))
            if main_process and (step % s.save_every == 0 or step == s.steps):
                save(last_dir, step, resumable=True)
                saved_step = step
        if main_process and val is None:  # nothing to validate on: the last checkpoint is the best we know
            save(best_dir, step, resumable=False)
    except KeyboardInterrupt:
        if main_process and step > saved_step:
            metrics.close()
            report(f"interrupted: saving step {step} to {last_dir} ...")
            save(last_dir, step, resumable=True)
            saved_step = step
        raise TrainingInterrupted(step, last_dir if last_dir.is_dir() else None, saved_step) from None
    finally:
        metrics.close()
        data.close()
    divergence = parameter_divergence(policy) if distributed else 0.0
    return TrainResult(step, loss_value, best_val, samples / max(time.perf_counter() - started, 1e-9), s.out,
                       world, divergence, start_step)


def build_image_cache(dataset: Dataset, indices: list[int], config: PolicyConfig, stats: NormStats,
                      report: Report) -> None:
    """Decode and resize every frame once into DATASET/.cache, an episode at a time, saying how far it got
    (an episode already cached is only checked)."""
    report(f"image cache in {dataset.root / '.cache'}: {len(indices)} episode(s) at "
           f"{config.image_size[0]}x{config.image_size[1]}, cameras {', '.join(config.camera_names)}")
    started = time.perf_counter()
    for n, index in enumerate(indices, 1):
        EpisodeDataset(dataset, [index], camera_names=config.camera_names, image_size=config.image_size,
                       chunk_size=config.chunk_size, stats=stats, cache_images=True).close()
        report(f"image cache: episode {index} ready ({n}/{len(indices)}, {time.perf_counter() - started:.1f} s)")


def _count(numbers: Iterator[int]) -> str:
    n = sum(numbers)
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def parameter_divergence(policy: torch.nn.Module) -> float:
    """Largest difference of any parameter between the processes (all of them take part)."""
    flat = torch.cat([p.detach().float().flatten() for p in policy.parameters()])
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return float((high - low).abs().max())


@torch.no_grad()
def validate(policy: torch.nn.Module, data: EpisodeDataset, batch_size: int, batches: int, device: torch.device,
             seed: int) -> float:
    """Mean loss over a fixed, seeded set of validation frames (eval mode: no dropout, posterior mean)."""
    was_training = policy.training
    policy.eval()
    g = np.random.default_rng(seed)
    picks = g.choice(len(data), size=min(len(data), batch_size * batches), replace=False)
    losses = []
    for start in range(0, len(picks), batch_size):
        items = [data[int(i)] for i in picks[start:start + batch_size]]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        loss, _ = policy(batch)
        losses.append(float(loss) * len(items))
    policy.train(was_training)
    return sum(losses) / len(picks)


class _Log:
    """metrics.jsonl (always), TensorBoard (when installed) and a progress bar or, without it, a line every
    `every` steps; on rank 0 only."""

    def __init__(self, out: Path, enabled: bool, start: int, total: int, progress: bool, report: Report) -> None:
        self.enabled, self.start, self.total, self.report = enabled, start, total, report
        self.bar = self.tb = self.file = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.file = open(out / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            pass
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def say(self, text: str) -> None:
        """A line that does not break the progress bar."""
        if self.bar is not None:
            self.bar.write(text)
        elif self.enabled:
            self.report(text)

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled or self.file is None:
            return
        self.file.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, float(v), step)

    def progress(self, step: int, loss: float, samples_per_s: float, steps_per_s: float, *, every: int) -> None:
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{samples_per_s:.1f}", refresh=False)
            self.bar.refresh()
        elif self.enabled and (step % every == 0 or step == self.start + 1 or step == self.total):
            eta = (self.total - step) / steps_per_s if steps_per_s > 0 else float("inf")
            self.report(f"step {step}/{self.total}: loss {loss:.4f}, {steps_per_s:.2f} steps/s "
                        f"({samples_per_s:.1f} samples/s), ETA {_duration(eta) if math.isfinite(eta) else '?'}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.file is not None:
            self.file.close()
        self.bar = self.tb = self.file = None
