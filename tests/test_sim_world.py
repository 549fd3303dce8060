"""The simulated rig end to end: MuJoCo world process, virtual buses bound to it, cameras, SimClock, expert."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from calibration.connection import connect
from robot.arm import RAD_PER_TICK
from robot.dynamixel.control_table import CENTER_TICK
from robot.loop import ControlLoop
from robot.rig import load_rig
from robot.sim.sim_clock import SimClock
from robot.sim.world_process import SimWorldProcess
from teleop.controller import TeleopController
from teleop.sim_episodes import run_episode


@pytest.fixture(scope="module")
def sim_rig():
    return load_rig("sim")


def teleop_loop(world, connected, start):
    return ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(),
                       SimClock(world, start), rate_hz=50)


def test_follower_tracks_leader_through_the_world(sim_rig):
    world = SimWorldProcess(sim_rig, "transfer_cube", cameras=False, operator="off")
    with world as live, connect(live, **world.bus_options) as connected:
        start = world.reset(3)
        waist = start.joints["right"][0]
        # a hand turns the right leader's waist by 0.3 rad (motor 1, mounted forward, 0 rad at tick 2048)
        world.call("leader_right", "set_shaft", 1, CENTER_TICK + (waist + 0.3) / RAD_PER_TICK)
        loop = teleop_loop(world, connected, start.time)
        try:
            loop.run(lambda step: False, max_steps=50)  # 1 s of simulated time
        finally:
            loop.close()
        status = world.status()
        assert status.time == pytest.approx(start.time + 49 * 0.02, abs=1e-6)
        assert status.joints["right"][0] == pytest.approx(waist + 0.3, abs=0.02)  # the simulated joint moved
        read = connected.arms["follower_right"].read().position[0]  # and the driver reads it back
        assert read == pytest.approx(status.joints["right"][0], abs=2 * RAD_PER_TICK)
        assert status.joints["left"][0] == pytest.approx(start.joints["left"][0], abs=0.01)  # the other arm stayed


def test_cameras_deliver_frames_of_the_configured_size_with_increasing_times(sim_rig):
    world = SimWorldProcess(sim_rig, "transfer_cube", image_size=(60, 80), operator="off")
    with world:
        clock = SimClock(world, world.reset(0).time)
        seen = {name: [] for name in world.cameras}
        assert sorted(seen) == ["cam_high", "cam_left_wrist", "cam_low", "cam_right_wrist"]
        for k in range(1, 4):
            clock.sleep_until(k * 0.02)
            for name, cam in world.cameras.items():
                seen[name].append(cam.latest())
        for name, frames in seen.items():
            assert all(f.image.shape == (60, 80, 3) and f.image.dtype == np.uint8 for f in frames), name
            times = [f.t for f in frames]
            assert times == sorted(times) and len(set(times)) == 3, (name, times)
            assert times[-1] == pytest.approx(clock.now(), abs=1e-9)
            assert [f.index for f in frames] == sorted({f.index for f in frames})
            assert frames[-1].image.std() > 5, f"{name} rendered a blank image"


def test_reset_by_seed_is_reproducible(sim_rig):
    world = SimWorldProcess(sim_rig, "transfer_cube", cameras=False)
    with world as live, connect(live, **world.bus_options) as connected:
        runs = []
        for seed in (7, 7, 8):
            run_episode(world, connected, seed, 60)
            status = world.status()
            runs.append((status.objects["box"], status.joints["right"], status.max_reward))
    assert runs[0] == runs[1]  # same seed: same object placement and the same motion, to the bit
    assert runs[0][0] != runs[2][0]


def test_expert_through_the_real_driver_transfers_the_cube(sim_rig, capsys):
    from teleop.cli import main

    assert main(["--rig", "sim", "--task", "transfer_cube", "--episodes", "1", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "episode 1/1 seed 4: max reward 4/4, success" in out
    assert "transfer_cube: 1/1 episodes succeeded" in out


def test_task_needs_the_sim_rig(capsys):
    from teleop.cli import main

    assert main(["--rig", "aloha", "--task", "insertion"]) == 2
    assert "--task needs the simulated rig" in capsys.readouterr().err


def test_world_process_leaves_nothing_behind(sim_rig):
    world = SimWorldProcess(sim_rig, "insertion", image_size=(24, 32))
    shm_names = [slot.name for slot in world._slots.values()]
    with world as live:
        pid = world._child.process.pid
        ports = [a.port for a in live.arms]
        assert all(Path(p).exists() for p in ports)
        assert all(Path("/dev/shm", n).exists() for n in shm_names)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not any(Path(p).exists() for p in ports)  # the ptys went with the process
    assert not any(Path("/dev/shm", n).exists() for n in shm_names)


def test_gated_operator_takes_the_leaders_when_its_rule_fires(sim_rig):
    world = SimWorldProcess(sim_rig, "transfer_cube", cameras=False, operator="gated")
    with world as live, connect(live, **world.bus_options) as connected:
        world.set_gate("stalled:20")  # no progress for 20 steps -> pedal down
        run_episode(world, connected, 2, 300)
        status = world.status()
    assert status.presses >= 1
    assert status.max_reward == 4  # the takeover finished the task the idle "policy" never started
