"""Opening a U2D2 (or any serial adapter) for dynamixel-sdk, with errors a person can act on."""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import select

import serial
from dynamixel_sdk import PortHandler

from robot.dynamixel.errors import PortError

log = logging.getLogger(__name__)

UNKNOWN_ADAPTER_LATENCY_MS = 16.0  # the FTDI default, when sysfs does not say
VIRTUAL_LATENCY_MS = 1.0  # a virtual bus is timed like a U2D2 set up as docs/hardware.md says
PERMISSION_HINT = ("permission denied. Add yourself to the dialout group "
                   "(sudo usermod -aG dialout $USER), then log out and back in.")
UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'


class TandemPortHandler(PortHandler):
    """dynamixel-sdk's PortHandler, changed in three ways:

    - packet timeouts use the adapter's real latency timer instead of a fixed 16 ms,
      so a lost packet costs ~2 ms, not ~34 ms, of a 20 ms control cycle;
    - a read with nothing to read waits in select() instead of spinning, so four
      bus threads do not fight over two cores;
    - the port is locked, so a second program gets a clear "busy" instead of
      both reading each other's packets.
    """

    def __init__(self, port_name: str, latency_ms: float) -> None:
        super().__init__(port_name)
        self.latency_ms = latency_ms
        self.timeout_scale = 1.0  # set-up transactions back off on retries; the 50 Hz path keeps 1

    def setupPort(self, cflag_baud: int) -> bool:  # noqa: N802 (SDK name)
        super().setupPort(cflag_baud)
        try:
            fcntl.flock(self.ser.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.ser.close()
            self.is_open = False
            raise PortError(f"{self.port_name}: port busy: {_holders(self.port_name)}. "
                            "Close the other program (another tandem command, Dynamixel Wizard, "
                            "a serial monitor) and try again.") from None
        return True

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = (self.tx_time_per_byte * packet_length + 2.0 * self.latency_ms + 2.0) * self.timeout_scale

    def readPort(self, length: int) -> bytes:  # noqa: N802 (SDK name)
        data = self.ser.read(length)
        if data:
            return data
        remaining_ms = self.packet_timeout - self.getTimeSinceStart()
        if remaining_ms > 0:
            select.select([self.ser.fileno()], [], [], min(remaining_ms, 5.0) / 1000.0)
        return self.ser.read(length)


def serial_ports() -> list[str]:
    """Serial ports that could be a U2D2, stable by-id names first."""
    return sorted(glob.glob("/dev/serial/by-id/*")) + sorted(
        glob.glob("/dev/ttyUSB*") + glob.glob("/dev/ttyACM*")
    )


def _holders(port: str) -> str:
    """Which processes have `port` open, for the 'busy' message."""
    target = os.path.realpath(port)
    found = []
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        pid = fd_dir.split("/")[2]
        if int(pid) == os.getpid():
            continue
        try:
            if any(os.path.realpath(os.path.join(fd_dir, fd)) == target for fd in os.listdir(fd_dir)):
                with open(f"/proc/{pid}/comm") as comm:
                    found.append(f"pid {pid} ({comm.read().strip()})")
        except OSError:
            continue
    return "held by " + ", ".join(found) if found else "another program has it locked"


def latency_timer_ms(port: str, sysfs: str = "/sys") -> int | None:
    """The FTDI latency timer of `port` from sysfs, or None where sysfs does not show one."""
    name = os.path.basename(os.path.realpath(port))
    try:
        with open(f"{sysfs}/bus/usb-serial/devices/{name}/latency_timer") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _is_pseudo_terminal(port: str) -> bool:
    return os.path.realpath(port).startswith("/dev/pts/")


def open_port(port: str, baud: int, latency_ms: float | None = None) -> TandemPortHandler:
    """Open `port` at `baud` for dynamixel-sdk, or raise PortError saying what to do.

    `latency_ms` replaces the adapter's latency in packet timeouts: a rig whose buses answer late but
    surely (virtual buses on a loaded machine) waits for an answer instead of retrying into a backlog.
    """
    if not os.path.exists(port):
        candidates = serial_ports()
        hint = f"serial ports present: {', '.join(candidates)}" if candidates else \
            "no USB serial ports are present: is the U2D2 plugged in and powered?"
        raise PortError(f"{port}: no such port ({hint})")
    if not os.access(port, os.R_OK | os.W_OK):
        raise PortError(f"{port}: {PERMISSION_HINT}")
    latency = latency_timer_ms(port)
    if latency is not None and latency > 1:
        name = os.path.basename(os.path.realpath(port))
        log.warning(
            "%s: FTDI latency timer is %d ms; every bus transaction waits for it. Set it to 1 ms now with "
            "'echo 1 | sudo tee /sys/bus/usb-serial/devices/%s/latency_timer', and for good with the "
            "udev rule %s (see docs/hardware.md).", port, latency, name, UDEV_RULE,
        )
    if latency_ms is not None:
        latency = latency_ms
    elif latency is None:
        latency = VIRTUAL_LATENCY_MS if _is_pseudo_terminal(port) else UNKNOWN_ADAPTER_LATENCY_MS
    handler = TandemPortHandler(port, float(latency))
    handler.baudrate = baud
    try:
        if not handler.setBaudRate(baud):
            raise PortError(f"{port}: {baud} baud is not a rate the serial driver can set")
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        if code == errno.EACCES:
            raise PortError(f"{port}: {PERMISSION_HINT}") from exc
        if code == errno.EBUSY:
            raise PortError(f"{port}: port busy: {_holders(port)}") from exc
        raise PortError(f"{port}: could not open: {exc}") from exc
    return handler
