"""Golden values of the tiny ACT: a change to what the model computes fails here, naming the tensor that moved.

A seeded `tiny` ACT (the config stored in the artifact's metadata, which was `preset("tiny")` when it was
written) runs on a fixed seeded batch, through the same call the trainer makes (`loss, values = policy(batch)`):

- training mode, CVAE on: the action chunk (`train.pred`, caught at `action_head`), the latent's mean and
  log-variance (`train.mu`, `train.logvar`, caught at `cvae_out`), the loss and its parts (`train.loss`,
  `train.l1`, `train.kl`), and after `loss.backward()` the gradient of every parameter outside the ResNet plus
  two of its convolutions (`grad.<parameter name>`);
- eval mode: the loss with the posterior mean as latent (`eval.loss`, as the trainer's validation);
- inference: `policy.predict` with the latent at zero (`predict.actions`);
- the initial weights, as a float64 sum and absolute sum per parameter (`init.<parameter name>`), so a change
  of initialisation is told apart from a change of the computation.

Stored in tests/artifacts/act_tiny_golden.safetensors. Compared with atol 1e-4, rtol 1e-3 (float32 on CPU, one
thread, deterministic algorithms).

Regenerate only when a change of the model's numbers is intended (and say so in the commit), with either

    python3 tests/test_policy_golden.py --regenerate
    TANDEM_REGENERATE_GOLDEN=1 python3 -m pytest -q tests/test_policy_golden.py

Both rebuild the artifact from the current `preset("tiny")`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from policies.config import PolicyConfig, preset
from policies.registry import make_policy

ARTIFACT = Path(__file__).parent / "artifacts" / "act_tiny_golden.safetensors"
REGENERATE_ENV = "TANDEM_REGENERATE_GOLDEN"
ATOL, RTOL = 1e-4, 1e-3  # another CPU's kernels sum in another order; any change to the model moves far more
INIT_SEED, BATCH_SEED, LATENT_SEED = 0, 1, 2
BATCH = 2
PADDED_STEPS = 3  # the second item's chunk runs past its episode's end by this many steps
# ResNet parameters whose gradients are kept (all of them would be ~45 MB): the first and an early convolution.
BACKBONE_GRADS = ("backbone.conv1.weight", "backbone.layer1.0.conv1.weight")


@contextmanager
def deterministic() -> Iterator[None]:
    """One thread and deterministic kernels for the duration; the previous settings restored after."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def make_batch(config: PolicyConfig) -> dict[str, torch.Tensor]:
    """The trainer's batch layout (policies.base): normalized qpos and actions, 0..1 images, a padding mask."""
    g = torch.Generator().manual_seed(BATCH_SEED)
    h, w = config.image_size
    is_pad = torch.zeros(BATCH, config.chunk_size, dtype=torch.bool)
    is_pad[1, -PADDED_STEPS:] = True
    action = torch.randn(BATCH, config.chunk_size, config.action_dim, generator=g)
    action[is_pad] = 0.0  # as the dataset pads
    return {
        "qpos": torch.randn(BATCH, config.state_dim, generator=g),
        "images": torch.rand(BATCH, len(config.camera_names), 3, h, w, generator=g),
        "action": action,
        "is_pad": is_pad,
    }


def compute(config: PolicyConfig) -> dict[str, torch.Tensor]:
    """Every golden tensor for this config (see the module docstring)."""
    with deterministic():
        torch.manual_seed(INIT_SEED)
        policy = make_policy(config)
        out = {f"init.{name}": torch.stack([p.detach().double().sum(), p.detach().double().abs().sum()])
               for name, p in policy.named_parameters()}
        batch = make_batch(config)

        caught: dict[str, torch.Tensor] = {}
        hooks = [policy.action_head.register_forward_hook(lambda m, i, o: caught.__setitem__("pred", o.detach())),
                 policy.cvae_out.register_forward_hook(lambda m, i, o: caught.__setitem__("cvae", o.detach()))]
        policy.train()
        torch.manual_seed(LATENT_SEED)  # the latent's sample
        loss, values = policy(batch)
        for hook in hooks:
            hook.remove()
        loss.backward()
        mu, logvar = caught["cvae"].chunk(2, dim=1)
        out.update({"train.pred": caught["pred"], "train.mu": mu, "train.logvar": logvar,
                    "train.loss": loss.detach().reshape(1),
                    "train.l1": torch.tensor([values["l1"]]), "train.kl": torch.tensor([values["kl"]])})
        for name, p in policy.named_parameters():
            if p.grad is not None and (not name.startswith("backbone.") or name in BACKBONE_GRADS):
                out[f"grad.{name}"] = p.grad.detach().clone()

        policy.eval()
        with torch.no_grad():
            out["eval.loss"] = policy(batch)[0].reshape(1)
        out["predict.actions"] = policy.predict(batch["qpos"], batch["images"])
    return {k: v.contiguous() for k, v in out.items()}


def regenerate() -> Path:
    config = preset("tiny")
    tensors = compute(config)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(ARTIFACT), metadata={"config": json.dumps(config.to_dict()),
                                                "torch": torch.__version__})
    return ARTIFACT


def stored() -> tuple[PolicyConfig, dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(ARTIFACT), framework="pt") as f:
        metadata = f.metadata() or {}
    config = PolicyConfig.from_dict(json.loads(metadata["config"]), source=f"{ARTIFACT} metadata")
    return config, load_file(str(ARTIFACT)), metadata


def drift(name: str, got: torch.Tensor, want: torch.Tensor) -> str | None:
    """None when got matches want; else a line saying how far it moved."""
    if got.shape != want.shape:
        return f"{name}: shape {tuple(got.shape)}, stored {tuple(want.shape)}"
    if torch.allclose(got.to(want.dtype), want, atol=ATOL, rtol=RTOL):
        return None
    diff = (got.to(want.dtype) - want).abs()
    worst = int(diff.flatten().argmax())
    return (f"{name}: max |diff| {float(diff.max()):.3g} at flat index {worst} "
            f"(got {float(got.flatten()[worst]):.6g}, stored {float(want.flatten()[worst]):.6g})")


def test_act_tiny_matches_golden() -> None:
    if os.environ.get(REGENERATE_ENV):
        regenerate()
    assert ARTIFACT.is_file(), f"{ARTIFACT} is missing; write it with python3 {Path(__file__).name} --regenerate"
    config, want, metadata = stored()
    got = compute(config)
    problems = [f"{name}: in the artifact, no longer computed" for name in sorted(set(want) - set(got))]
    problems += [f"{name}: computed, not in the artifact" for name in sorted(set(got) - set(want))]
    problems += [line for name in sorted(set(got) & set(want)) if (line := drift(name, got[name], want[name]))]
    assert not problems, (
        f"the tiny ACT no longer computes its golden values ({len(problems)} tensor(s) differ; artifact written "
        f"with torch {metadata.get('torch', '?')}, now {torch.__version__}). If the change is intended, "
        f"regenerate: python3 tests/test_policy_golden.py --regenerate\n" + "\n".join(problems))


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        sys.exit(f"usage: python3 {sys.argv[0]} --regenerate   (rewrites {ARTIFACT})")
    path = regenerate()
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
