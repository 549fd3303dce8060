"""Control tables of the Dynamixel X-series models tandem supports.

Addresses, sizes, access and factory defaults follow the ROBOTIS e-Manual
(Protocol 2.0 control tables, emanual.robotis.com/docs/en/dxl/x/<model>/). Registers
are looked up by name, so code never spells an address; a model without a register
(XL430 and XC430 have no current control) fails loudly instead of reading the wrong bytes.

Two layouts differ beyond their defaults: the X430/X540 models (XL430, XC430, XM430,
XM540) have 56 indirect entries in two blocks, the small X330 models (XL330, XC330)
have 20 whose data follows the addresses at 208, and a PWM Slope register at 62.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

Access = Literal["R", "RW"]

EEPROM_END = 64  # addresses below this are EEPROM: writable only with torque off

# Indirect Address/Data blocks: (first N, last N, address of Indirect Address N, address of Indirect Data N)
INDIRECT_X430 = ((1, 28, 168, 224), (29, 56, 578, 634))  # XL430, XC430, XM430, XM540
INDIRECT_X330 = ((1, 20, 168, 208),)  # XL330, XC330

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
            reg.address: self.registers[reg.name.replace("Data", "Address")]
            for reg in self.registers.values()
            if reg.name.startswith("Indirect Data ")
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
    indirect: tuple[tuple[int, int, int, int], ...] = INDIRECT_X430,
    pwm_slope: int | None = None,
    defaults: dict[str, int] | None = None,
) -> MappingProxyType:
    """The X-series layout; `current_limit=None` means the model has no current sensing.

    `indirect`: the model's Indirect Address/Data blocks (INDIRECT_X430 or INDIRECT_X330).
    `pwm_slope`: initial PWM Slope(62), a register only the X330 models have.
    `defaults`: other initial values where the model's e-Manual differs from this template (gains,
    Moving Threshold, Shutdown); a name the layout lacks is an error, so a typo cannot pass silently.
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
        *([Register("PWM Slope", 62, 1, "RW", pwm_slope)] if pwm_slope is not None else []),
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
        *(r for block in indirect for r in _indirect_registers(*block)),
    ]
    table = {r.name: r for r in regs}
    for name, value in (defaults or {}).items():
        if name not in table:
            raise KeyError(f"model {model_number}: no register {name!r} to give a default")
        table[name] = replace(table[name], default=value)
    return MappingProxyType(table)


_ALL_MODES = frozenset({0, 1, 3, 4, 5, 16})
_NO_CURRENT_MODES = frozenset({1, 3, 4, 16})  # XL430, XC430: no current, no current-based position

# Effort units from the e-Manual: XM Present Current is 2.69 mA a unit, XL330/XC330 1 mA (measured at the
# supply input, not the motor phase), XL430/XC430 Present Load 0.1 % of the maximum torque.
_MA_XM, _MA_X330, _LOAD_PERCENT = 2.69, 1.0, 0.1

# Firmware: what the virtual bus reports (45+ answers Fast Sync Read there). The e-Manual pages give no
# per-model firmware; these stand for current firmware, and the driver probes Fast Sync Read at open anyway.
_FW_XM, _FW_X = 48, 46


def _model(name: str, number: int, modes: frozenset[int], effort: str, unit: float, firmware: int,
           **table: object) -> MotorModel:
    return MotorModel(name, number, _x_series_registers(model_number=number, **table), modes, effort, unit, firmware)


