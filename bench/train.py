"""Training figures: the episode loader against a naive one, training steps/s and inference latency per preset.

1. Loader: samples/s of EpisodeDataset (files opened once, arrays in memory; and
   with its decoded-image cache) against a naive loader that, like the original
   ACT code, opens the HDF5 file for every sample and reads the whole qpos and
   action arrays before taking one frame. Same files, same cameras, same
   training image size, same random frames, one process each.
2. Training: optimizer steps/s of the `cpu`, `small` and `paper` presets on
   synthetic batches (compute only), and the samples/s that asks of the loader.
3. Inference: latency of one chunk prediction (batch 1) per preset.
4. The `cpu` preset's step in alternating rounds: torch's default AdamW in fp32
   (the baseline), the fused AdamW tandem-train uses, that with --precision bf16
   (autocast on the CPU), and with the five-convolution backbone
   (--set backbone=convnet --set backbone_norm=group) in place of ResNet-18.

By default two 8 s episodes are recorded first on the simulated rig (scripted
operator, four cameras at 480x640, JPEG, as ALOHA records); --dataset uses yours.

    python3 bench/train.py [--dataset DIR] [--samples 400] [--steps 5] [--threads N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import cv2  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from policies.config import preset  # noqa: E402
from policies.dataset import EpisodeDataset, compute_stats, load_episodes  # noqa: E402
from policies.normalize import NormStats  # noqa: E402
from policies.registry import make_policy  # noqa: E402
from policies.train import adamw, autocast_for  # noqa: E402
from recording.cli import main as record_main  # noqa: E402
from recording.dataset import Dataset  # noqa: E402


class NaiveDataset:
    """What the original ACT loader does per sample: open the file, read whole arrays, decode one frame."""

    def __init__(self, dataset: Dataset, indices, camera_names, image_size, chunk_size, stats: NormStats) -> None:
        self.paths = [dataset.path(i) for i in indices]
        self.lengths = [dataset.episode(i).length for i in indices]
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)])
        self.camera_names, self.image_size, self.chunk_size, self.stats = camera_names, image_size, chunk_size, stats

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        e = int(np.searchsorted(self.starts, i, side="right") - 1)
        t = i - int(self.starts[e])
        with h5py.File(self.paths[e], "r") as root:
            compressed = bool(root.attrs.get("compress", False))
            qpos = root["/observations/qpos"][()][t]
            action = root["/action"][()]
            images = []
            for cam in self.camera_names:
                image = root[f"/observations/images/{cam}"][t]
                if compressed:
                    image = cv2.imdecode(image, cv2.IMREAD_COLOR)
                h, w = self.image_size
                images.append(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
        chunk = action[t:t + self.chunk_size]
        is_pad = np.zeros(self.chunk_size, bool)
        is_pad[len(chunk):] = True
        chunk = np.concatenate([chunk, np.zeros((self.chunk_size - len(chunk), action.shape[1]))])
        return {"qpos": torch.from_numpy(self.stats.normalize_qpos(qpos)),
                "action": torch.from_numpy(self.stats.normalize_action(chunk).astype(np.float32)),
                "is_pad": torch.from_numpy(is_pad),
                "images": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)}


def samples_per_s(data, picks) -> float:
    data[int(picks[0])]  # open files, fill caches: not what is being measured
    start = time.perf_counter()
    for i in picks:
        data[int(i)]
    return len(picks) / (time.perf_counter() - start)


def bench_loader(root: Path, samples: int) -> None:
    dataset = Dataset.open(root)
    indices = [e.index for e in dataset.episodes()]
    config = preset("small")
    stats = compute_stats(load_episodes(dataset, indices))
    args = dict(camera_names=config.camera_names, image_size=config.image_size, chunk_size=config.chunk_size,
                stats=stats)
    picks = np.random.default_rng(0).choice(sum(dataset.episode(i).length for i in indices), size=samples)
    naive = samples_per_s(NaiveDataset(dataset, indices, **args), picks)
    ours = samples_per_s(EpisodeDataset(dataset, indices, **args), picks)
    start = time.perf_counter()
    cached_data = EpisodeDataset(dataset, indices, cache_images=True, **args)
    build_s = time.perf_counter() - start
    cached = samples_per_s(cached_data, picks)
    h, w = config.image_size
    print(f"loader: {len(indices)} episodes, {len(cached_data)} frames, {len(config.camera_names)} cameras "
          f"{'JPEG' if dataset.info.compress else 'raw'} resized to {h}x{w}, chunk {config.chunk_size}, "
          f"{samples} random frames, one process")
    print(f"  naive (open file, read whole arrays per sample) {naive:8.1f} samples/s   1.00x")
    print(f"  EpisodeDataset                                  {ours:8.1f} samples/s   {ours / naive:.2f}x")
    print(f"  EpisodeDataset, decoded-image cache             {cached:8.1f} samples/s   {cached / naive:.2f}x "
          f"(cache built in {build_s:.1f} s)")


def synthetic_batch(config) -> dict[str, torch.Tensor]:
    b, n, (h, w) = config.batch_size, len(config.camera_names), config.image_size
    return {"qpos": torch.randn(b, config.state_dim), "images": torch.rand(b, n, 3, h, w),
            "action": torch.randn(b, config.chunk_size, config.action_dim),
            "is_pad": torch.zeros(b, config.chunk_size, dtype=torch.bool)}


def step_seconds(policy, optimizer, batch, steps: int, precision: str = "fp32") -> list[float]:
    """Seconds of each training step after the first (which allocates)."""
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with autocast_for(precision, torch.device("cpu")):
            loss, _ = policy(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return times


def bench_model(name: str, steps: int) -> None:
    config = preset(name)
    torch.manual_seed(0)
    policy = make_policy(config)
    batch = synthetic_batch(config)
    b, n, (h, w) = config.batch_size, len(config.camera_names), config.image_size
    optimizer = adamw(policy.param_groups(), config.weight_decay, torch.device("cpu"))
    step_s = float(np.median(step_seconds(policy, optimizer, batch, steps)))
    policy.eval()
    one = {"qpos": batch["qpos"][:1], "images": batch["images"][:1]}
    latencies = []
    with torch.no_grad():
        for i in range(6):
            start = time.perf_counter()
            policy.predict(one["qpos"], one["images"])
            if i:
                latencies.append(time.perf_counter() - start)
    params = sum(p.numel() for p in policy.parameters()) / 1e6
    print(f"  {name:<6} {params:6.1f} M params, batch {b}, {n} cams {h}x{w}, chunk {config.chunk_size}: "
          f"{1 / step_s:6.3f} steps/s ({step_s * 1e3:7.0f} ms/step, needs {b / step_s:6.1f} samples/s); "
          f"inference {np.median(latencies) * 1e3:6.1f} ms/chunk")


def cpu_bf16_flags() -> str:
    """The CPU's bf16 instructions as /proc/cpuinfo names them (autocast to bf16 is slow without them)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = sorted(f for f in flags.split() if "bf16" in f)
    return ", ".join(found) or "none"


