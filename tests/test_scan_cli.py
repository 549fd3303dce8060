"""tandem-scan against the simulated rig and against one port."""

import pytest

from robot.cli import scan_main


def test_scan_sim_rig_lists_every_motor(capsys):
    assert scan_main(["--rig", "sim"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok\n") == 36  # 4 arms x 9 motors
    for arm in ("leader_left", "leader_right", "follower_left", "follower_right"):
        assert arm in out
    assert "XM540-W270" in out and "XL430-W250" in out and "shoulder_shadow" in out


def test_scan_one_port_finds_the_baud_rate(vbus, capsys):
    assert scan_main(["--port", vbus.port, "--baud", "all"]) == 0
    out = capsys.readouterr().out
    assert f"{vbus.port} at 1000000 baud: 3 motor(s)" in out
    assert "XM430-W350" in out


def test_scan_reports_a_missing_port(capsys):
    assert scan_main(["--port", "/dev/ttyNOPE", "--baud", "1000000"]) == 1  # a runtime error: nothing plugged in
    assert "no such port" in capsys.readouterr().err


def test_unknown_rig_is_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        scan_main(["--rig", "nowhere"])
    assert exit.value.code == 2
    assert "nowhere: no such rig file, and not a preset" in capsys.readouterr().err


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        scan_main(["--help"])
    assert "virtual buses" in capsys.readouterr().out
