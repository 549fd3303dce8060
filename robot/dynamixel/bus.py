"""One Dynamixel bus (one serial port) through dynamixel-sdk, Protocol 2.0.

Per control cycle a bus costs two transactions: one sync read of Present
Current/Load + Velocity + Position (addresses 126..135) for every motor, as Fast
Sync Read where all motors answer it, and one sync write of Goal Position.
Reads retry until a deadline; what still fails raises an error that names the
port, the motor and its joint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from dynamixel_sdk import COMM_SUCCESS, PacketHandler

from robot.dynamixel.control_table import BAUD_RATES, MODELS_BY_NUMBER, MotorModel, model_name
from robot.dynamixel.errors import (
    DynamixelError,
    HardwareError,
    ModelMismatchError,
    MotorStatusError,
    NoResponseError,
    PortError,
    TorqueReleaseError,
)
from robot.dynamixel.port import TandemPortHandler, open_port
from robot.dynamixel.protocol import ALERT_BIT, BROADCAST_ID, StatusError

log = logging.getLogger(__name__)

STATE_ADDRESS = 126  # Present Current (or Load) 126, Present Velocity 128, Present Position 132
STATE_LENGTH = 10
GOAL_POSITION = 116
_STATE_DTYPE = np.dtype([("effort", "<i2"), ("velocity", "<i4"), ("position", "<i4")])
_GOAL_DTYPE = np.dtype([("id", "u1"), ("goal", "<i4")])  # one sync-write entry, packed


@dataclass(frozen=True)
class Motor:
    motor_id: int
    model: MotorModel
    joint: str | None = None  # for error messages: "shoulder", "shoulder_shadow", ...


@dataclass
class BusState:
    """One sync read, in the bus's motor order. Raw units: ticks, 0.229 rpm, mA or 0.1 %."""

    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    stamp: float  # time.perf_counter() when the read completed
    attempts: int