def bench_step_variants(steps: int, rounds: int) -> None:
    """The cpu preset's step: default AdamW fp32, fused AdamW fp32, fused AdamW + bf16 autocast, the convnet
    backbone, the README's 20-minute recipe (convnet + bf16) and that recipe at 240x320. The variants take turns,
    `rounds` times, so a machine whose load changes meanwhile affects each alike."""
    config = preset("cpu")
    convnet = config.replace(backbone="convnet", backbone_norm="group")
    variants = {"torch's AdamW, fp32 (baseline)": ("plain", "fp32", config),
                "fused AdamW, fp32 (tandem-train's default)": ("fused", "fp32", config),
                "fused AdamW, --precision bf16": ("fused", "bf16", config),
                "fused AdamW, fp32, convnet backbone": ("fused", "fp32", convnet),
                "convnet + bf16 (the 20-minute recipe)": ("fused", "bf16", convnet),
                "convnet + bf16 at 240x320": ("fused", "bf16", convnet.replace(image_size=(240, 320)))}
    batches = {name: synthetic_batch(variant) for name, (_, _, variant) in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (optimizer_kind, precision, variant) in variants.items():
            batch = batches[name]
            torch.manual_seed(0)
            policy = make_policy(variant)
            optimizer = adamw(policy.param_groups(), variant.weight_decay, torch.device("cpu")) \
                if optimizer_kind == "fused" else torch.optim.AdamW(policy.param_groups(),
                                                                    weight_decay=variant.weight_decay)
            times[name] += step_seconds(policy, optimizer, batch, steps, precision)
    print(f"the cpu preset's training step, {rounds} rounds of {steps} steps each (CPU bf16 instructions: "
          f"{cpu_bf16_flags()}):")
    baseline = float(np.median(next(iter(times.values()))))
    for name, measured in times.items():
        step_s = float(np.median(measured))
        print(f"  {name:<44} {step_s * 1e3:6.0f} ms/step (p90 {np.percentile(measured, 90) * 1e3:6.0f})   "
              f"{baseline / step_s:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="dataset folder (default: record two sim episodes)")
    parser.add_argument("--samples", type=int, default=400, help="frames per loader measurement (default 400)")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per preset (default 5)")
    # On a 2-core machine shared with other jobs, one thread can beat two (a preempted thread stalls the other).
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the cpu preset's step variants")
    parser.add_argument("--only-steps", action="store_true", help="only the cpu preset's step variants (4.)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if args.only_steps:
        bench_step_variants(args.steps, args.rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset
        if root is None:
            root = Path(tmp) / "demos"
            print("recording two 8 s transfer_cube episodes on the simulated rig (480x640, JPEG) ...", flush=True)
            if record_main(["--dataset", str(root), "--episodes", "2", "--image-size", "480x640"]) != 0:
                sys.exit("recording failed")
        bench_loader(root, args.samples)
    print("training on synthetic batches (compute only) and inference, batch 1:")
    for name in ("cpu", "small", "paper"):
        bench_model(name, args.steps)
    bench_step_variants(args.steps, args.rounds)


if __name__ == "__main__":
    main()
