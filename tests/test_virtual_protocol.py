"""The virtual motor's X-series control table and every Protocol 2.0 instruction, through the unmodified SDK."""

from __future__ import annotations

import time

import pytest
from dynamixel_sdk import (
    COMM_RX_TIMEOUT,
    COMM_SUCCESS,
    GroupBulkRead,
    GroupBulkWrite,
    GroupSyncRead,
    GroupSyncWrite,
    PacketHandler,
    PortHandler,
    robotis_def,
)
from dynamixel_sdk.protocol2_packet_handler import (
    PKT_ERROR,
    PKT_ID,
    PKT_INSTRUCTION,
    PKT_LENGTH_H,
    PKT_LENGTH_L,
    PKT_PARAMETER0,
)

from robot.dynamixel.control_table import MODELS, get_model
from robot.dynamixel.protocol import (
    BACKUP_KEY,
    BACKUP_RESTORE,
    BACKUP_STORE,
    BROADCAST_ID,
    CLEAR_KEY,
    CLEAR_MULTI_TURN,
    Instruction,
    StatusError,
)
from robot.sim.virtual_bus import VirtualBus
from robot.sim.virtual_motor import TICK_WRAP, VirtualMotor

XM430 = get_model("XM430-W350")
PRESENT_POSITION, GOAL_POSITION, LED, TORQUE_ENABLE = 132, 116, 65, 64
INDIRECT_ADDRESS_1, INDIRECT_DATA_1 = 168, 224
INDIRECT_ADDRESS_29, INDIRECT_DATA_29 = 578, 634  # the second block (X430/X540 models)
SDK_INSTRUCTIONS = {name: value for name, value in vars(robotis_def).items() if name.startswith("INST_")}


def send(ph: PacketHandler, port: PortHandler, motor_id: int, instruction: int, params: bytes = b"") -> tuple[int, int]:
    """Any instruction through the SDK's own packet functions, and its status: (result, error)."""
    packet = [0] * (10 + len(params))  # header, ID, length, instruction, parameters, CRC: the SDK fills in the rest
    packet[PKT_ID], packet[PKT_INSTRUCTION] = motor_id, instruction
    packet[PKT_LENGTH_L], packet[PKT_LENGTH_H] = (len(params) + 3) & 0xFF, (len(params) + 3) >> 8
    packet[PKT_PARAMETER0 : PKT_PARAMETER0 + len(params)] = list(params)
    assert ph.txPacket(port, packet) == COMM_SUCCESS
    port.setPacketTimeout(11)  # txRxPacket would not wait for Action's status
    status, result = ph.rxPacket(port, False)
    return result, status[PKT_ERROR] if result == COMM_SUCCESS else 0


def map_indirect(ph: PacketHandler, port: PortHandler, motor_id: int, first: int, targets: list[int]) -> None:
    """Indirect Address `first`.. -> `targets`, one byte each."""
    for n, target in enumerate(targets):
        assert ph.write2ByteTxRx(port, motor_id, first + 2 * n, target) == (COMM_SUCCESS, 0)


def wait_until_answering(ph: PacketHandler, port: PortHandler, motor_id: int, tries: int = 200) -> int:
    """Ping until the motor answers; how many pings went unanswered."""
    for missed in range(tries):
        if ph.ping(port, motor_id)[1] == COMM_SUCCESS:
            return missed
    raise AssertionError(f"motor {motor_id} never answered again after {tries} pings")


# -- control table ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_the_indirect_blocks_and_status_registers(name):
    model = get_model(name)
    second_block = "330" not in name  # X430/X540: 1..28 and 29..56; XL330/XC330: 1..20, data at 208
    data_1 = 224 if second_block else 208
    assert (model.register("Indirect Address 1").address, model.register("Indirect Data 1").address) == (168, data_1)
    assert (model.register("Indirect Address 20").end, model.register("Indirect Data 20").end) == (208, data_1 + 20)
    assert model.has("Indirect Data 21") == second_block
    if second_block:
        assert (model.register("Indirect Address 29").address, model.register("Indirect Data 56").address) == (578, 661)
    assert model.register("Indirect Address 7").default == data_1 + 6  # points at its own Indirect Data
    assert model.register("Indirect Address 1").eeprom  # locked while torque is on
    assert not model.register("Indirect Data 1").eeprom
    expected = {"Model Information": (2, 4), "Firmware Version": (6, 1), "Realtime Tick": (120, 2), "Moving": (122, 1),
                "Moving Status": (123, 1), "Present PWM": (124, 2), "Velocity Trajectory": (136, 4),
                "Position Trajectory": (140, 4), "Present Input Voltage": (144, 2),
                "Present Temperature": (146, 1), "Backup Ready": (147, 1)}
    assert {n: (model.register(n).address, model.register(n).size) for n in expected} == expected
    assert len(model.indirect_links()) == (56 if second_block else 20)


