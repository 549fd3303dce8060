"""A Dynamixel Protocol 2.0 bus on a pseudo-terminal.

The driver (and the unmodified dynamixel-sdk) opens `bus.port` like a U2D2 port.
A server thread parses instruction packets, lets each motor act on them, and
answers with status packets paced as they would take on the wire: 10 bits per
byte at the port's baud rate (read from the pty's termios, as set by the host),
plus each motor's Return Delay Time. A motor whose Baud Rate register differs
from the port's hears nothing, as on real hardware.

Faults for tests: drop the next N status packets, corrupt the next N CRCs, raise
hardware error bits, silence a motor, offset a motor's reading (a slipped horn).
"""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty
from collections.abc import Iterable

from robot.dynamixel.protocol import BROADCAST_ID, HEADER, Instruction, StatusError
from robot.sim.virtual_motor import VirtualMotor, WriteRejected
from robot.sim.wire import Packet, PacketParser, crc16, status_packet

FAST_SYNC_READ_MIN_FIRMWARE = 45

_TERMIOS_BAUDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (9600, 57600, 115200, 1000000, 2000000, 3000000, 4000000)
    if hasattr(termios, f"B{rate}")
}

_WRITE_LIKE = {  # what a shadow (Secondary ID) does along with its primary
    Instruction.WRITE, Instruction.REG_WRITE, Instruction.ACTION,
    Instruction.REBOOT, Instruction.FACTORY_RESET, Instruction.CLEAR,
}


def _u16(data: bytes, at: int) -> int:
    return data[at] | (data[at + 1] << 8)


