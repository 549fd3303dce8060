"""Every instruction of the virtual bus, driven by the unmodified dynamixel-sdk."""

import time

import serial
from dynamixel_sdk import (
    COMM_SUCCESS,
    GroupBulkRead,
    GroupBulkWrite,
    GroupSyncRead,
    GroupSyncWrite,
)

from robot.dynamixel.protocol import ALERT_BIT, BROADCAST_ID, Instruction, StatusError
from robot.sim.virtual_motor import REBOOT_SILENCE_S
from robot.sim.wire import PacketParser, frame


def test_ping_and_broadcast_ping(sdk):
    ph, port = sdk
    model, result, error = ph.ping(port, 2)
    assert (model, result, error) == (1020, COMM_SUCCESS, 0)
    _, result, _ = ph.ping(port, 7)
    assert result != COMM_SUCCESS  # no such motor: silence
    found, result = ph.broadcastPing(port)
    assert result == COMM_SUCCESS
    assert {i: v[0] for i, v in found.items()} == {1: 1020, 2: 1020, 3: 1020}


def test_read_and_write_one_two_four_bytes(sdk, vbus):
    ph, port = sdk
    assert ph.read4ByteTxRx(port, 1, 132)[:2] == (2010, COMM_SUCCESS)
    assert ph.write1ByteTxRx(port, 1, 65, 1) == (COMM_SUCCESS, 0)  # LED
    assert ph.write2ByteTxRx(port, 1, 84, 640) == (COMM_SUCCESS, 0)  # Position P Gain
    assert ph.write4ByteTxRx(port, 1, 112, 100) == (COMM_SUCCESS, 0)  # Profile Velocity
    assert vbus.get(1, "LED") == 1
    assert ph.read2ByteTxRx(port, 1, 84)[:2] == (640, COMM_SUCCESS)
    assert ph.read4ByteTxRx(port, 1, 112)[:2] == (100, COMM_SUCCESS)


def test_write_errors_carry_the_right_status_codes(sdk):
    ph, port = sdk
    assert ph.write4ByteTxRx(port, 1, 132, 5)[1] == StatusError.ACCESS  # Present Position is read-only
    assert ph.write1ByteTxRx(port, 1, 11, 7)[1] == StatusError.DATA_RANGE  # no operating mode 7
    assert ph.write2ByteTxRx(port, 1, 116, 5)[1] == StatusError.DATA_LENGTH  # half of Goal Position
    assert ph.write1ByteTxRx(port, 1, 64, 1) == (COMM_SUCCESS, 0)  # torque on ...
    assert ph.write1ByteTxRx(port, 1, 11, 4)[1] == StatusError.ACCESS  # ... locks the EEPROM
    assert ph.write4ByteTxRx(port, 1, 116, 5000)[1] == StatusError.DATA_LIMIT  # beyond Max Position Limit


def _raw_exchange(vbus, packet: bytes) -> list:
    """Send raw bytes (to make packets the SDK never would) and parse what comes back."""
    with serial.Serial(vbus.port, 1_000_000, timeout=0.2) as ser:
        ser.write(packet)
        time.sleep(0.05)
        reply = ser.read(256)
    return PacketParser().feed(reply)


def test_bad_crc_bad_length_and_unknown_instruction(vbus):
    bad_crc = bytearray(frame(1, bytes([Instruction.READ, 132, 0, 4, 0])))
    bad_crc[-2] ^= 0x55
    (reply,) = _raw_exchange(vbus, bytes(bad_crc))
    assert reply.motor_id == 1 and reply.params[0] == StatusError.CRC
    (reply,) = _raw_exchange(vbus, frame(1, bytes([Instruction.READ, 132, 0])))  # 2 parameters short
    assert reply.params[0] == StatusError.DATA_LENGTH
    (reply,) = _raw_exchange(vbus, frame(1, bytes([0x77])))
    assert reply.params[0] == StatusError.INSTRUCTION


def test_reg_write_then_action(sdk, vbus):
    ph, port = sdk
    assert ph.regWriteTxRx(port, 2, 65, 1, [1]) == (COMM_SUCCESS, 0)
    assert vbus.get(2, "LED") == 0 and vbus.get(2, "Registered Instruction") == 1
    assert ph.action(port, BROADCAST_ID) == COMM_SUCCESS
    time.sleep(0.01)
    assert vbus.get(2, "LED") == 1 and vbus.get(2, "Registered Instruction") == 0