def test_model_information_and_firmware_version_are_readable(sdk):
    ph, port = sdk
    data, result, error = ph.readTxRx(port, 1, 0, 7)
    assert (result, error) == (COMM_SUCCESS, 0)
    assert int.from_bytes(bytes(data[0:2]), "little") == 1020  # Model Number
    assert data[6] == XM430.firmware_version
    assert ph.read4ByteTxRx(port, 1, 2) == (0, COMM_SUCCESS, 0)  # Model Information


def test_realtime_tick_counts_milliseconds_since_boot_and_wraps():
    now = [100.0]
    motor = VirtualMotor(XM430, 1, clock=lambda: now[0])
    with VirtualBus([motor]) as vbus:
        port = PortHandler(vbus.port)
        assert port.openPort() and port.setBaudRate(1_000_000)
        ph = PacketHandler(2.0)
        assert ph.read2ByteTxRx(port, 1, 120) == (0, COMM_SUCCESS, 0)
        now[0] += 1.234
        assert ph.read2ByteTxRx(port, 1, 120) == (1234, COMM_SUCCESS, 0)
        now[0] += 40.0
        assert ph.read2ByteTxRx(port, 1, 120) == ((41_234) % TICK_WRAP, COMM_SUCCESS, 0)
        assert ph.reboot(port, 1) == (COMM_SUCCESS, 0)
        wait_until_answering(ph, port, 1)
        now[0] += 0.5
        assert ph.read2ByteTxRx(port, 1, 120) == (500, COMM_SUCCESS, 0)  # counts from the restart
        port.closePort()


def test_realtime_tick_advances_on_the_wall_clock(sdk):
    ph, port = sdk
    first = ph.read2ByteTxRx(port, 2, 120)[0]
    time.sleep(0.02)
    assert ph.read2ByteTxRx(port, 2, 120)[0] != first


# -- indirect addresses -------------------------------------------------------------------------


def test_indirect_data_reads_and_writes_the_bytes_it_points_at(sdk, vbus):
    ph, port = sdk
    map_indirect(ph, port, 1, INDIRECT_ADDRESS_1, [132, 133, 134, 135, LED, 116, 117, 118, 119])
    assert ph.read4ByteTxRx(port, 1, INDIRECT_DATA_1) == (2010, COMM_SUCCESS, 0)  # Present Position
    assert ph.write1ByteTxRx(port, 1, INDIRECT_DATA_1 + 4, 1) == (COMM_SUCCESS, 0)
    assert vbus.get(1, "LED") == 1
    assert ph.write4ByteTxRx(port, 1, INDIRECT_DATA_1 + 5, 1500) == (COMM_SUCCESS, 0)  # Goal Position
    assert vbus.get(1, "Goal Position") == 1500
    # the target's own rules hold: Present Position is read-only, Goal Position stays inside its limits
    assert ph.write4ByteTxRx(port, 1, INDIRECT_DATA_1, 7)[1] == StatusError.ACCESS
    assert ph.write4ByteTxRx(port, 1, INDIRECT_DATA_1 + 5, 5000)[1] == StatusError.DATA_LIMIT
    assert ph.write2ByteTxRx(port, 1, INDIRECT_DATA_1 + 5, 7)[1] == StatusError.DATA_LENGTH  # half a register


def test_unmapped_indirect_data_is_plain_memory_and_the_second_block_works(sdk):
    ph, port = sdk
    assert ph.read2ByteTxRx(port, 2, INDIRECT_ADDRESS_1 + 2) == (INDIRECT_DATA_1 + 1, COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 2, INDIRECT_DATA_1 + 1, 0x5A) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, INDIRECT_DATA_1 + 1) == (0x5A, COMM_SUCCESS, 0)
    map_indirect(ph, port, 2, INDIRECT_ADDRESS_29, [132, 133])
    assert ph.read2ByteTxRx(port, 2, INDIRECT_DATA_29) == (2020, COMM_SUCCESS, 0)


