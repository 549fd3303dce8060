"""Control tables of the Dynamixel X-series models tandem supports.

Addresses, sizes, access and factory defaults follow the ROBOTIS e-Manual
(Protocol 2.0 control tables). Registers are looked up by name, so code never
spells an address; a model without a register (XL430 has no current control)
fails loudly instead of reading the wrong bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Access = Literal["R", "RW"]

EEPROM_END = 64  # addresses below this are EEPROM: writable only with torque off
INDIRECT_BLOCKS = ((1, 20, 168, 224), (21, 28, 578, 634))  # (first N, last N, Indirect Address N, Indirect Data N)

TICKS_PER_TURN = 4096
CENTER_TICK = 2048

BAUD_RATE_CODES = MappingProxyType(
    {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000}
)
BAUD_RATES = tuple(BAUD_RATE_CODES.values())

OPERATING_MODES = MappingProxyType(
    {
        "current": 0,
        "velocity": 1,
        "position": 3,
        "extended_position": 4,
        "current_based_position": 5,
        "pwm": 16,
    }
)


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int  # bytes: 1, 2 or 4
    access: Access
    default: int = 0
    signed: bool = False
    torque_lock: bool = False  # a RAM register the firmware locks like EEPROM (Indirect Address)

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def eeprom(self) -> bool:
        """Writable only with torque off: EEPROM, and the RAM registers locked the same way."""
        return self.address < EEPROM_END or self.torque_lock

    def encode(self, value: int) -> bytes:
        return int(value).to_bytes(self.size, "little", signed=self.signed)

    def decode(self, data: bytes | bytearray | list[int]) -> int:
        return int.from_bytes(bytes(data[: self.size]), "little", signed=self.signed)


@dataclass(frozen=True)
class MotorModel:
    name: str
    model_number: int
    registers: MappingProxyType  # name -> Register
    operating_modes: frozenset[int]
    effort_register: str  # "Present Current" (mA) or "Present Load" (0.1 %)
    effort_unit: float  # mA per unit for current, percent per unit for load
    firmware_version: int  # what the virtual bus reports; 45+ answers Fast Sync Read

    def register(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(
                f"{self.name} has no register {name!r}; it has: {', '.join(self.registers)}"
            ) from None

    def has(self, name: str) -> bool:
        return name in self.registers

    @property
    def table_end(self) -> int:
        return max(r.end for r in self.registers.values())

    def indirect_links(self) -> dict[int, Register]:
        """Address of each Indirect Data N -> the Indirect Address N register that says where it points."""
        return {
            self.registers[f"Indirect Data {n}"].address: self.registers[f"Indirect Address {n}"]
            for first, last, _, _ in INDIRECT_BLOCKS
            for n in range(first, last + 1)
            if f"Indirect Data {n}" in self.registers
        }


def _indirect_registers(first: int, last: int, address_at: int, data_at: int) -> list[Register]:
    """Indirect Address N (2 bytes, pointing at Indirect Data N by default) and Indirect Data N (1 byte)."""
    numbers = range(first, last + 1)
    return [
        *(Register(f"Indirect Address {n}", address_at + 2 * (n - first), 2, "RW", data_at + n - first,
                   torque_lock=True) for n in numbers),
        *(Register(f"Indirect Data {n}", data_at + n - first, 1, "RW") for n in numbers),
    ]


def _x_series_registers(
    *,
    model_number: int,
    current_limit: int | None,
    velocity_limit: int,
    position_p_gain: int,
    max_voltage: int,
    min_voltage: int,
    nominal_voltage: int,
    temperature_limit: int,
    second_indirect_block: bool,
) -> MappingProxyType:
    """The X-series layout; `current_limit=None` means the model has no current sensing.

    `second_indirect_block`: Indirect Address/Data 21..28 (578.., 634..), on XM/XH models only.
    """
    has_current = current_limit is not None
    regs = [
        # EEPROM
        Register("Model Number", 0, 2, "R", model_number),
        Register("Model Information", 2, 4, "R"),
        Register("Firmware Version", 6, 1, "R"),
        Register("ID", 7, 1, "RW", 1),
        Register("Baud Rate", 8, 1, "RW", 1),
        Register("Return Delay Time", 9, 1, "RW", 250),
        Register("Drive Mode", 10, 1, "RW", 0),
        Register("Operating Mode", 11, 1, "RW", 3),
        Register("Secondary ID", 12, 1, "RW", 255),
        Register("Protocol Type", 13, 1, "RW", 2),
        Register("Homing Offset", 20, 4, "RW", 0, signed=True),
        Register("Moving Threshold", 24, 4, "RW", 10),
        Register("Temperature Limit", 31, 1, "RW", temperature_limit),
        Register("Max Voltage Limit", 32, 2, "RW", max_voltage),
        Register("Min Voltage Limit", 34, 2, "RW", min_voltage),
        Register("PWM Limit", 36, 2, "RW", 885),
        *([Register("Current Limit", 38, 2, "RW", current_limit)] if has_current else []),
        Register("Velocity Limit", 44, 4, "RW", velocity_limit),
        Register("Max Position Limit", 48, 4, "RW", 4095),
        Register("Min Position Limit", 52, 4, "RW", 0),
        Register("Startup Configuration", 60, 1, "RW", 0),
        Register("Shutdown", 63, 1, "RW", 52),
        # RAM
        Register("Torque Enable", 64, 1, "RW", 0),
        Register("LED", 65, 1, "RW", 0),
        Register("Status Return Level", 68, 1, "RW", 2),
        Register("Registered Instruction", 69, 1, "R", 0),
        Register("Hardware Error Status", 70, 1, "R", 0),
        Register("Velocity I Gain", 76, 2, "RW", 1920),
        Register("Velocity P Gain", 78, 2, "RW", 100),
        Register("Position D Gain", 80, 2, "RW", 0),
        Register("Position I Gain", 82, 2, "RW", 0),
        Register("Position P Gain", 84, 2, "RW", position_p_gain),
        Register("Feedforward 2nd Gain", 88, 2, "RW", 0),
        Register("Feedforward 1st Gain", 90, 2, "RW", 0),
        Register("Bus Watchdog", 98, 1, "RW", 0),
        Register("Goal PWM", 100, 2, "RW", 885, signed=True),
        *([Register("Goal Current", 102, 2, "RW", current_limit, signed=True)] if has_current else []),
        Register("Goal Velocity", 104, 4, "RW", 0, signed=True),
        Register("Profile Acceleration", 108, 4, "RW", 0),
        Register("Profile Velocity", 112, 4, "RW", 0),
        Register("Goal Position", 116, 4, "RW", CENTER_TICK, signed=True),
        Register("Realtime Tick", 120, 2, "R", 0),
        Register("Moving", 122, 1, "R", 0),
        Register("Moving Status", 123, 1, "R", 0),
        Register("Present PWM", 124, 2, "R", 0, signed=True),
        Register("Present Current" if has_current else "Present Load", 126, 2, "R", 0, signed=True),
        Register("Present Velocity", 128, 4, "R", 0, signed=True),
        Register("Present Position", 132, 4, "R", CENTER_TICK, signed=True),
        Register("Velocity Trajectory", 136, 4, "R", 0, signed=True),
        Register("Position Trajectory", 140, 4, "R", 0, signed=True),
        Register("Present Input Voltage", 144, 2, "R", nominal_voltage),
        Register("Present Temperature", 146, 1, "R", 30),
        Register("Backup Ready", 147, 1, "R", 0),
        *_indirect_registers(*INDIRECT_BLOCKS[0]),
        *(_indirect_registers(*INDIRECT_BLOCKS[1]) if second_indirect_block else []),
    ]
    return MappingProxyType({r.name: r for r in regs})


_ALL_MODES = frozenset({0, 1, 3, 4, 5, 16})
_NO_CURRENT_MODES = frozenset({1, 3, 4, 16})

MODELS: MappingProxyType = MappingProxyType(
    {
        m.name: m
        for m in (
            MotorModel(
                "XM430-W350", 1020,
                _x_series_registers(model_number=1020, current_limit=1193, velocity_limit=200,
                                    position_p_gain=800, max_voltage=160, min_voltage=95, nominal_voltage=120,
                                    temperature_limit=80, second_indirect_block=True),
                _ALL_MODES, "Present Current", 2.69, 48,
            ),
            MotorModel(
                "XM540-W270", 1120,
                _x_series_registers(model_number=1120, current_limit=2047, velocity_limit=128,
                                    position_p_gain=800, max_voltage=160, min_voltage=95, nominal_voltage=120,
                                    temperature_limit=80, second_indirect_block=True),
                _ALL_MODES, "Present Current", 2.69, 48,
            ),
            MotorModel(
                "XL430-W250", 1060,
                _x_series_registers(model_number=1060, current_limit=None, velocity_limit=265,
                                    position_p_gain=640, max_voltage=140, min_voltage=60, nominal_voltage=120,
                                    temperature_limit=72, second_indirect_block=False),
                _NO_CURRENT_MODES, "Present Load", 0.1, 46,
            ),
            MotorModel(
                "XL330-M288", 1200,
                _x_series_registers(model_number=1200, current_limit=1750, velocity_limit=445,
                                    position_p_gain=400, max_voltage=70, min_voltage=35, nominal_voltage=50,
                                    temperature_limit=70, second_indirect_block=False),
                _ALL_MODES, "Present Current", 1.0, 46,
            ),
        )
    }
)

MODELS_BY_NUMBER: MappingProxyType = MappingProxyType({m.model_number: m for m in MODELS.values()})


def get_model(name: str) -> MotorModel:
    """The model called `name` (case-insensitive), or a KeyError that lists the known ones."""
    for key, model in MODELS.items():
        if key.lower() == name.strip().lower():
            return model
    raise KeyError(f"unknown Dynamixel model {name!r}; known models: {', '.join(MODELS)}")


def model_name(model_number: int) -> str:
    model = MODELS_BY_NUMBER.get(model_number)
    return model.name if model else f"unknown model {model_number}"


def baud_code(baud: int) -> int:
    for code, rate in BAUD_RATE_CODES.items():
        if rate == baud:
            return code
    raise ValueError(f"{baud} is not a Dynamixel X-series baud rate; use one of {list(BAUD_RATES)}")
