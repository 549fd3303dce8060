"""The rig: which arms exist, on which ports. Presets "aloha" (hardware) and "sim" (virtual buses).

This first version knows the arms only; cameras, the pedal and YAML rig files
join it with calibration and teleop.
"""

from __future__ import annotations

from dataclasses import dataclass

from robot.arm import VIPERX_300_6DOF, WIDOWX_250_6DOF, ArmSpec

VIRTUAL_PORT = "virtual"  # the sim rig's arms get their pseudo-terminal when the rig starts


@dataclass(frozen=True)
class RigArm:
    name: str
    role: str  # "leader" or "follower"
    spec: ArmSpec
    port: str
    baud: int = 1_000_000


def _aloha_arms(ports: dict[str, str]) -> tuple[RigArm, ...]:
    return (
        RigArm("leader_left", "leader", WIDOWX_250_6DOF, ports["leader_left"]),
        RigArm("leader_right", "leader", WIDOWX_250_6DOF, ports["leader_right"]),
        RigArm("follower_left", "follower", VIPERX_300_6DOF, ports["follower_left"]),
        RigArm("follower_right", "follower", VIPERX_300_6DOF, ports["follower_right"]),
    )


# ALOHA's udev rules name the U2D2s like this.
ALOHA_PORTS = {
    "leader_left": "/dev/ttyDXL_master_left",
    "leader_right": "/dev/ttyDXL_master_right",
    "follower_left": "/dev/ttyDXL_puppet_left",
    "follower_right": "/dev/ttyDXL_puppet_right",
}

PRESETS = {
    "aloha": _aloha_arms(ALOHA_PORTS),
    "sim": _aloha_arms(dict.fromkeys(ALOHA_PORTS, VIRTUAL_PORT)),
}


def load_rig_arms(name: str) -> tuple[RigArm, ...]:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown rig {name!r}: the presets are {', '.join(PRESETS)}") from None