def test_indirect_address_is_locked_by_torque_and_points_into_ram_only(sdk):
    ph, port = sdk
    assert ph.write2ByteTxRx(port, 3, INDIRECT_ADDRESS_1, 11)[1] == StatusError.DATA_RANGE  # Operating Mode: EEPROM
    assert ph.write2ByteTxRx(port, 3, INDIRECT_ADDRESS_1, 700)[1] == StatusError.DATA_RANGE  # past the table
    assert ph.write1ByteTxRx(port, 3, TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert ph.write2ByteTxRx(port, 3, INDIRECT_ADDRESS_1, 132)[1] == StatusError.ACCESS
    assert ph.write1ByteTxRx(port, 3, INDIRECT_DATA_1, 9) == (COMM_SUCCESS, 0)  # the data stays writable


def test_sync_reads_of_indirect_data(sdk, vbus):
    ph, port = sdk
    for motor_id in (1, 2, 3):
        map_indirect(ph, port, motor_id, INDIRECT_ADDRESS_1, [132, 133, 134, 135, LED])
    ph.write1ByteTxRx(port, 2, LED, 1)
    for fast in (False, True):
        group = GroupSyncRead(port, ph, INDIRECT_DATA_1, 5)
        for motor_id in (1, 2, 3):
            group.addParam(motor_id)
        result = group.fastSyncRead() if fast else group.txRxPacket()
        assert result == COMM_SUCCESS, (fast, ph.getTxRxResult(result))
        assert [group.getData(i, INDIRECT_DATA_1, 4) for i in (1, 2, 3)] == [2010, 2020, 2030]
        assert [group.getData(i, INDIRECT_DATA_1 + 4, 1) for i in (1, 2, 3)] == [0, 1, 0]


def test_sync_write_through_indirect_data(sdk, vbus):
    ph, port = sdk
    for motor_id in (1, 2):
        map_indirect(ph, port, motor_id, INDIRECT_ADDRESS_1, [116, 117, 118, 119])
    group = GroupSyncWrite(port, ph, INDIRECT_DATA_1, 4)
    group.addParam(1, list((1000).to_bytes(4, "little")))
    group.addParam(2, list((3000).to_bytes(4, "little")))
    assert group.txPacket() == COMM_SUCCESS
    vbus.settle()
    assert [vbus.get(i, "Goal Position") for i in (1, 2)] == [1000, 3000]


# -- read/write families ------------------------------------------------------------------------


def test_bulk_read_and_bulk_write_of_different_registers(sdk, vbus):
    ph, port = sdk
    map_indirect(ph, port, 2, INDIRECT_ADDRESS_1, [132, 133, 134, 135])
    write = GroupBulkWrite(port, ph)
    write.addParam(1, LED, 1, [1])
    write.addParam(2, 112, 4, list((90).to_bytes(4, "little")))  # Profile Velocity
    write.addParam(3, 84, 2, list((700).to_bytes(2, "little")))  # Position P Gain
    assert write.txPacket() == COMM_SUCCESS
    vbus.settle()
    read = GroupBulkRead(port, ph)
    read.addParam(1, LED, 1)
    read.addParam(2, INDIRECT_DATA_1, 4)
    read.addParam(3, 84, 2)
    assert read.txRxPacket() == COMM_SUCCESS
    assert (read.getData(1, LED, 1), read.getData(2, INDIRECT_DATA_1, 4), read.getData(3, 84, 2)) == (1, 2020, 700)
    assert vbus.get(2, "Profile Velocity") == 90


def test_fast_bulk_read_of_two_motors_at_different_addresses(sdk, vbus):
    ph, port = sdk
    group = GroupBulkRead(port, ph)
    group.addParam(1, PRESENT_POSITION, 4)
    group.addParam(3, 84, 2)  # Position P Gain
    result = group.fastBulkRead()
    assert result == COMM_SUCCESS, ph.getTxRxResult(result)
    assert (group.getData(1, PRESENT_POSITION, 4), group.getData(3, 84, 2)) == (2010, 800)
    vbus.silence(3)  # a motor that does not answer breaks the chain: a failure, never stale data
    assert group.fastBulkRead() != COMM_SUCCESS


def test_reg_write_waits_for_action(sdk, vbus):
    ph, port = sdk
    assert ph.regWriteTxRx(port, 1, GOAL_POSITION, 4, list((1200).to_bytes(4, "little"))) == (COMM_SUCCESS, 0)
    assert ph.regWriteTxRx(port, 3, LED, 1, [1]) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 1, 69) == (1, COMM_SUCCESS, 0)  # Registered Instruction
    assert (vbus.get(1, "Goal Position"), vbus.get(3, "LED")) == (2048, 0)
    assert ph.action(port, BROADCAST_ID) == COMM_SUCCESS
    vbus.settle()
    assert (vbus.get(1, "Goal Position"), vbus.get(3, "LED")) == (1200, 1)
    assert ph.read1ByteTxRx(port, 1, 69) == (0, COMM_SUCCESS, 0)
    # an Action with nothing registered is an Instruction Error; a Reg Write is checked when it arrives
    assert send(ph, port, 2, Instruction.ACTION) == (COMM_SUCCESS, StatusError.INSTRUCTION)
    assert ph.regWriteTxRx(port, 2, PRESENT_POSITION, 4, [0, 0, 0, 0])[1] == StatusError.ACCESS


