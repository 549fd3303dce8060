"""Protocol 2.0 framing as a motor sees it: CRC-16, byte stuffing, packet parsing.

Written from the protocol specification, independently of dynamixel-sdk, so that
tests of the driver against the virtual bus check the SDK's bytes against a
second implementation rather than against themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from robot.dynamixel.protocol import HEADER, Instruction


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray) -> int:
    """CRC-16 with polynomial 0x8005, initial value 0, no reflection (Protocol 2.0)."""
    crc = 0
    for b in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert 0xFD after every FF FF FD in the instruction/parameter field."""
    out = bytearray()
    for b in body:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Remove the 0xFD that follows each FF FF FD in a received field."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if body[i] == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            if i + 1 < len(body) and body[i + 1] == 0xFD:
                i += 1
        i += 1
    return bytes(out)


def frame(motor_id: int, body: bytes, *, stuffed: bool = True) -> bytes:
    """Header + ID + length + (stuffed) body + CRC. `body` starts with the instruction byte."""
    payload = stuff(body) if stuffed else body
    length = len(payload) + 2
    packet = HEADER + bytes([motor_id, length & 0xFF, length >> 8]) + payload
    crc = crc16(packet)
    return packet + bytes([crc & 0xFF, crc >> 8])


def status_packet(motor_id: int, error: int, params: bytes = b"") -> bytes:
    return frame(motor_id, bytes([Instruction.STATUS, error]) + params)


@dataclass(frozen=True)
class Packet:
    motor_id: int
    instruction: int
    params: bytes
    wire_length: int  # bytes on the wire, for timing
    crc_ok: bool


class PacketParser:
    """Accumulates bytes from the host and yields complete instruction packets."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        packets = []
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                # keep a possible partial header at the end
                del self._buf[: max(0, len(self._buf) - 3)]
                return packets
            del self._buf[:start]
            if len(self._buf) < 7:
                return packets
            length = self._buf[5] | (self._buf[6] << 8)
            if length < 3:
                del self._buf[:4]  # not a packet: resynchronise past this header
                continue
            total = 7 + length
            if len(self._buf) < total:
                return packets
            raw = bytes(self._buf[:total])
            del self._buf[:total]
            crc_ok = crc16(raw[:-2]) == (raw[-2] | (raw[-1] << 8))
            body = unstuff(raw[7:-2])
            packets.append(Packet(raw[4], body[0], body[1:], total, crc_ok))