MODELS: MappingProxyType = MappingProxyType(
    {
        m.name: m
        for m in (
            # ALOHA followers (ViperX 300 S) and the WidowX 250 S leader's arm joints
            _model("XM430-W350", 1020, _ALL_MODES, "Present Current", _MA_XM, _FW_XM,
                   current_limit=1193, velocity_limit=200, position_p_gain=800,
                   max_voltage=160, min_voltage=95, nominal_voltage=120, temperature_limit=80),
            _model("XM540-W270", 1120, _ALL_MODES, "Present Current", _MA_XM, _FW_XM,
                   current_limit=2047, velocity_limit=128, position_p_gain=800,
                   max_voltage=160, min_voltage=95, nominal_voltage=120, temperature_limit=80),
            # stock WidowX 250 S wrist rotate and gripper; Koch follower shoulder pan and lift
            _model("XL430-W250", 1060, _NO_CURRENT_MODES, "Present Load", _LOAD_PERCENT, _FW_X,
                   current_limit=None, velocity_limit=265, position_p_gain=640,
                   max_voltage=140, min_voltage=60, nominal_voltage=120, temperature_limit=72,
                   defaults={"Velocity I Gain": 1000, "Position D Gain": 4000}),
            # Koch follower elbow, wrist and gripper (5 V)
            _model("XL330-M288", 1200, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=1750, velocity_limit=445, position_p_gain=400,
                   max_voltage=70, min_voltage=35, nominal_voltage=50, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=140,
                   defaults={"Velocity I Gain": 1600, "Velocity P Gain": 180, "Shutdown": 53}),
            # Koch leader, every joint (5 V); the e-Manual gives it a Position I Gain of 400 out of the box
            _model("XL330-M077", 1190, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=1750, velocity_limit=1620, position_p_gain=400,
                   max_voltage=70, min_voltage=35, nominal_voltage=50, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=140,
                   defaults={"Velocity I Gain": 400, "Velocity P Gain": 40, "Position I Gain": 400, "Shutdown": 53}),
            # ALOHA 2 leader (ALOHA WidowX 250 S) gripper: no current sensing, so no current-based position
            _model("XC430-W150", 1070, _NO_CURRENT_MODES, "Present Load", _LOAD_PERCENT, _FW_X,
                   current_limit=None, velocity_limit=460, position_p_gain=460,
                   max_voltage=160, min_voltage=60, nominal_voltage=120, temperature_limit=80,
                   defaults={"Moving Threshold": 20}),
            _model("XC430-W240", 1080, _NO_CURRENT_MODES, "Present Load", _LOAD_PERCENT, _FW_X,
                   current_limit=None, velocity_limit=306, position_p_gain=700,
                   max_voltage=160, min_voltage=60, nominal_voltage=120, temperature_limit=80),
            # XC330: metal-geared X330 bodies; M = 5 V, T = 12 V (the T288 is the active GELLO's motor)
            _model("XC330-M181", 1230, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=2352, velocity_limit=545, position_p_gain=1200,
                   max_voltage=70, min_voltage=35, nominal_voltage=50, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=140,
                   defaults={"Velocity I Gain": 1400, "Position D Gain": 500}),
            _model("XC330-M288", 1240, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=2352, velocity_limit=350, position_p_gain=1100,
                   max_voltage=70, min_voltage=35, nominal_voltage=50, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=140,
                   defaults={"Velocity I Gain": 1600, "Velocity P Gain": 50, "Position D Gain": 500}),
            _model("XC330-T181", 1210, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=910, velocity_limit=510, position_p_gain=900,
                   max_voltage=140, min_voltage=55, nominal_voltage=120, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=255,
                   defaults={"Velocity I Gain": 1200, "Velocity P Gain": 40}),
            _model("XC330-T288", 1220, _ALL_MODES, "Present Current", _MA_X330, _FW_X,
                   current_limit=910, velocity_limit=320, position_p_gain=900,
                   max_voltage=140, min_voltage=55, nominal_voltage=120, temperature_limit=70,
                   indirect=INDIRECT_X330, pwm_slope=255,
                   defaults={"Velocity I Gain": 1200, "Velocity P Gain": 40}),
            # the other XM430/XM540 gear ratios (the active GELLO's shoulder uses the XM430-W210)
            _model("XM430-W210", 1030, _ALL_MODES, "Present Current", _MA_XM, _FW_XM,
                   current_limit=1193, velocity_limit=330, position_p_gain=800,
                   max_voltage=160, min_voltage=95, nominal_voltage=120, temperature_limit=80),
            _model("XM540-W150", 1130, _ALL_MODES, "Present Current", _MA_XM, _FW_XM,
                   current_limit=2047, velocity_limit=230, position_p_gain=800,
                   max_voltage=160, min_voltage=95, nominal_voltage=120, temperature_limit=80),
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