# -- resets, reboot, clear, backup ----------------------------------------------------------------


def test_factory_reset_answers_from_the_addressed_id(sdk, vbus):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 2, 9, 0) == (COMM_SUCCESS, 0)  # Return Delay Time
    assert ph.factoryReset(port, 2, 0xFF) == (COMM_SUCCESS, 0)  # the status came from ID 2 ...
    assert (vbus.get(2, "ID"), vbus.get(2, "Baud Rate"), vbus.get(2, "Return Delay Time")) == (1, 1, 250)
    assert ph.ping(port, 2)[1] == COMM_RX_TIMEOUT  # ... which is now ID 1 at 57600 baud
    port.setBaudRate(57_600)
    assert ph.ping(port, 1)[:2] == (1020, COMM_SUCCESS)


@pytest.mark.parametrize("option, keeps_baud", [(0x01, False), (0x02, True)])
def test_factory_reset_options_keep_the_id_and_the_baud_rate(sdk, vbus, option, keeps_baud):
    ph, port = sdk
    assert ph.write4ByteTxRx(port, 3, 20, 300) == (COMM_SUCCESS, 0)  # Homing Offset
    assert ph.factoryReset(port, 3, option) == (COMM_SUCCESS, 0)
    assert (vbus.get(3, "ID"), vbus.get(3, "Homing Offset")) == (3, 0)
    assert (ph.ping(port, 3)[1] == COMM_SUCCESS) == keeps_baud
    if not keeps_baud:
        port.setBaudRate(57_600)
        assert ph.ping(port, 3)[:2] == (1020, COMM_SUCCESS)


def test_broadcast_factory_reset_and_a_bad_option_are_refused(sdk, vbus):
    ph, port = sdk
    for motor_id in (1, 2, 3):
        assert ph.write1ByteTxRx(port, motor_id, 9, 0) == (COMM_SUCCESS, 0)
    assert ph.factoryReset(port, BROADCAST_ID, 0xFF)[0] == COMM_SUCCESS
    assert ph.factoryReset(port, 1, 0x07) == (COMM_SUCCESS, StatusError.DATA_RANGE)
    vbus.settle()
    assert [(vbus.get(i, "ID"), vbus.get(i, "Return Delay Time")) for i in (1, 2, 3)] == [(1, 0), (2, 0), (3, 0)]


def test_reboot_answers_then_is_silent_then_comes_back_torque_off(sdk, vbus):
    ph, port = sdk
    vbus.motors[2].reboot_silence_s = 0.3  # long enough that "silent" cannot be a race
    assert ph.write1ByteTxRx(port, 2, TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    vbus.set_hardware_error(2, 0x04)
    assert ph.reboot(port, 2) == (COMM_SUCCESS, 0)  # the status comes first
    assert ph.write1ByteTxRx(port, 2, LED, 1)[0] == COMM_RX_TIMEOUT  # then nothing is heard
    assert ph.ping(port, 1)[1] == COMM_SUCCESS  # the others are unaffected
    assert wait_until_answering(ph, port, 2) > 0
    assert ph.read1ByteTxRx(port, 2, 70) == (0, COMM_SUCCESS, 0)  # hardware error cleared
    assert ph.read1ByteTxRx(port, 2, TORQUE_ENABLE) == (0, COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, LED) == (0, COMM_SUCCESS, 0)  # the write during the restart was lost


def test_clear_brings_a_multi_turn_position_back_within_one_turn(sdk, vbus):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 1, 11, 4) == (COMM_SUCCESS, 0)  # extended position mode
    vbus.set_position(1, 3 * 4096 + 100)
    assert ph.read4ByteTxRx(port, 1, PRESENT_POSITION)[0] == 3 * 4096 + 100
    assert ph.clearMultiTurn(port, 1) == (COMM_SUCCESS, 0)
    assert ph.read4ByteTxRx(port, 1, PRESENT_POSITION)[0] == 100
    wrong_key = bytes([CLEAR_MULTI_TURN]) + b"CLEAR"
    assert send(ph, port, 1, Instruction.CLEAR, wrong_key) == (COMM_SUCCESS, StatusError.DATA_LENGTH)
    assert send(ph, port, 1, Instruction.CLEAR, bytes([0x05]) + CLEAR_KEY) == (COMM_SUCCESS, StatusError.DATA_RANGE)


