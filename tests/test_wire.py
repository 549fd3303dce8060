"""The virtual bus's framing against the protocol and against dynamixel-sdk's own."""

import random

from dynamixel_sdk import PacketHandler

from robot.dynamixel.protocol import Instruction
from robot.sim.wire import PacketParser, crc16, frame, stuff, unstuff


def test_crc_matches_the_protocol_example_ping():
    # Ping ID 1, from the Protocol 2.0 specification: FF FF FD 00 01 03 00 01 19 4E
    assert frame(1, bytes([Instruction.PING])) == bytes.fromhex("FFFFFD0001030001194E")


def test_crc_agrees_with_the_sdk_on_random_data():
    sdk = PacketHandler(2.0)
    rng = random.Random(0)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        assert crc16(data) == sdk.updateCRC(0, list(data), len(data))


def test_stuffing_inserts_fd_after_ff_ff_fd_and_round_trips():
    body = bytes([0x03, 0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x00])
    assert stuff(body) == bytes([0x03, 0x74, 0x00, 0xFF, 0xFF, 0xFD, 0xFD, 0x00])
    assert unstuff(stuff(body)) == body


def test_stuffed_frame_is_what_the_sdk_sends():
    sdk = PacketHandler(2.0)
    body = [Instruction.WRITE, 0x74, 0x00, 0xFF, 0xFF, 0xFD, 0x00]
    packet = [0] * 7 + body + [0, 0]
    packet[4], packet[5], packet[6] = 1, len(body) + 2, 0
    stuffed = sdk.addStuffing(packet)
    length = stuffed[5] | (stuffed[6] << 8)
    stuffed = stuffed[: 7 + length]
    stuffed[0:4] = [0xFF, 0xFF, 0xFD, 0x00]
    crc = sdk.updateCRC(0, stuffed, len(stuffed) - 2)
    stuffed[-2:] = [crc & 0xFF, crc >> 8]
    assert frame(1, bytes(body)) == bytes(stuffed)


def test_parser_splits_packets_and_flags_bad_crc():
    good = frame(1, bytes([Instruction.PING]))
    bad = bytearray(frame(2, bytes([Instruction.PING])))
    bad[-1] ^= 0xFF
    parser = PacketParser()
    packets = parser.feed(b"\x00\x12" + good[:5]) + parser.feed(good[5:] + bytes(bad))
    assert [(p.motor_id, p.crc_ok) for p in packets] == [(1, True), (2, False)]