class DynamixelBus:
    def __init__(
        self,
        port: str,
        motors: Sequence[Motor],
        *,
        baud: int = 1_000_000,
        read_deadline_s: float = 0.012,
        transaction_attempts: int = 5,
        fast_sync_read: bool | None = None,
        latency_ms: float | None = None,  # None: the adapter's latency timer (see robot.dynamixel.port)
    ) -> None:
        if baud not in BAUD_RATES:
            raise ValueError(f"{port}: baud {baud} is not a Dynamixel rate; use one of {list(BAUD_RATES)}")
        ids = [m.motor_id for m in motors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{port}: motor IDs repeat: {ids}")
        self.port_name = port
        self.motors = list(motors)
        self.baud = baud
        self.read_deadline_s = read_deadline_s
        # Single-motor transactions are set-up and shutdown, never on the 50 Hz path, so a few
        # more (and more patient) attempts cost little and keep a lost status packet from failing a start-up.
        self.transaction_attempts = transaction_attempts
        self.fast_sync_read = fast_sync_read  # None: find out at open()
        self.latency_ms = latency_ms
        self.ids = ids
        self._by_id = {m.motor_id: m for m in motors}
        self._ph = PacketHandler(2.0)
        self._port: TandemPortHandler | None = None
        self._lock = threading.RLock()  # held across a sync read, which may read an error register
        self.failed_reads = 0  # attempts that had to be retried, for the loop's statistics

    # -- lifecycle --------------------------------------------------------------------
    def open(self, *, check_models: bool = True) -> DynamixelBus:
        """Open the port and check that every configured motor answers with its model."""
        self._port = open_port(self.port_name, self.baud, self.latency_ms)
        try:
            if check_models and self.motors:
                self._check_motors()
        except BaseException:
            self.close()
            raise
        return self

    def _check_motors(self) -> None:
        found = {}
        for m in self.motors:
            try:
                found[m.motor_id] = self.ping(m.motor_id)
            except NoResponseError:
                continue
        if not found:
            raise PortError(
                f"{self.port_name}: no motor answered at {self.baud} baud (expected IDs {self.ids}). "
                "Is the arm powered? If the baud rate is wrong, find the motors with "
                f"'tandem-scan --port {self.port_name} --baud all'."
            )
        missing = [m for m in self.motors if m.motor_id not in found]
        if missing:
            names = ", ".join(f"{m.motor_id} ({m.joint or m.model.name})" for m in missing)
            raise PortError(
                f"{self.port_name}: motor(s) {names} did not answer while {sorted(found)} did. "
                "Check the cable daisy-chain up to those motors and their IDs."
            )
        for m in self.motors:
            if found[m.motor_id] != m.model.model_number:
                raise ModelMismatchError(self.port_name, m.motor_id, m.joint, m.model.name,
                                         model_name(found[m.motor_id]))
        if self.fast_sync_read is None:
            self.fast_sync_read = self._fast_sync_read_works()
            log.debug("%s: %s", self.port_name,
                      "Fast Sync Read" if self.fast_sync_read else "Sync Read (a motor lacks Fast Sync Read)")

    def close(self) -> None:
        if self._port is not None:
            self._port.closePort()
            self._port = None

    def __enter__(self) -> DynamixelBus:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    @property
    def port(self) -> TandemPortHandler:
        if self._port is None:
            raise PortError(f"{self.port_name}: the bus is not open")
        return self._port

    def joint_of(self, motor_id: int) -> str | None:
        m = self._by_id.get(motor_id)
        return m.joint if m else None

    # -- single-motor transactions ------------------------------------------------------
    def _transact(self, motor_id: int, what: str, call: Callable[[], tuple]) -> tuple:
        """Run an SDK call that returns (..., result, error); retry lost packets, raise on errors."""
        detail = ""
        for attempt in range(1, self.transaction_attempts + 1):
            with self._lock:
                # Each retry waits longer: a motor busy with an EEPROM write, or a virtual bus on a
                # loaded machine, answers late rather than never.
                self.port.timeout_scale = float(attempt)
                try:
                    *value, result, error = call()
                    if result != COMM_SUCCESS:
                        self._drop_late_reply()
                finally:
                    self.port.timeout_scale = 1.0
            if result == COMM_SUCCESS:
                self._raise_status(motor_id, what, error)
                return tuple(value)
            detail = self._ph.getTxRxResult(result)
            log.debug("%s motor %d: %s attempt %d: %s", self.port_name, motor_id, what, attempt, detail)
        raise NoResponseError(self.port_name, motor_id, self.joint_of(motor_id), what, attempt, detail)

    def _drop_late_reply(self) -> None:
        """After a lost answer, wait as long again and empty the port. The SDK takes the first packet from the
        motor's ID as the answer, so a late reply to this attempt would be read as the next command's (a stale
        Model Number decoded as a Drive Mode, then written back to EEPROM)."""
        time.sleep((2.0 * self.port.latency_ms + 2.0) * self.port.timeout_scale / 1e3)
        self.port.clearPort()

    def _raise_status(self, motor_id: int, what: str, error: int) -> None:
        if error & ALERT_BIT:
            raise HardwareError(self.port_name, motor_id, self.joint_of(motor_id), self._hardware_status(motor_id))
        if error:
            raise MotorStatusError(self.port_name, motor_id, self.joint_of(motor_id), what, error)

    def _hardware_status(self, motor_id: int) -> int:
        with self._lock:
            address = self.model_of(motor_id).register("Hardware Error Status").address
            value, result, _ = self._ph.read1ByteTxRx(self.port, motor_id, address)
        return value if result == COMM_SUCCESS else 0

    def ping(self, motor_id: int) -> int:
        """The model number of one motor (Ping instruction)."""
        (number,) = self._transact(motor_id, "ping", lambda: self._ph.ping(self.port, motor_id))
        return number

    def model_of(self, motor_id: int) -> MotorModel:
        m = self._by_id.get(motor_id)
        if m is not None:
            return m.model
        number = self.ping(motor_id)
        try:
            return MODELS_BY_NUMBER[number]
        except KeyError:
            raise PortError(f"{self.port_name}: motor {motor_id} is a {model_name(number)}, which tandem "
                            "has no control table for") from None

    def read(self, motor_id: int, register: str) -> int:
        reg = self.model_of(motor_id).register(register)
        (data,) = self._transact(
            motor_id, f"read {register}",
            lambda: self._ph.readTxRx(self.port, motor_id, reg.address, reg.size),
        )
        return reg.decode(data)

    def write(self, motor_id: int, register: str, value: int) -> None:
        reg = self.model_of(motor_id).register(register)
        if reg.access != "RW":
            raise ValueError(f"{self.port_name}: {register} of motor {motor_id} is read-only")
        data = list(reg.encode(value))
        try:
            self._transact(motor_id, f"write {register}={value}",
                           lambda: self._ph.writeTxRx(self.port, motor_id, reg.address, reg.size, data))
        except MotorStatusError as exc:
            if reg.eeprom and (exc.error & ~ALERT_BIT) == StatusError.ACCESS:
                raise MotorStatusError(self.port_name, motor_id, self.joint_of(motor_id),
                                       f"write {register} (EEPROM: turn torque off first)", exc.error) from None
            raise

    def reboot(self, motor_id: int, *, timeout_s: float = 2.0) -> None:
        """Clears a hardware error; the motor comes back with torque off. Returns once it answers again."""
        self._transact(motor_id, "reboot", lambda: (*self._ph.reboot(self.port, motor_id),))
        deadline = time.monotonic() + timeout_s
        while True:  # the firmware restarts, silent, before it answers again
            time.sleep(0.02)
            with self._lock:
                _, result, _ = self._ph.ping(self.port, motor_id)
            if result == COMM_SUCCESS:
                return
            if time.monotonic() > deadline:
                raise NoResponseError(self.port_name, motor_id, self.joint_of(motor_id), "ping after reboot", 1,
                                      f"no answer within {timeout_s:.1f} s of the reboot")

    # -- configuration ------------------------------------------------------------------
    def set_torque(self, on: bool, ids: Iterable[int] | None = None) -> None:
        """Torque on or off, motor by motor: one failing motor never keeps the others from being told.

        Raises TorqueReleaseError naming every motor that did not take the setting.
        """
        failures = []
        for motor_id in self.ids if ids is None else ids:
            try:
                self.write(motor_id, "Torque Enable", int(on))
            except HardwareError as exc:
                # The write arrived (the status packet only carries the alert). Off is what the
                # firmware's shutdown already did; on is refused until a reboot.
                if on or self._torque_register(motor_id) != 0:
                    failures.append((motor_id, self.joint_of(motor_id), str(exc)))
            except (DynamixelError, OSError) as exc:
                failures.append((motor_id, self.joint_of(motor_id), str(exc)))
        if failures:
            raise TorqueReleaseError(self.port_name, failures, command="torque on" if on else "torque off")

    def _torque_register(self, motor_id: int) -> int | None:
        """Torque Enable read past an alert bit (None when the motor does not answer)."""
        with self._lock:
            address = self.model_of(motor_id).register("Torque Enable").address
            value, result, _ = self._ph.read1ByteTxRx(self.port, motor_id, address)
        return value if result == COMM_SUCCESS else None

    def write_if_different(self, motor_id: int, register: str, value: int) -> bool:
        """Write `value` only where the motor holds something else (EEPROM wears); returns whether it wrote.
        EEPROM registers need torque off: see torque_disabled()."""
        if self.read(motor_id, register) == value:
            return False
        self.write(motor_id, register, value)
        return True

    @contextmanager
    def torque_disabled(self, ids: Iterable[int] | None = None) -> Iterator[None]:
        """Torque off while motors are configured; those that had it on hold where they are and get it back."""
        ids = list(self.ids if ids is None else ids)
        was_on = [motor_id for motor_id in ids if self.read(motor_id, "Torque Enable")]
        self.set_torque(False, was_on)
        try:
            yield
        finally:
            if was_on:
                failures = self.hold_each(was_on)
                if failures:
                    raise TorqueReleaseError(self.port_name, failures, turning_on=True)
                self.set_torque(True, was_on)

    def hold_each(self, ids: Iterable[int]) -> list[tuple[int, str | None, str]]:
        """Goal = Present Position, one motor at a time, for when the group read or write has failed.

        Returns (motor, joint, why) for each motor that could not be told to hold.
        """
        failures = []
        for motor_id in ids:
            try:
                self.write(motor_id, "Goal Position", self.read(motor_id, "Present Position"))
            except HardwareError:
                continue  # its firmware has already turned its torque off
            except (DynamixelError, OSError) as exc:
                failures.append((motor_id, self.joint_of(motor_id), str(exc)))
        return failures

    def configure(
        self,
        motor_id: int,
        *,
        operating_mode: int | None = None,
        reverse: bool | None = None,
        homing_offset: int | None = None,
        current_limit: int | None = None,
        secondary_id: int | None = None,
        position_limits: tuple[int, int] | None = None,
        profile_velocity: int | None = None,
        profile_acceleration: int | None = None,
    ) -> None:
        """Write the given settings to one motor (torque must be off for all but the profiles).

        Return Delay Time is always set to 0: the default 500 us per motor would
        cost 4.5 ms per 9-motor sync read.
        """
        self.write(motor_id, "Return Delay Time", 0)
        if operating_mode is not None:
            self.write(motor_id, "Operating Mode", operating_mode)
        if reverse is not None:
            mode = self.read(motor_id, "Drive Mode")
            self.write(motor_id, "Drive Mode", (mode | 1) if reverse else (mode & ~1))
        if homing_offset is not None:
            self.write(motor_id, "Homing Offset", homing_offset)
        if current_limit is not None:
            self.write(motor_id, "Current Limit", current_limit)
        if secondary_id is not None:
            self.write(motor_id, "Secondary ID", secondary_id)
        if position_limits is not None:
            self.write(motor_id, "Min Position Limit", position_limits[0])
            self.write(motor_id, "Max Position Limit", position_limits[1])
        if profile_velocity is not None:
            self.write(motor_id, "Profile Velocity", profile_velocity)
        if profile_acceleration is not None:
            self.write(motor_id, "Profile Acceleration", profile_acceleration)

    # -- the per-cycle transactions -------------------------------------------------------
    def read_state(self, deadline_s: float | None = None) -> BusState:
        """Position, velocity and current/load of every motor in one sync read, retried until the deadline."""
        start = time.perf_counter()
        deadline = start + (self.read_deadline_s if deadline_s is None else deadline_s)
        attempts = 0
        while True:
            attempts += 1
            with self._lock:
                failed_id, detail, raw = self._sync_read_once()
            if raw is not None:
                state = np.frombuffer(raw, dtype=_STATE_DTYPE)
                return BusState(state["position"].astype(np.int32), state["velocity"].astype(np.int32),
                                state["effort"].astype(np.int32), time.perf_counter(), attempts)
            self.failed_reads += 1
            if time.perf_counter() >= deadline:
                break
        culprit = failed_id if failed_id is not None else self._first_silent_motor()
        raise NoResponseError(self.port_name, culprit, self.joint_of(culprit) if culprit is not None else None,
                              "sync read of position/velocity/current", attempts, detail)

    def _sync_read_once(self) -> tuple[int | None, str, bytes | None]:
        """One sync read: (None, "", data) or (motor that failed or None, what happened, None)."""
        ph, port, n = self._ph, self.port, len(self.ids)
        result = ph.syncReadTx(port, STATE_ADDRESS, STATE_LENGTH, self.ids, n, bool(self.fast_sync_read))
        if result != COMM_SUCCESS:
            return None, ph.getTxRxResult(result), None
        if self.fast_sync_read:
            data, result, _ = ph.fastSyncReadRx(port, BROADCAST_ID, (STATE_LENGTH + 4) * n)
            if result != COMM_SUCCESS:
                self._let_wire_settle(n)
                return None, ph.getTxRxResult(result), None
            if len(data) < (STATE_LENGTH + 4) * n:  # a short answer that still passed the SDK: retry it
                self._let_wire_settle(n)
                return None, f"Fast Sync Read answer short ({len(data)} of {(STATE_LENGTH + 4) * n} bytes)", None
            out = bytearray()
            for i, motor_id in enumerate(self.ids):
                at = i * (STATE_LENGTH + 4)
                error, got_id = data[at], data[at + 1]
                if got_id != motor_id:
                    return motor_id, f"Fast Sync Read answer out of order (ID {got_id})", None
                self._raise_status(motor_id, "sync read", error)
                out += bytes(data[at + 2 : at + 2 + STATE_LENGTH])
            return None, "", bytes(out)
        out = bytearray()
        for motor_id in self.ids:
            data, result, error = ph.readRx(port, motor_id, STATE_LENGTH)
            if result != COMM_SUCCESS:
                self._let_wire_settle(n)
                return motor_id, ph.getTxRxResult(result), None
            self._raise_status(motor_id, "sync read", error)
            out += bytes(data)
        return None, "", bytes(out)

    def _let_wire_settle(self, n: int) -> None:
        """After a bad packet, wait out the rest of the answer so it cannot be taken for the retry's."""
        time.sleep(n * (11 + STATE_LENGTH) * 10.0 / self.baud)
        self.port.clearPort()

    def _first_silent_motor(self) -> int | None:
        # retried pings: one lost answer must not blame a healthy motor
        for m in self.motors:
            try:
                self.ping(m.motor_id)
            except NoResponseError:
                return m.motor_id
        return None

    def _fast_sync_read_works(self) -> bool:
        self.fast_sync_read = True
        try:
            with self._lock:
                _, _, raw = self._sync_read_once()
            return raw is not None
        except (HardwareError, MotorStatusError):
            return True  # it answered; the error is the motor's, reported on the first real read

    def write_goal_positions(self, ids: Sequence[int], ticks: Sequence[int] | np.ndarray) -> None:
        """One sync write of Goal Position to `ids` (no status packets come back)."""
        if len(ids) != len(ticks):
            raise ValueError(f"{self.port_name}: {len(ids)} motor IDs but {len(ticks)} goal positions")
        packed = np.empty(len(ids), dtype=_GOAL_DTYPE)
        packed["id"] = ids
        packed["goal"] = ticks
        param = packed.tobytes()
        with self._lock:
            result = self._ph.syncWriteTxOnly(self.port, GOAL_POSITION, 4, param, len(param))
        if result != COMM_SUCCESS:
            raise PortError(f"{self.port_name}: sync write of goal positions failed: "
                            f"{self._ph.getTxRxResult(result)}")

    # -- discovery ----------------------------------------------------------------------
    def broadcast_ping(self) -> dict[int, tuple[int, int]]:
        """Every motor that answers: ID -> (model number, firmware version)."""
        with self._lock:
            found, result = self._ph.broadcastPing(self.port)
        if result != COMM_SUCCESS and not found:
            return {}
        return {motor_id: (info[0], info[1]) for motor_id, info in sorted(found.items())}


def scan_port(port: str, bauds: Iterable[int] = BAUD_RATES) -> dict[int, dict[int, tuple[int, int]]]:
    """Broadcast-ping `port` at each baud rate: baud -> {ID: (model number, firmware)}."""
    found = {}
    for baud in bauds:
        with DynamixelBus(port, [], baud=baud) as bus:
            motors = bus.broadcast_ping()
        if motors:
            found[baud] = motors
    return found