def test_clear_fails_while_the_motor_moves(sdk, vbus):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 2, 11, 4) == (COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 2, 112, 5) == (COMM_SUCCESS, 0)  # slow: about 80 ticks/s
    assert ph.write1ByteTxRx(port, 2, TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 2, GOAL_POSITION, 20_000) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 2, 122)[0] == 1  # Moving
    assert ph.clearMultiTurn(port, 2) == (COMM_SUCCESS, StatusError.RESULT_FAIL)


def test_control_table_backup_store_restore_and_restore_at_boot(sdk, vbus):
    ph, port = sdk
    store, restore = bytes([BACKUP_STORE]) + BACKUP_KEY, bytes([BACKUP_RESTORE]) + BACKUP_KEY
    assert send(ph, port, 1, Instruction.BACKUP, restore) == (COMM_SUCCESS, StatusError.RESULT_FAIL)  # none yet
    map_indirect(ph, port, 1, INDIRECT_ADDRESS_1, [132])
    assert ph.write1ByteTxRx(port, 1, 60, 0x02) == (COMM_SUCCESS, 0)  # Startup Configuration: restore RAM
    assert send(ph, port, 1, Instruction.BACKUP, store) == (COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 1, 147) == (1, COMM_SUCCESS, 0)  # Backup Ready
    assert ph.reboot(port, 1) == (COMM_SUCCESS, 0)
    wait_until_answering(ph, port, 1)
    assert ph.read2ByteTxRx(port, 1, INDIRECT_ADDRESS_1) == (132, COMM_SUCCESS, 0)  # restored at boot
    assert ph.factoryReset(port, 1, 0x02) == (COMM_SUCCESS, 0)
    assert ph.read2ByteTxRx(port, 1, INDIRECT_ADDRESS_1)[0] == INDIRECT_DATA_1
    assert ph.read1ByteTxRx(port, 1, 147) == (1, COMM_SUCCESS, 0)  # the backup outlives the reset
    assert send(ph, port, 1, Instruction.BACKUP, restore) == (COMM_SUCCESS, 0)
    assert ph.read2ByteTxRx(port, 1, INDIRECT_ADDRESS_1) == (132, COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 1, 60) == (0x02, COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, TORQUE_ENABLE, 1) == (COMM_SUCCESS, 0)
    assert send(ph, port, 1, Instruction.BACKUP, store) == (COMM_SUCCESS, StatusError.RESULT_FAIL)


def test_startup_configuration_can_bring_torque_back_on(sdk, vbus):
    ph, port = sdk
    assert ph.write1ByteTxRx(port, 3, 60, 0x01) == (COMM_SUCCESS, 0)
    assert ph.reboot(port, 3) == (COMM_SUCCESS, 0)
    wait_until_answering(ph, port, 3)
    assert ph.read1ByteTxRx(port, 3, TORQUE_ENABLE) == (1, COMM_SUCCESS, 0)
    assert ph.read4ByteTxRx(port, 3, GOAL_POSITION)[0] == 2030  # holding where it is


# -- the whole instruction set --------------------------------------------------------------------


def _answered_ping(ph, port, vbus):
    return ph.ping(port, 1)[:2] == (1020, COMM_SUCCESS)


def _answered_read(ph, port, vbus):
    return ph.read4ByteTxRx(port, 1, PRESENT_POSITION) == (2010, COMM_SUCCESS, 0)


def _answered_write(ph, port, vbus):
    return ph.write1ByteTxRx(port, 1, LED, 1) == (COMM_SUCCESS, 0) and vbus.get(1, "LED") == 1


def _answered_reg_write(ph, port, vbus):
    return ph.regWriteTxRx(port, 1, LED, 1, [1]) == (COMM_SUCCESS, 0) and vbus.get(1, "Registered Instruction") == 1


