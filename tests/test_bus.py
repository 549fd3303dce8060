"""The driver (robot.dynamixel.bus) through dynamixel-sdk against the virtual bus."""

import time

import pytest

from robot.dynamixel.bus import DynamixelBus, Motor, scan_port
from robot.dynamixel.control_table import get_model
from robot.dynamixel.errors import (
    HardwareError,
    ModelMismatchError,
    MotorStatusError,
    NoResponseError,
    PortError,
)
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import VirtualMotor

XM430 = get_model("XM430-W350")
XM540 = get_model("XM540-W270")
XL430 = get_model("XL430-W250")


def test_read_state_reads_all_motors_in_one_fast_sync_read(vbus):
    # Timing as the sim rig's (a long deadline, a late reply awaited): on a loaded machine the emulator thread can
    # answer late, and a retry would count as a second packet without saying anything about the cycle.
    motors = [Motor(i, XM430, f"joint{i}") for i in (1, 2, 3)]
    with DynamixelBus(vbus.port, motors, read_deadline_s=1.0, latency_ms=20) as driver:
        assert driver.fast_sync_read is True
        state = driver.read_state()
        assert state.position.tolist() == [2010, 2020, 2030]
        before = vbus.packets_received
        driver.read_state()
        assert vbus.packets_received == before + 1  # one instruction packet per cycle


def test_goal_positions_go_out_in_one_sync_write_and_motors_follow(driver, vbus):
    driver.set_torque(True)
    before = vbus.packets_received
    driver.write_goal_positions([1, 2, 3], [2100, 1900, 2030])
    time.sleep(0.2)
    assert vbus.packets_received == before + 1
    assert driver.read_state().position.tolist() == [2100, 1900, 2030]


def test_falls_back_to_sync_read_when_a_motor_lacks_fast_sync_read():
    motors = [VirtualMotor(XM430, 1), VirtualMotor(XM430, 2, firmware=44)]
    with VirtualBus(motors) as vbus, DynamixelBus(vbus.port, [Motor(1, XM430), Motor(2, XM430)]) as bus:
        assert bus.fast_sync_read is False
        assert bus.read_state().position.tolist() == [2048, 2048]


def test_effort_reads_present_load_on_xl430():
    motors = [VirtualMotor(XL430, 1), VirtualMotor(XM430, 2)]
    with VirtualBus(motors) as vbus, DynamixelBus(vbus.port, [Motor(1, XL430), Motor(2, XM430)]) as bus:
        for i in (1, 2):
            bus.configure(i, profile_velocity=10)
        bus.set_torque(True)
        bus.write_goal_positions([1, 2], [2300, 2300])
        time.sleep(0.05)
        effort = bus.read_state().effort
        assert effort[0] != 0 and effort[1] != 0  # both under load while moving, each in its own register


@pytest.mark.parametrize("fast", [True, False])
def test_retries_recover_from_dropped_and_corrupted_packets(vbus, fast):
    with DynamixelBus(vbus.port, [Motor(i, XM430) for i in (1, 2, 3)], fast_sync_read=fast,
                      read_deadline_s=0.1) as bus:
        vbus.drop_next(1)
        state = bus.read_state()
        assert state.attempts >= 2 and state.position.tolist() == [2010, 2020, 2030]
        vbus.corrupt_next(1)
        state = bus.read_state()
        assert state.attempts >= 2 and state.position.tolist() == [2010, 2020, 2030]


def test_set_up_transactions_wait_longer_on_each_retry(driver, vbus):
    # 30 ms late: five attempts at the 1 ms adapter's ~4 ms timeout give up after ~20 ms; backing off waits it out
    vbus.delay_next(1, 0.03)
    assert driver.read(1, "Present Position") == 2010
    assert driver.port.timeout_scale == 1.0  # the 50 Hz path keeps the short timeout afterwards


