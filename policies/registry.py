"""Policies by name. Adding one: write a module with the interface of policies.base.Policy, add a line here."""

from __future__ import annotations

from torch import nn

from policies.act import ACTPolicy
from policies.bc_convmlp import BCConvMLP
from policies.config import PolicyConfig

POLICIES: dict[str, type[nn.Module]] = {
    "act": ACTPolicy,
    "bc_convmlp": BCConvMLP,
}


def make_policy(config: PolicyConfig) -> nn.Module:
    """A freshly initialized policy for the config (random weights; load a checkpoint or backbone file after)."""
    if config.policy not in POLICIES:
        raise ValueError(f"unknown policy {config.policy!r}; available policies: {', '.join(POLICIES)}")
    return POLICIES[config.policy](config)
