"""Protocol 2.0 facts: instruction codes, status error numbers, hardware error bits.

Both the driver (through dynamixel-sdk) and the virtual bus use these names, so a
status code means the same thing on either side of the wire.
"""

from __future__ import annotations

from enum import IntEnum

BROADCAST_ID = 0xFE
MAX_ID = 0xFC
HEADER = b"\xff\xff\xfd\x00"


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    BACKUP = 0x20  # Control Table Backup (X-series firmware 45+)
    STATUS = 0x55
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    FAST_SYNC_READ = 0x8A
    BULK_READ = 0x92
    BULK_WRITE = 0x93
    FAST_BULK_READ = 0x9A


# Factory Reset's parameter: what the reset spares.
FACTORY_RESET_ALL = 0xFF
FACTORY_RESET_KEEP_ID = 0x01
FACTORY_RESET_KEEP_ID_AND_BAUD = 0x02

# Clear and Control Table Backup take an option byte, then a fixed key that guards against stray packets.
CLEAR_MULTI_TURN = 0x01  # Present Position back to within one turn
CLEAR_KEY = b"DXL\x22"  # 0x44 0x58 0x4C 0x22, as the e-Manual and dynamixel-sdk's clearMultiTurn send it
BACKUP_STORE = 0x01
BACKUP_RESTORE = 0x02
BACKUP_KEY = b"CTRL"  # 0x43 0x54 0x52 0x4C


class StatusError(IntEnum):
    """The low 7 bits of a status packet's error byte."""

    NONE = 0
    RESULT_FAIL = 1
    INSTRUCTION = 2
    CRC = 3
    DATA_RANGE = 4
    DATA_LENGTH = 5
    DATA_LIMIT = 6
    ACCESS = 7


ALERT_BIT = 0x80  # set in every status packet while Hardware Error Status is non-zero

STATUS_ERROR_TEXT = {
    StatusError.RESULT_FAIL: "the motor failed to process the instruction",
    StatusError.INSTRUCTION: "undefined instruction, or Action without Reg Write",
    StatusError.CRC: "the motor saw a CRC mismatch (noise on the bus, or a bad cable)",
    StatusError.DATA_RANGE: "the value is outside the register's range",
    StatusError.DATA_LENGTH: "the data is shorter or longer than the register",
    StatusError.DATA_LIMIT: "the value exceeds a limit set in the control table",
    StatusError.ACCESS: "the register is read-only, undefined, or EEPROM written with torque on",
}

# Hardware Error Status (address 70) bits, with what a person should do about each.
HARDWARE_ERROR_BITS = {
    0: ("input voltage error", "check the power supply voltage against the motor's rating"),
    2: ("overheating", "let the motor cool down and reduce its load or current limit"),
    3: ("motor encoder error", "the encoder may be damaged; contact ROBOTIS if a reboot does not clear it"),
    4: ("electrical shock error", "check the wiring and power supply for shorts"),
    5: ("overload", "the load exceeded the motor's capacity; free the joint and lower the load"),
}


def describe_hardware_error(status: int) -> list[str]:
    """Each set bit of Hardware Error Status as 'what happened: what to do'."""
    out = []
    for bit, (what, todo) in HARDWARE_ERROR_BITS.items():
        if status & (1 << bit):
            out.append(f"{what}: {todo}")
    unknown = status & ~sum(1 << b for b in HARDWARE_ERROR_BITS)
    if unknown:
        out.append(f"unknown hardware error bits 0x{unknown:02x}")
    return out


def describe_status_error(error: int) -> str:
    """A status packet's error byte (alert bit ignored) as 'NAME: meaning'."""
    code = error & ~ALERT_BIT
    try:
        status = StatusError(code)
    except ValueError:
        return f"error number {code}: not defined by Protocol 2.0"
    return f"{status.name}: {STATUS_ERROR_TEXT.get(status, 'no error')}"
