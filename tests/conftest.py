from __future__ import annotations

import pytest
from dynamixel_sdk import PacketHandler, PortHandler

from robot.arm import Arm
from robot.arm_kinds import builtin_kinds
from robot.dynamixel.bus import DynamixelBus, Motor
from robot.dynamixel.control_table import get_model
from robot.sim.virtual_arm import virtual_arm_bus
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor

XM430 = get_model("XM430-W350")


@pytest.fixture
def vbus():
    """Three XM430s, IDs 1..3, at 1 Mbps."""
    with VirtualBus([VirtualMotor(XM430, i, position=2000 + 10 * i) for i in (1, 2, 3)], name="test") as bus:
        yield bus


@pytest.fixture
def sdk(vbus):
    """The unmodified SDK's packet handler and a port on the virtual bus."""
    port = PortHandler(vbus.port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    yield PacketHandler(2.0), port
    port.closePort()


@pytest.fixture
def driver(vbus):
    bus = DynamixelBus(vbus.port, [Motor(i, XM430, f"joint{i}") for i in (1, 2, 3)], read_deadline_s=0.05)
    with bus:
        yield bus


@pytest.fixture
def follower():
    """A ViperX 300 arm (9 motors, two shadows) on a virtual bus, opened through the driver."""
    spec = builtin_kinds()["viperx_300_6dof"]
    with virtual_arm_bus("follower_left", spec) as vbus:
        arm = Arm.on_port("follower_left", spec, vbus.port, read_deadline_s=0.05).open()
        for motor_id in arm.bus.ids:
            arm.bus.configure(motor_id)
        yield arm, vbus
        arm.close()


# -- a recorded dataset and a tiny policy trained on it, shared by the deploy and safety tests ----------------------
@pytest.fixture(scope="session")
def demos(tmp_path_factory):
    """Two 4 s demonstrations by the scripted operator, four cameras at 48x64. Copy it before writing into it."""
    from recording.cli import main as record_main

    root = tmp_path_factory.mktemp("demos") / "demos"
    assert record_main(["--dataset", str(root), "--episodes", "2", "--seconds", "4", "--image-size", "48x64"]) == 0
    return root


@pytest.fixture(scope="session")
def checkpoint(demos, tmp_path_factory):
    """A tiny ACT (cam_high, chunk 8) after a few steps: what it does is irrelevant, that it runs is not."""
    from policies.cli import main as train_main

    out = tmp_path_factory.mktemp("tiny_act") / "run"
    assert train_main(["--dataset", str(demos), "--out", str(out), "--preset", "tiny", "--workers", "0",
                       "--no-progress", "--device", "cpu", "--val-fraction", "0", "--steps", "2"]) == 0
    return out / "last"