def test_a_late_reply_is_never_taken_as_the_next_commands_answer(vbus):
    # The first ping's answer comes 300 ms late, after its 202 ms timeout (about 100 ms of margin either way for a
    # loaded machine). Were it left on the wire, the retry or the next read would take it (the SDK accepts any
    # packet from the ID): Drive Mode would read the ping's model number's low byte, 252, and a configure() would
    # write that back into EEPROM.
    with DynamixelBus(vbus.port, [Motor(1, XM430)], latency_ms=100) as bus:
        vbus.delay_next(1, 0.3)
        assert bus.ping(1) == XM430.model_number
        assert bus.read(1, "Drive Mode") == 0
        assert bus.read(1, "Operating Mode") == 3


@pytest.mark.parametrize("fast", [True, False])
def test_persistent_failure_names_port_motor_and_joint(vbus, fast):
    with DynamixelBus(vbus.port, [Motor(i, XM430, f"joint{i}") for i in (1, 2, 3)], fast_sync_read=fast,
                      read_deadline_s=0.03) as bus:
        vbus.silence(2)
        with pytest.raises(NoResponseError) as err:
            bus.read_state()
    assert err.value.motor_id == 2
    message = str(err.value)
    assert "motor 2 (joint2)" in message and vbus.port in message and "attempt" in message


def test_hardware_error_names_motor_and_says_what_to_do(driver, vbus):
    vbus.set_hardware_error(3, 0x20 | 0x04)
    with pytest.raises(HardwareError) as err:
        driver.read_state()
    message = str(err.value)
    assert "motor 3 (joint3)" in message and "overload" in message and "overheating" in message
    assert "reboot" in message
    assert vbus.get(3, "Torque Enable") == 0  # the motor dropped its torque
    driver.reboot(3)
    assert driver.read_state().position.tolist() == [2010, 2020, 2030]


def test_configure_writes_every_setting(driver, vbus):
    driver.configure(2, operating_mode=5, reverse=True, homing_offset=-300, current_limit=500,
                     secondary_id=1, position_limits=(100, 4000), profile_velocity=40, profile_acceleration=5)
    expected = {"Return Delay Time": 0, "Operating Mode": 5, "Drive Mode": 1, "Homing Offset": -300,
                "Current Limit": 500, "Secondary ID": 1, "Min Position Limit": 100,
                "Max Position Limit": 4000, "Profile Velocity": 40, "Profile Acceleration": 5}
    assert {name: vbus.get(2, name) for name in expected} == expected


def test_eeprom_write_with_torque_on_is_refused_with_advice(driver):
    driver.set_torque(True, [1])
    with pytest.raises(MotorStatusError, match="turn torque off first"):
        driver.configure(1, operating_mode=4)


def test_model_mismatch_is_refused(vbus):
    bus = DynamixelBus(vbus.port, [Motor(1, XM430, "waist"), Motor(2, XM540, "shoulder")])
    with pytest.raises(ModelMismatchError, match=r"motor 2 \(shoulder\).*expected a XM540-W270 but found a XM430-W350"):
        bus.open()


def test_wrong_baud_suggests_a_scan(vbus):
    bus = DynamixelBus(vbus.port, [Motor(1, XM430)], baud=57_600)
    with pytest.raises(PortError, match="no motor answered at 57600 baud.*tandem-scan"):
        bus.open()


def test_missing_motor_is_named(vbus):
    bus = DynamixelBus(vbus.port, [Motor(i, XM430, f"j{i}") for i in (1, 2, 3, 4)])
    with pytest.raises(PortError, match=r"motor\(s\) 4 \(j4\) did not answer"):
        bus.open()


def test_scan_finds_motors_at_their_baud_rate(vbus):
    found = scan_port(vbus.port, [57_600, 1_000_000])
    assert list(found) == [1_000_000]
    assert found[1_000_000] == {1: (1020, 48), 2: (1020, 48), 3: (1020, 48)}


def test_hardware_error_at_open_is_raised_and_the_port_is_released(vbus):
    vbus.set_hardware_error(1, 0x01)
    bus = DynamixelBus(vbus.port, [Motor(i, XM430, f"joint{i}") for i in (1, 2, 3)])
    with pytest.raises(HardwareError, match=r"motor 1 \(joint1\).*input voltage"):
        bus.open()
    DynamixelBus(vbus.port, []).open().close()  # not left locked