def _answered_action(ph, port, vbus):
    ph.regWriteTxRx(port, 1, LED, 1, [1])
    return send(ph, port, 1, Instruction.ACTION) == (COMM_SUCCESS, 0) and vbus.get(1, "LED") == 1


def _answered_factory_reset(ph, port, vbus):
    return ph.factoryReset(port, 1, 0x02) == (COMM_SUCCESS, 0)


def _answered_reboot(ph, port, vbus):
    return ph.reboot(port, 1) == (COMM_SUCCESS, 0)


def _answered_clear(ph, port, vbus):
    return ph.clearMultiTurn(port, 1) == (COMM_SUCCESS, 0)


def _ignored_status(ph, port, vbus):
    """A status packet on the bus is another motor's answer: nobody acts on it or answers it."""
    received = vbus.packets_received
    packet = [0] * 11
    packet[PKT_ID], packet[PKT_LENGTH_L], packet[PKT_INSTRUCTION] = 1, 4, robotis_def.INST_STATUS
    assert ph.txPacket(port, packet) == COMM_SUCCESS
    port.setPacketTimeout(11)
    unanswered = ph.rxPacket(port, False)[1] == COMM_RX_TIMEOUT
    vbus.settle()
    return unanswered and vbus.packets_received == received + 1


def _answered_sync_read(ph, port, vbus):
    group = GroupSyncRead(port, ph, PRESENT_POSITION, 4)
    group.addParam(1), group.addParam(2)
    return group.txRxPacket() == COMM_SUCCESS and group.getData(2, PRESENT_POSITION, 4) == 2020


def _answered_fast_sync_read(ph, port, vbus):
    group = GroupSyncRead(port, ph, PRESENT_POSITION, 4)
    group.addParam(1), group.addParam(2)
    return group.fastSyncRead() == COMM_SUCCESS and group.getData(2, PRESENT_POSITION, 4) == 2020


def _answered_sync_write(ph, port, vbus):
    group = GroupSyncWrite(port, ph, LED, 1)
    group.addParam(2, [1])
    ok = group.txPacket() == COMM_SUCCESS
    vbus.settle()
    return ok and vbus.get(2, "LED") == 1


def _answered_bulk_read(ph, port, vbus):
    group = GroupBulkRead(port, ph)
    group.addParam(1, PRESENT_POSITION, 4)
    return group.txRxPacket() == COMM_SUCCESS and group.getData(1, PRESENT_POSITION, 4) == 2010


def _answered_fast_bulk_read(ph, port, vbus):
    group = GroupBulkRead(port, ph)
    group.addParam(1, PRESENT_POSITION, 4)
    return group.fastBulkRead() == COMM_SUCCESS and group.getData(1, PRESENT_POSITION, 4) == 2010


def _answered_bulk_write(ph, port, vbus):
    group = GroupBulkWrite(port, ph)
    group.addParam(2, LED, 1, [1])
    ok = group.txPacket() == COMM_SUCCESS
    vbus.settle()
    return ok and vbus.get(2, "LED") == 1


INSTRUCTION_CHECKS = {
    "INST_PING": _answered_ping,
    "INST_READ": _answered_read,
    "INST_WRITE": _answered_write,
    "INST_REG_WRITE": _answered_reg_write,
    "INST_ACTION": _answered_action,
    "INST_FACTORY_RESET": _answered_factory_reset,
    "INST_REBOOT": _answered_reboot,
    "INST_CLEAR": _answered_clear,
    "INST_STATUS": _ignored_status,
    "INST_SYNC_READ": _answered_sync_read,
    "INST_FAST_SYNC_READ": _answered_fast_sync_read,
    "INST_SYNC_WRITE": _answered_sync_write,
    "INST_BULK_READ": _answered_bulk_read,
    "INST_FAST_BULK_READ": _answered_fast_bulk_read,
    "INST_BULK_WRITE": _answered_bulk_write,
}


def test_every_instruction_the_sdk_defines_is_known_and_checked():
    assert set(INSTRUCTION_CHECKS) == set(SDK_INSTRUCTIONS)  # a new SDK instruction needs a check here
    assert {value for value in SDK_INSTRUCTIONS.values()} <= {i.value for i in Instruction}


@pytest.mark.parametrize("name", sorted(SDK_INSTRUCTIONS))
def test_every_instruction_the_sdk_defines_is_answered(sdk, vbus, name):
    ph, port = sdk
    assert INSTRUCTION_CHECKS[name](ph, port, vbus), name
