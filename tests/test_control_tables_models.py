"""Every model in the control tables, emulated on a virtual bus and spoken to by the real driver (dynamixel-sdk)."""

import pytest

from robot.dynamixel.bus import DynamixelBus, Motor, scan_port
from robot.dynamixel.control_table import MODELS, OPERATING_MODES, get_model
from robot.dynamixel.errors import MotorStatusError
from robot.dynamixel.protocol import StatusError
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor

CURRENT_BASED_POSITION = OPERATING_MODES["current_based_position"]
# Patient packet timeouts: on a loaded machine a virtual motor may answer after the 1 ms-latency timeout, and
# the late answer would then be taken for the next transaction's (what these tests check is the tables).
BUS = {"read_deadline_s": 0.2, "latency_ms": 20.0}


@pytest.mark.parametrize("name", list(MODELS))
def test_the_driver_pings_reads_and_configures_each_model(name):
    model = get_model(name)
    motors = [VirtualMotor(model, i, position=1000 + 100 * i) for i in (1, 2)]
    with VirtualBus(motors, name=name) as vbus:
        answer = (model.model_number, model.firmware_version)
        assert scan_port(vbus.port, bauds=[1_000_000]) == {1_000_000: {1: answer, 2: answer}}
        # a bus that knows no motors learns the model from the ping, as tandem-scan does
        with DynamixelBus(vbus.port, [], **BUS) as unknown:
            assert unknown.model_of(2) is model
            assert unknown.read(2, "Model Number") == model.model_number
            assert unknown.read(2, "Velocity Limit") == model.register("Velocity Limit").default
        bus = DynamixelBus(vbus.port, [Motor(i, model, f"joint{i}") for i in (1, 2)], **BUS)
        with bus:  # open() checks every model number and probes Fast Sync Read
            state = bus.read_state()
            assert state.position.tolist() == [1100, 1200] and state.effort.tolist() == [0, 0]
            if model.has("Current Limit"):
                bus.configure(1, operating_mode=CURRENT_BASED_POSITION, current_limit=200)
                assert (bus.read(1, "Operating Mode"), bus.read(1, "Current Limit")) == (CURRENT_BASED_POSITION, 200)
            else:
                with pytest.raises(MotorStatusError) as refused:
                    bus.configure(1, operating_mode=CURRENT_BASED_POSITION)
                assert refused.value.error == StatusError.DATA_RANGE
            # Indirect Address 1..4 -> Present Position: the four bytes read back at Indirect Data 1
            for n in range(4):
                bus.write(2, f"Indirect Address {n + 1}", model.register("Present Position").address + n)
            assert sum(bus.read(2, f"Indirect Data {n + 1}") << 8 * n for n in range(4)) == 1200


@pytest.mark.parametrize(
    ("arm", "joints"),
    [
        # LeRobot koch_follower: XL430-W250 at IDs 1-2, XL330-M288 at 3-6, one bus
        ("koch_follower", [("XL430-W250", 1), ("XL430-W250", 2)] + [("XL330-M288", i) for i in range(3, 7)]),
        # Trossen's ALOHA WidowX 250 S (ALOHA 2 leader): XM430-W350 at IDs 1-8, XC430-W150 gripper at 9
        ("aloha_wx250s", [("XM430-W350", i) for i in range(1, 9)] + [("XC430-W150", 9)]),
    ],
)
def test_one_sync_read_serves_a_bus_of_mixed_models(arm, joints):
    motors = [VirtualMotor(get_model(name), i, position=2048 + i) for name, i in joints]
    with VirtualBus(motors, name=arm) as vbus:
        with DynamixelBus(vbus.port, [Motor(i, get_model(name)) for name, i in joints], **BUS) as bus:
            assert bus.read_state().position.tolist() == [2048 + i for _, i in joints]
