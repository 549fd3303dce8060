"""One emulated X-series motor: control-table memory with the model's rules, and motion.

Motion: with torque on, the shaft moves toward Goal Position at a bounded speed
(Profile Velocity, or Velocity Limit when that is 0); with torque off it stays
where it was put by `set_position`, as when a person moves the arm by hand.
Positions are kept in the shaft's own frame ("raw") and shown through Drive Mode
and Homing Offset, as the firmware does.

Indirect Data N reads and writes the byte that Indirect Address N names. Reboot
and Factory Reset, Clear (multi-turn) and Control Table Backup act as X-series
firmware does; after a reboot the motor hears nothing for REBOOT_SILENCE_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from robot.dynamixel.control_table import (
    BAUD_RATE_CODES,
    CENTER_TICK,
    EEPROM_END,
    TICKS_PER_TURN,
    MotorModel,
    Register,
    baud_code,
)
from robot.dynamixel.protocol import (
    ALERT_BIT,
    BACKUP_KEY,
    BACKUP_RESTORE,
    BACKUP_STORE,
    CLEAR_KEY,
    CLEAR_MULTI_TURN,
    FACTORY_RESET_ALL,
    FACTORY_RESET_KEEP_ID,
    FACTORY_RESET_KEEP_ID_AND_BAUD,
    MAX_ID,
    StatusError,
)

RPM_PER_UNIT = 0.229  # Profile Velocity / Velocity Limit / Present Velocity unit
DEFAULT_FIRMWARE = 0  # use the model's
REBOOT_SILENCE_S = 0.03  # firmware restart after Reboot, in wall time; under the driver's 50 ms wait
TICK_WRAP = 32768  # Realtime Tick: milliseconds since boot, modulo this
STARTUP_TORQUE_ON = 0x01  # Startup Configuration bits
STARTUP_RAM_RESTORE = 0x02
IN_POSITION, PROFILE_ONGOING = 0x01, 0x02  # Moving Status bits


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
        self._links = model.indirect_links()  # Indirect Data address -> its Indirect Address register
        self._link_registers = frozenset(self._links.values())
        self._first_link = min(self._links, default=len(self.memory))
        self.backup: bytes | None = None  # Control Table Backup's copy (flash: survives reboot and reset)
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
        self.booted_at = clock()  # the motor's clock, for Realtime Tick
        self.awake_at = 0.0  # time.monotonic() when a reboot's restart is over
        self.reboot_silence_s = REBOOT_SILENCE_S

    # -- memory -----------------------------------------------------------------------
    def _reset(self, *, keep_id: bool, keep_baud: bool) -> None:
        motor_id = self.get("ID") if keep_id else 1
        baud = self.get("Baud Rate") if keep_baud else 1
        for reg in self.model.registers.values():
            self._set(reg.name, reg.default, reg)
        self._set("Firmware Version", self.firmware)
        self._set("ID", motor_id)
        self._set("Baud Rate", baud)
        self._set("Backup Ready", int(self.backup is not None))

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

    @property
    def answering(self) -> bool:
        """Hears the bus: not silenced by a fault, not restarting after a reboot."""
        return not self.silent and time.monotonic() >= self.awake_at

    def _target(self, address: int) -> int:
        """Where a byte really lives: Indirect Data N stands for the byte at Indirect Address N."""
        link = self._links.get(address)
        return address if link is None else link.decode(self.memory[link.address : link.end])

    def read(self, address: int, length: int) -> bytes:
        if address + length > len(self.memory) or length == 0:
            raise WriteRejected(StatusError.ACCESS)
        self._update_present()
        if address + length <= self._first_link:
            return bytes(self.memory[address : address + length])
        return bytes(self.memory[self._target(a)] for a in range(address, address + length))

    def check_write(self, address: int, data: bytes) -> list[tuple[Register, int]]:
        """The registers and values a write would set, or WriteRejected with the motor's error."""
        runs: list[tuple[int, bytearray]] = []  # the write as contiguous runs of real addresses
        for offset, byte in enumerate(data):
            at = self._target(address + offset)
            if runs and runs[-1][0] + len(runs[-1][1]) == at:
                runs[-1][1].append(byte)
            else:
                runs.append((at, bytearray([byte])))
        if not runs:
            raise WriteRejected(StatusError.DATA_LENGTH)
        return [change for at, run in runs for change in self._check_run(at, bytes(run))]

    def _check_run(self, address: int, data: bytes) -> list[tuple[Register, int]]:
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
        if reg in self._link_registers and not EEPROM_END <= value < len(self.memory):
            raise WriteRejected(StatusError.DATA_RANGE)  # Indirect Address points into RAM only

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
        """RAM back to defaults, hardware error cleared, torque off; EEPROM kept. Then silent while restarting.

        Startup Configuration can ask for the backed-up RAM and for torque on, as the firmware does at boot.
        """
        self._update_present()
        eeprom = bytes(self.memory[:EEPROM_END])
        self._reset(keep_id=True, keep_baud=True)
        self.memory[:EEPROM_END] = eeprom
        self.pending_write = None
        startup = self.get("Startup Configuration")
        if startup & STARTUP_RAM_RESTORE and self.backup is not None:
            self._restore(ram_only=True)
        if startup & STARTUP_TORQUE_ON:
            self._set("Torque Enable", 1)
        self._set("Goal Position", self._shown(self.raw_position))  # hold where it is
        self.booted_at = self._clock()
        self.awake_at = time.monotonic() + self.reboot_silence_s

    def factory_reset(self, option: int) -> None:
        """0xFF: everything; 0x01: all but ID; 0x02: all but ID and Baud Rate."""
        if option not in (FACTORY_RESET_ALL, FACTORY_RESET_KEEP_ID, FACTORY_RESET_KEEP_ID_AND_BAUD):
            raise WriteRejected(StatusError.DATA_RANGE)
        self._update_present()
        self._reset(keep_id=option != FACTORY_RESET_ALL, keep_baud=option == FACTORY_RESET_KEEP_ID_AND_BAUD)
        self.pending_write = None

    def clear(self, params: bytes) -> None:
        """Clear (0x10) of the multi-turn count: Present Position back within one turn; only while stopped."""
        if len(params) != 1 + len(CLEAR_KEY):
            raise WriteRejected(StatusError.DATA_LENGTH)
        if params[0] != CLEAR_MULTI_TURN or params[1:] != CLEAR_KEY:
            raise WriteRejected(StatusError.DATA_RANGE)
        self._update_present()
        if self.get("Moving"):
            raise WriteRejected(StatusError.RESULT_FAIL)
        self.raw_position %= TICKS_PER_TURN
        self.hold_here()  # a torqued motor must not turn back to the old multi-turn goal

    def backup_table(self, params: bytes) -> None:
        """Control Table Backup (0x20): store the table, or restore it (torque off, as the firmware asks)."""
        if len(params) != 1 + len(BACKUP_KEY):
            raise WriteRejected(StatusError.DATA_LENGTH)
        if params[0] not in (BACKUP_STORE, BACKUP_RESTORE) or params[1:] != BACKUP_KEY:
            raise WriteRejected(StatusError.DATA_RANGE)
        if self.torque_on or (params[0] == BACKUP_RESTORE and self.backup is None):
            raise WriteRejected(StatusError.RESULT_FAIL)
        if params[0] == BACKUP_STORE:
            self.backup = bytes(self.memory)
            self._set("Backup Ready", 1)
        else:
            self._restore(ram_only=False)

    def _restore(self, *, ram_only: bool) -> None:
        """Writable registers from the backup; never Torque Enable (the caller decides that)."""
        assert self.backup is not None
        for reg in self.model.registers.values():
            if reg.access == "RW" and reg.name != "Torque Enable" and not (ram_only and reg.address < EEPROM_END):
                self.memory[reg.address : reg.end] = self.backup[reg.address : reg.end]

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
        moving = abs(self.raw_velocity) > 1.0
        self._set("Moving", int(moving))
        in_position = self.torque_on and abs(error) < 1.0
        self._set("Moving Status", (IN_POSITION if in_position else 0) | (PROFILE_ONGOING if moving else 0))
        self._set("Position Trajectory", self.get("Present Position"))  # the profile is the motion itself
        self._set("Velocity Trajectory", self.get("Present Velocity"))
        self._set("Realtime Tick", round((now - self.booted_at) * 1000) % TICK_WRAP)
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

