"""One emulated X-series motor: control-table memory with the model's rules, and motion.

Motion: with torque on, the shaft moves toward Goal Position at a bounded speed
(Profile Velocity, or Velocity Limit when that is 0); with torque off it stays
where it was put by `set_position`, as when a person moves the arm by hand.
Positions are kept in the shaft's own frame ("raw") and shown through Drive Mode
and Homing Offset, as the firmware does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from robot.dynamixel.control_table import (
    BAUD_RATE_CODES,
    CENTER_TICK,
    TICKS_PER_TURN,
    MotorModel,
    Register,
    baud_code,
)
from robot.dynamixel.protocol import ALERT_BIT, MAX_ID, StatusError

RPM_PER_UNIT = 0.229  # Profile Velocity / Velocity Limit / Present Velocity unit
DEFAULT_FIRMWARE = 0  # use the model's


class WriteRejected(Exception):
    def __init__(self, error: StatusError):
        super().__init__(error.name)
        self.error = error


class VirtualMotor:
    def __init__(
        self,
        model: MotorModel,
        motor_id: int,
        *,
        baud: int = 1_000_000,
        position: int = CENTER_TICK,  # as Present Position will show it
        firmware: int = DEFAULT_FIRMWARE,
        settings: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._clock = clock
        self.firmware = firmware or model.firmware_version
        self.memory = bytearray(model.table_end)
        self._reset(keep_id=False, keep_baud=False)
        self._set("ID", motor_id)
        self._set("Baud Rate", baud_code(baud))
        for name, value in (settings or {}).items():  # EEPROM as the arm's maker left it
            self._set(name, value)
        self.position_offset = 0  # a slipped horn: reads off by this many ticks
        self.raw_position = self._raw(position)
        self.raw_velocity = 0.0
        self.last_update = clock()
        self.pending_write: tuple[int, bytes] | None = None
        self.silent = False  # a fault: stops answering entirely
        self.driven: bool = False  # moved by a simulated world (drive()), not by its own motion model
        self.driven_current = 0.0  # Present Current/Load units, while driven

    # -- memory -----------------------------------------------------------------------
    def _reset(self, *, keep_id: bool, keep_baud: bool) -> None:
        motor_id = self.get("ID") if keep_id else 1
        baud = self.get("Baud Rate") if keep_baud else 1
        for reg in self.model.registers.values():
            self._set(reg.name, reg.default, reg)
        self._set("Firmware Version", self.firmware)
        self._set("ID", motor_id)
        self._set("Baud Rate", baud)

    def _set(self, name: str, value: int, reg: Register | None = None) -> None:
        reg = reg or self.model.register(name)
        self.memory[reg.address : reg.end] = reg.encode(value)

    def get(self, name: str) -> int:
        reg = self.model.register(name)
        return reg.decode(self.memory[reg.address : reg.end])

    @property
    def motor_id(self) -> int:
        return self.get("ID")

    @property
    def secondary_id(self) -> int:
        return self.get("Secondary ID")

    @property
    def baud(self) -> int:
        return BAUD_RATE_CODES[self.get("Baud Rate")]

    @property
    def torque_on(self) -> bool:
        return bool(self.get("Torque Enable"))

    @property
    def return_delay_s(self) -> float:
        return self.get("Return Delay Time") * 2e-6

    @property
    def status_return_level(self) -> int:
        return self.get("Status Return Level")

    @property
    def error_byte(self) -> int:
        return ALERT_BIT if self.get("Hardware Error Status") else 0

    def read(self, address: int, length: int) -> bytes:
        if address + length > len(self.memory) or length == 0:
            raise WriteRejected(StatusError.ACCESS)
        self._update_present()
        return bytes(self.memory[address : address + length])

    def check_write(self, address: int, data: bytes) -> list[tuple[Register, int]]:
        """The registers and values a write would set, or WriteRejected with the motor's error."""
        end = address + len(data)
        regs = sorted(
            (r for r in self.model.registers.values() if r.address < end and r.end > address),
            key=lambda r: r.address,
        )
        if not regs:
            raise WriteRejected(StatusError.ACCESS)
        if regs[0].address != address or regs[-1].end != end:
            raise WriteRejected(StatusError.DATA_LENGTH)  # a register cut in half
        if any(a.end != b.address for a, b in zip(regs, regs[1:], strict=False)):
            raise WriteRejected(StatusError.ACCESS)  # spans an undefined address
        out = []
        for reg in regs:
            if reg.access != "RW" or (reg.eeprom and self.torque_on):
                raise WriteRejected(StatusError.ACCESS)
            value = reg.decode(data[reg.address - address : reg.end - address])
            self._check_value(reg, value)
            out.append((reg, value))
        return out

    def _check_value(self, reg: Register, value: int) -> None:
        if reg.name == "Operating Mode" and value not in self.model.operating_modes:
            raise WriteRejected(StatusError.DATA_RANGE)
        if reg.name == "Baud Rate" and value not in BAUD_RATE_CODES:
            raise WriteRejected(StatusError.DATA_RANGE)
        if reg.name in ("ID", "Secondary ID") and value > (MAX_ID if reg.name == "ID" else 255):
            raise WriteRejected(StatusError.DATA_RANGE)
        if reg.name == "Torque Enable" and value not in (0, 1):
            raise WriteRejected(StatusError.DATA_RANGE)
        if reg.name == "Goal Position" and self.get("Operating Mode") in (3, 5):
            if not self.get("Min Position Limit") <= value <= self.get("Max Position Limit"):
                raise WriteRejected(StatusError.DATA_LIMIT)
        if reg.name == "Goal Current" and abs(value) > self.get("Current Limit"):
            raise WriteRejected(StatusError.DATA_LIMIT)

    def write(self, address: int, data: bytes) -> None:
        """Apply a write as the firmware would; raises WriteRejected without changing anything."""
        changes = self.check_write(address, data)
        self._update_present()
        for reg, value in changes:
            if reg.name == "Torque Enable" and value and self.get("Hardware Error Status"):
                continue  # the firmware refuses torque until a reboot clears the error
            self._set(reg.name, value, reg)
            if reg.name == "Torque Enable" and value:
                # hold where it is, rather than jump to a stale goal
                self._set("Goal Position", self._shown(self.raw_position))

    def reg_write(self, address: int, data: bytes) -> None:
        self.check_write(address, data)
        self.pending_write = (address, bytes(data))
        self._set("Registered Instruction", 1)

    def action(self) -> bool:
        if self.pending_write is None:
            return False
        address, data = self.pending_write
        self.pending_write = None
        self._set("Registered Instruction", 0)
        self.write(address, data)
        return True

    def reboot(self) -> None:
        """RAM back to defaults, hardware error cleared, torque off; EEPROM kept."""
        eeprom = bytes(self.memory[:64])
        self._reset(keep_id=True, keep_baud=True)
        self.memory[:64] = eeprom
        self.pending_write = None

    def factory_reset(self, option: int) -> None:
        self._reset(keep_id=option in (0x01, 0x02), keep_baud=option == 0x02)

    # -- motion -----------------------------------------------------------------------
    def _direction(self) -> int:
        return -1 if self.get("Drive Mode") & 0x01 else 1

    def _shown(self, raw: float) -> int:
        """Raw shaft ticks as Present Position shows them (drive mode, homing offset)."""
        shaft = raw if self._direction() > 0 else TICKS_PER_TURN - raw
        return round(shaft) + self.get("Homing Offset") + self.position_offset

    def _raw(self, shown: int) -> float:
        shaft = shown - self.get("Homing Offset") - self.position_offset
        return float(shaft if self._direction() > 0 else TICKS_PER_TURN - shaft)

    def _max_speed(self) -> float:
        """Ticks per second."""
        units = self.get("Profile Velocity") or self.get("Velocity Limit")
        return units * RPM_PER_UNIT / 60.0 * TICKS_PER_TURN

    def _update_present(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self.last_update)
        self.last_update = now
        error = 0.0
        if self.driven:
            pass  # position and velocity are the world's (drive())
        elif self.torque_on:
            target = self._raw(self.get("Goal Position"))
            error = target - self.raw_position
            step = max(-self._max_speed() * dt, min(self._max_speed() * dt, error))
            self.raw_position += step
            self.raw_velocity = step / dt if dt > 0 else 0.0
        else:
            self.raw_velocity = 0.0
        self._set("Present Position", self._shown(self.raw_position))
        rpm = self.raw_velocity * self._direction() / TICKS_PER_TURN * 60.0
        self._set("Present Velocity", round(rpm / RPM_PER_UNIT))
        self._set("Moving", int(abs(self.raw_velocity) > 1.0))
        if self.driven:
            limit = self.get("Current Limit") if self.model.has("Current Limit") else 1000
            self._set("Present Current" if self.model.has("Present Current") else "Present Load",
                      max(-limit, min(limit, round(self.driven_current * self._direction()))) if self.torque_on else 0)
        elif self.model.has("Present Current"):
            limit = self.get("Current Limit")
            # a plausible holding current: proportional to the tracking error, capped by the limit
            amps = max(-limit, min(limit, round(error * 2.0 * self._direction())))
            self._set("Present Current", amps if self.torque_on else 0)
        else:
            load = max(-1000, min(1000, round(error * self._direction())))
            self._set("Present Load", load if self.torque_on else 0)

    def set_position(self, shown_ticks: int) -> None:
        """Move the shaft from outside (a hand on a limp arm) so it reads `shown_ticks`."""
        self._update_present()
        self.raw_position = self._raw(shown_ticks)
        self._update_present()

    def set_shaft(self, raw_ticks: float) -> None:
        """Move the shaft itself (frame before Drive Mode and Homing Offset): a hand on the arm."""
        self._update_present()
        self.raw_position = float(raw_ticks)
        self._update_present()

    def drive(self, raw_position: float, raw_velocity: float, current: float) -> None:
        """The world moved the shaft: position and velocity in shaft ticks (per s), current in register units."""
        self.driven = True
        self.raw_position, self.raw_velocity, self.driven_current = raw_position, raw_velocity, current
        self._update_present()

    def goal_shaft(self) -> float | None:
        """Goal Position in the shaft's own frame, or None while torque is off."""
        return self._raw(self.get("Goal Position")) if self.torque_on else None

    def hold_here(self) -> None:
        """Goal = present position (the world was reset under a torqued motor)."""
        self._update_present()
        self._set("Goal Position", self._shown(self.raw_position))

    def set_hardware_error(self, bits: int) -> None:
        """Raise Hardware Error Status bits; torque drops as the Shutdown register asks."""
        self._set("Hardware Error Status", self.get("Hardware Error Status") | bits)
        if bits & self.get("Shutdown"):
            self._set("Torque Enable", 0)