def test_reboot_clears_a_hardware_error(sdk, vbus):
    ph, port = sdk
    vbus.set_hardware_error(3, 0x20)
    _, result, error = ph.read4ByteTxRx(port, 3, 132)
    assert result == COMM_SUCCESS and error & ALERT_BIT
    assert ph.read1ByteTxRx(port, 3, 70)[0] == 0x20
    result, error = ph.reboot(port, 3)
    assert result == COMM_SUCCESS
    time.sleep(REBOOT_SILENCE_S)  # the firmware restarts before it answers again
    assert ph.read1ByteTxRx(port, 3, 70) == (0, COMM_SUCCESS, 0)


def test_sync_read_and_fast_sync_read(sdk):
    ph, port = sdk
    for fast in (False, True):
        group = GroupSyncRead(port, ph, 132, 4)
        for i in (1, 2, 3):
            group.addParam(i)
        result = group.fastSyncRead() if fast else group.txRxPacket()
        assert result == COMM_SUCCESS, (fast, ph.getTxRxResult(result))
        assert [group.getData(i, 132, 4) for i in (1, 2, 3)] == [2010, 2020, 2030]


def test_bulk_read_of_different_registers(sdk):
    ph, port = sdk
    group = GroupBulkRead(port, ph)
    group.addParam(1, 132, 4)
    group.addParam(3, 84, 2)
    assert group.txRxPacket() == COMM_SUCCESS
    assert group.getData(1, 132, 4) == 2010
    assert group.getData(3, 84, 2) == 800


def test_sync_write_and_bulk_write(sdk, vbus):
    ph, port = sdk
    group = GroupSyncWrite(port, ph, 112, 4)
    for i in (1, 2, 3):
        group.addParam(i, list((50 * i).to_bytes(4, "little")))
    assert group.txPacket() == COMM_SUCCESS
    bulk = GroupBulkWrite(port, ph)
    bulk.addParam(1, 65, 1, [1])
    bulk.addParam(2, 84, 2, [0x20, 0x03])
    assert bulk.txPacket() == COMM_SUCCESS
    time.sleep(0.01)
    assert [vbus.get(i, "Profile Velocity") for i in (1, 2, 3)] == [50, 100, 150]
    assert vbus.get(1, "LED") == 1 and vbus.get(2, "Position P Gain") == 800


def test_byte_stuffing_both_ways(sdk, vbus):
    """0x00FDFFFF is FF FF FD 00 on the wire: the SDK stuffs it, the motor unstuffs it, and back."""
    ph, port = sdk
    value = 0x00FDFFFF
    assert ph.write4ByteTxRx(port, 2, 112, value) == (COMM_SUCCESS, 0)
    assert vbus.get(2, "Profile Velocity") == value
    assert ph.read4ByteTxRx(port, 2, 112) == (value, COMM_SUCCESS, 0)
    group = GroupSyncRead(port, ph, 112, 4)
    group.addParam(2)
    assert group.txRxPacket() == COMM_SUCCESS and group.getData(2, 112, 4) == value


def test_status_return_level_and_secondary_id(sdk, vbus):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 3, 12, 1) == (COMM_SUCCESS, 0)  # motor 3 shadows motor 1
    assert ph.write4ByteTxRx(port, 1, 112, 77) == (COMM_SUCCESS, 0)  # one answer, from motor 1 only
    assert vbus.get(3, "Profile Velocity") == 77
    assert ph.write1ByteTxOnly(port, 2, 68, 1) == COMM_SUCCESS  # status only for reads from now on
    assert ph.write1ByteTxRx(port, 2, 65, 1)[0] != COMM_SUCCESS  # the write works, but nothing answers
    assert ph.read1ByteTxRx(port, 2, 65)[:2] == (1, COMM_SUCCESS)


def test_motor_at_another_baud_rate_hears_nothing(sdk):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 2, 8, 1) == (COMM_SUCCESS, 0)  # motor 2 -> 57600 baud
    assert ph.ping(port, 2)[1] != COMM_SUCCESS
    port.setBaudRate(57_600)
    assert ph.ping(port, 2)[:2] == (1020, COMM_SUCCESS)
    assert ph.ping(port, 1)[1] != COMM_SUCCESS


def test_wire_time_is_paced_by_baud_rate(sdk):
    """A 100-byte read at 57600 baud takes at least its bytes' wire time (~19 ms)."""
    ph, port = sdk
    ph.write1ByteTxRx(port, 1, 9, 0)
    for motor_id in (1, 2, 3):
        ph.write1ByteTxRx(port, motor_id, 8, 1)
    port.setBaudRate(57_600)
    start = time.perf_counter()
    data, result, _ = ph.readTxRx(port, 1, 0, 100)
    elapsed = time.perf_counter() - start
    assert result == COMM_SUCCESS and len(data) == 100
    assert elapsed >= (14 + 111) * 10 / 57_600
