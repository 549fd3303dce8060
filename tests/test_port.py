"""Opening ports: every failure a person meets says what to do."""

import os
import shutil
import subprocess
import sys

import pytest

from robot.dynamixel.errors import PortError
from robot.dynamixel.port import latency_timer_ms, open_port


def test_missing_port():
    with pytest.raises(PortError, match="/dev/ttyNOPE: no such port"):
        open_port("/dev/ttyNOPE", 1_000_000)


def test_port_busy(vbus):
    first = open_port(vbus.port, 1_000_000)
    try:
        with pytest.raises(PortError, match="port busy"):
            open_port(vbus.port, 1_000_000)
    finally:
        first.closePort()
    open_port(vbus.port, 1_000_000).closePort()  # free again once closed


def test_port_busy_names_the_other_process(vbus):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from robot.dynamixel.port import open_port; h = open_port(sys.argv[1], 1000000); "
         "print('open', flush=True); sys.stdin.read()", vbus.port],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(PortError, match=rf"held by pid {holder.pid}"):
            open_port(vbus.port, 1_000_000)
    finally:
        holder.communicate("")


def test_permission_denied_says_dialout(vbus):
    """Without the right to open the port (root is made to lose its override of file modes)."""
    os.chmod(vbus.port, 0o000)
    code = ("from robot.dynamixel.port import open_port\n"
            f"try:\n    open_port({vbus.port!r}, 1000000)\nexcept Exception as e:\n    print(e)")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: root may open any port")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert f"{vbus.port}: permission denied" in out and "dialout" in out


def test_latency_timer_from_sysfs(tmp_path):
    device = tmp_path / "bus/usb-serial/devices/ttyUSB7"
    device.mkdir(parents=True)
    (device / "latency_timer").write_text("16\n")
    assert latency_timer_ms("/dev/ttyUSB7", sysfs=str(tmp_path)) == 16
    assert latency_timer_ms("/dev/ttyUSB8", sysfs=str(tmp_path)) is None