class VirtualBus:
    """Motors on one emulated serial bus. Use as a context manager, or start()/stop()."""

    def __init__(self, motors: Iterable[VirtualMotor], *, name: str = "virtual") -> None:
        self.name = name
        self.motors: dict[int, VirtualMotor] = {}
        for m in motors:
            if m.motor_id in self.motors:
                raise ValueError(f"virtual bus {name}: two motors with ID {m.motor_id}")
            self.motors[m.motor_id] = m
        self._lock = threading.Lock()
        self._parser = PacketParser()
        self._drop = 0
        self._late: list[float] = []  # extra delays for the next status packets
        self._corrupt = 0
        self._wire_free_at = 0.0
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = ""
        self.packets_received = 0

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> VirtualBus:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the host configures it
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"virtual-bus-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> VirtualBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the world and the test's hand on it -------------------------------------------
    def get(self, motor_id: int, register: str) -> int:
        with self._lock:
            motor = self.motors[motor_id]
            motor.read(0, len(motor.memory))  # bring present values up to date
            return motor.get(register)

    def set_position(self, motor_id: int, ticks: int) -> None:
        with self._lock:
            self.motors[motor_id].set_position(ticks)

    def set_shaft(self, motor_id: int, raw_ticks: float) -> None:
        with self._lock:
            self.motors[motor_id].set_shaft(raw_ticks)

    def drive(self, motions: dict[int, tuple[float, float, float]]) -> None:
        """A world sets motors' shaft position, velocity and current, all at once: {motor_id: (raw, vel, cur)}."""
        with self._lock:
            for motor_id, motion in motions.items():
                self.motors[motor_id].drive(*motion)

    def goal_shafts(self) -> dict[int, float | None]:
        """Every motor's goal in its shaft frame (None: torque off), for the world to act on."""
        with self._lock:
            return {motor_id: m.goal_shaft() for motor_id, m in self.motors.items()}

    def hold_here(self) -> None:
        with self._lock:
            for m in self.motors.values():
                m.hold_here()

    def set_hardware_error(self, motor_id: int, bits: int) -> None:
        with self._lock:
            self.motors[motor_id].set_hardware_error(bits)

    def silence(self, motor_id: int, silent: bool = True) -> None:
        with self._lock:
            self.motors[motor_id].silent = silent

    def offset_position(self, motor_id: int, ticks: int) -> None:
        with self._lock:
            self.motors[motor_id].position_offset = ticks

    def drop_next(self, count: int) -> None:
        """The next `count` status packets are lost on the wire."""
        with self._lock:
            self._drop += count

    def delay_next(self, count: int, seconds: float) -> None:
        """The next `count` status packets arrive `seconds` late, as from a motor busy writing its EEPROM."""
        with self._lock:
            self._late += [seconds] * count

    def corrupt_next(self, count: int) -> None:
        """The next `count` status packets arrive with a wrong CRC."""
        with self._lock:
            self._corrupt += count

    # -- serving ----------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            with self._lock:  # read and handle as one, so settle() knows nothing read is left unhandled
                try:
                    data = os.read(self._master, 4096)
                except (BlockingIOError, OSError):
                    continue
                arrived = time.perf_counter()
                for packet in self._parser.feed(data):
                    self.packets_received += 1
                    self._handle(packet, arrived)

    def settle(self, quiet_s: float = 0.0003, timeout_s: float = 1.0) -> None:
        """Return once every byte the host wrote has been handled, for a world that steps in lockstep with it.

        Bytes written to a pty reach this side through a kernel work queue, so the port
        must stay empty for `quiet_s` twice running, not just once.
        """
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            with self._lock:
                pending = bool(select.select([self._master], [], [], 0)[0])
            quiet = 0 if pending else quiet + 1
            time.sleep(quiet_s if not pending else 0.0001)

    def _port_baud(self) -> int | None:
        speed = termios.tcgetattr(self._slave)[5]
        return _TERMIOS_BAUDS.get(speed)

    def _listening(self, baud: int | None) -> list[VirtualMotor]:
        return [m for m in self.motors.values() if m.answering and (baud is None or m.baud == baud)]

    def _handle(self, packet: Packet, arrived: float) -> None:
        baud = self._port_baud()
        byte_time = 10.0 / (baud or 1_000_000)
        wire_at = max(arrived, self._wire_free_at) + packet.wire_length * byte_time
        motors = {m.motor_id: m for m in self._listening(baud)}
        if packet.crc_ok:
            replies = self._dispatch(packet, motors)
        elif (target := motors.get(packet.motor_id)) is not None:
            replies = [(target, status_packet(target.motor_id, StatusError.CRC | target.error_byte))]
        else:
            replies = []
        self._wire_free_at = self._send(replies, wire_at, byte_time)

    def _send(self, replies: list[tuple[VirtualMotor, bytes]], at: float, byte_time: float) -> float:
        for motor, data in replies:
            at += motor.return_delay_s + (self._late.pop(0) if self._late else 0.0)
            at += len(data) * byte_time
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if self._drop > 0:
                self._drop -= 1
                continue
            if self._corrupt > 0:
                self._corrupt -= 1
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            try:
                os.write(self._master, data)
            except BlockingIOError:
                pass  # nobody is reading the port; the bytes are lost, as on a real wire
        return at

    # -- instructions -----------------------------------------------------------------
    def _dispatch(self, p: Packet, motors: dict[int, VirtualMotor]) -> list[tuple[VirtualMotor, bytes]]:
        inst, params = p.instruction, p.params
        if inst == Instruction.STATUS:
            return []  # another motor's answer: motors never act on a status packet
        if inst == Instruction.PING:
            targets = sorted(motors.values(), key=lambda m: m.motor_id) if p.motor_id == BROADCAST_ID \
                else [m for m in [motors.get(p.motor_id)] if m]
            return [(m, self._ping_reply(m)) for m in targets]
        if inst in (Instruction.SYNC_READ, Instruction.FAST_SYNC_READ):
            if len(params) < 5:
                return []
            address, length, ids = _u16(params, 0), _u16(params, 2), list(params[4:])
            readers = [motors[i] for i in ids if i in motors and motors[i].status_return_level >= 1]
            if inst == Instruction.SYNC_READ:
                return [(m, self._read_reply(m, address, length)) for m in readers]
            return self._fast_read([(i, address, length) for i in ids], motors)
        if inst in (Instruction.BULK_READ, Instruction.FAST_BULK_READ):
            reads = [(params[at], _u16(params, at + 1), _u16(params, at + 3)) for at in range(0, len(params) - 4, 5)]
            if inst == Instruction.FAST_BULK_READ:
                return self._fast_read(reads, motors)
            return [(m, self._read_reply(m, address, length)) for motor_id, address, length in reads
                    if (m := motors.get(motor_id)) and m.status_return_level >= 1]
        if inst == Instruction.SYNC_WRITE:
            if len(params) >= 4:
                address, length = _u16(params, 0), _u16(params, 2)
                for at in range(4, len(params) - length, length + 1):
                    self._write_quietly(motors, params[at], address, params[at + 1 : at + 1 + length])
            return []
        if inst == Instruction.BULK_WRITE:
            at = 0
            while at + 5 <= len(params):
                length = _u16(params, at + 3)
                self._write_quietly(motors, params[at], _u16(params, at + 1), params[at + 5 : at + 5 + length])
                at += 5 + length
            return []
        return self._unicast_or_broadcast(p, motors)

    def _unicast_or_broadcast(self, p: Packet, motors: dict[int, VirtualMotor]) -> list:
        """READ, WRITE, REG WRITE, ACTION, REBOOT, FACTORY RESET, CLEAR, BACKUP and unknown instructions."""
        if p.motor_id == BROADCAST_ID and p.instruction == Instruction.FACTORY_RESET:
            return []  # X-series firmware ignores a broadcast reset: it would leave every motor at ID 1
        if p.motor_id == BROADCAST_ID:
            for m in motors.values():
                self._execute(m, p)
            return []
        if p.instruction in _WRITE_LIKE:
            for m in motors.values():  # shadows: act on their primary's packets, never answer
                if m.secondary_id == p.motor_id and m.motor_id != p.motor_id:
                    self._execute(m, p)
        target = motors.get(p.motor_id)
        if target is None:
            return []
        error, data = self._execute(target, p)
        level = 1 if p.instruction == Instruction.READ else 2
        if target.status_return_level < level:  # as the write just left it
            return []
        # from the ID that was addressed, even where a factory reset has just changed it
        return [(target, status_packet(p.motor_id, error | target.error_byte, data))]

    def _execute(self, m: VirtualMotor, p: Packet) -> tuple[int, bytes]:
        """Run one instruction on one motor: (status error number, returned parameters)."""
        inst, params = p.instruction, p.params
        try:
            if inst == Instruction.READ:
                if len(params) != 4:
                    return StatusError.DATA_LENGTH, b""
                return StatusError.NONE, m.read(_u16(params, 0), _u16(params, 2))
            if inst in (Instruction.WRITE, Instruction.REG_WRITE):
                if len(params) < 3:
                    return StatusError.DATA_LENGTH, b""
                (m.write if inst == Instruction.WRITE else m.reg_write)(_u16(params, 0), params[2:])
            elif inst == Instruction.ACTION:
                if not m.action():
                    return StatusError.INSTRUCTION, b""
            elif inst == Instruction.REBOOT:
                m.reboot()
            elif inst == Instruction.FACTORY_RESET:
                if len(params) != 1:
                    return StatusError.DATA_LENGTH, b""
                m.factory_reset(params[0])
            elif inst == Instruction.CLEAR:
                m.clear(params)
            elif inst == Instruction.BACKUP:
                m.backup_table(params)
            else:
                return StatusError.INSTRUCTION, b""
        except WriteRejected as rejected:
            return rejected.error, b""
        return StatusError.NONE, b""

    def _write_quietly(self, motors: dict[int, VirtualMotor], motor_id: int, address: int, data: bytes) -> None:
        for m in motors.values():
            if m.motor_id == motor_id or m.secondary_id == motor_id:
                try:
                    m.write(address, data)
                except WriteRejected:
                    pass  # sync/bulk writes have no status packet to carry the error

    @staticmethod
    def _ping_reply(m: VirtualMotor) -> bytes:
        number = m.model.model_number
        return status_packet(m.motor_id, m.error_byte, bytes([number & 0xFF, number >> 8, m.firmware]))

    @staticmethod
    def _read_reply(m: VirtualMotor, address: int, length: int) -> bytes:
        try:
            return status_packet(m.motor_id, m.error_byte, m.read(address, length))
        except WriteRejected as rejected:
            return status_packet(m.motor_id, rejected.error | m.error_byte)

    @staticmethod
    def _fast_read(
        reads: list[tuple[int, int, int]], motors: dict[int, VirtualMotor]
    ) -> list[tuple[VirtualMotor, bytes]]:
        """Fast Sync/Bulk Read, (ID, address, length) each: one status packet from all motors.

        Each motor appends [ERR, ID, data, CRC] after the one before, the last CRC
        closing the packet; a motor that is missing, silent, or too old for the fast
        reads breaks the chain there, so the host gets a truncated packet.
        """
        size = 1 + sum(length + 4 for _, _, length in reads)
        packet = bytearray(HEADER + bytes([BROADCAST_ID, size & 0xFF, size >> 8, Instruction.STATUS]))
        first = None
        for motor_id, address, length in reads:
            m = motors.get(motor_id)
            if m is None or m.firmware < FAST_SYNC_READ_MIN_FIRMWARE:
                break
            first = first or m
            try:
                error, data = m.error_byte, m.read(address, length)
            except WriteRejected as rejected:
                error, data = rejected.error | m.error_byte, bytes(length)
            packet += bytes([error, motor_id]) + data
            crc = crc16(packet)
            packet += bytes([crc & 0xFF, crc >> 8])
        return [(first, bytes(packet))] if first else []

