"""Recording while the 50 Hz loop runs: 4 arms on virtual buses, 4 synthetic 480x640 cameras, raw and JPEG.

For each mode (raw frames, JPEG rows) the real teleop loop (RealClock, 4 virtual
buses in their own process, the real driver) runs for --seconds with the
EpisodeRecorder as an observer and the EpisodeWriter streaming to --dir.
Printed: steps dropped by the writer, its queue high-water mark, MB/s written,
the loop's period error p50/p99/max and overruns while recording, the time
from stop to the file renamed into place, and the CPU time the hypervisor took
from this machine during the run ("steal" in /proc/stat: on a busy host it
stalls every process at once for tens of ms, and the loop overruns whatever
the writer does). The same loop without recording is the baseline in the same
run. "cpu %" is this process's CPU time over the run (all its threads, the bus
emulator's process not included), in percent of one core.

The rows with "+ display" add the live view (robot/display.py, as --display
FILE.rrd): every joint, the period error and the four cameras (JPEG at 240
rows, 10 a second) into a .rrd file from its own thread; compare their
overruns and period error p99 with the row without it. Below each, the view's
own figures: steps shown and dropped, camera frames, the file's size.

--pin emulator puts the bus emulator's process alone on CPU 1 and the loop's
process (its main and bus threads, the writer thread and its JPEG threads) on
CPU 0, as on a rig whose buses are not on the CPU at all. --pin
emulator+writer moves the writer's threads to CPU 1 as well. Other programs on
the machine are not moved.

A run whose bus read fails outright (the emulator starved past the read
deadline) is printed as failed and the next one goes on. --repeat runs the
whole sequence again: on a shared machine the spread between repeats is as
large as the differences between modes.

The synthetic cameras (robot/camera_synthetic.py, the rig file's `type:
synthetic`) serve pre-drawn frames with texture and noise (JPEG sizes like a
real scene's), a new one at 60 fps as ALOHA's cameras deliver, each through its
own reader thread as a real camera's frames come.

    python3 bench/record.py [--seconds 60] [--dir /tmp] [--pin emulator|emulator+writer] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from calibration.connection import connect  # noqa: E402
from recording.layout import StateLayout  # noqa: E402
from recording.recorder import EpisodeRecorder  # noqa: E402
from recording.writer import EpisodeWriter  # noqa: E402
from robot.cameras import open_cameras  # noqa: E402
from robot.clock import RealClock  # noqa: E402
from robot.display import live_view  # noqa: E402
from robot.dynamixel.errors import NoResponseError  # noqa: E402
from robot.loop import ControlLoop  # noqa: E402
from robot.rig import CameraConfig, load_rig  # noqa: E402
from robot.sim.rig_process import VirtualRigProcess  # noqa: E402
from teleop.controller import TeleopController  # noqa: E402

CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
SIZE = (480, 640)
CAMERA_CONFIGS = tuple(CameraConfig(name, "bench", SIZE[1], SIZE[0], fps=60, type="synthetic") for name in CAMERAS)
LOOP_CPUS, EMULATOR_CPUS = {0}, {1}  # with --pin


@contextlib.contextmanager
def cpus(which: set[int] | None):
    """Run the calling thread on `which` meanwhile: the threads and processes it starts keep that affinity."""
    if which is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, which)  # 0 = the calling thread on Linux
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def stolen_s() -> float | None:
    """CPU time the hypervisor has taken so far, all CPUs (Linux /proc/stat 'steal'); None where not known."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run(connected, seconds: float, directory: Path | None, compress: bool,
        writer_cpus: set[int] | None = None, display: Path | None = None) -> dict:
    cameras = open_cameras(CAMERA_CONFIGS)
    layout = StateLayout.from_connected(connected)
    clock = RealClock()
    loop = ControlLoop(connected.arms, TeleopController(connected.joint_maps()), connected.limits(), clock,
                       rate_hz=connected.rig.control_hz)
    writer = recorder = None
    if directory is not None:
        path = directory / f"episode_{'jpeg' if compress else 'raw'}.hdf5"
        path.unlink(missing_ok=True)
        with cpus(writer_cpus):  # the writer thread starts there, and the JPEG threads it starts
            writer = EpisodeWriter(path, dict.fromkeys(CAMERAS, SIZE), compress=compress)
        recorder = EpisodeRecorder(layout, cameras, writer)
    try:
        with live_view(None if display is None else str(display), connected, cameras, prog="bench",
                       say=lambda _: None) as view:
            loop.approach(3.0, 3.0)
            loop.reset_stats()
            loop.observers += [o for o in (recorder, view) if o is not None]
            end = clock.now() + seconds
            started, steal_before, cpu_before = time.perf_counter(), stolen_s(), time.process_time()
            loop.run(lambda step: step.t >= end)
            recorded_s, steal_after = time.perf_counter() - started, stolen_s()
            cpu = (time.process_time() - cpu_before) / recorded_s * 100
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    finally:
        loop.close()
        for camera in cameras.values():
            camera.close()
    steal = None if steal_before is None or steal_after is None else (steal_after - steal_before) * 1e3
    result = {"summary": loop.summary(), "steal_ms": steal, "cpu": cpu}
    if view is not None:
        result["display"] = (f"{view.shown} of {view.steps} steps shown, {view.dropped} dropped, {view.frames} "
                             f"camera frames, {display.stat().st_size / 1e6:.1f} MB .rrd; control thread "
                             f"{view.copy_s / max(view.steps, 1) * 1e6:.0f} us per step, display thread "
                             f"{view.thread_cpu_s / recorded_s * 100:.0f}% of a core" +
                             (f"; stopped: {view.error}" if view.error else ""))
        display.unlink()
    if writer is not None:
        summary = writer.close()
        result.update(dropped=summary.dropped, high_water=summary.queue_high_water, steps=summary.steps,
                      mb_s=summary.bytes / 1e6 / recorded_s, mb=summary.bytes / 1e6, close_s=summary.close_s)
        summary.path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--dir", default=None, help="where the episode files go (default: a temporary folder)")
    parser.add_argument("--pin", choices=("emulator", "emulator+writer"), default=None,
                        help="the bus emulator (and with it the writer's threads) on CPU 1, the loop on CPU 0")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole sequence this many times (default 1)")
    args = parser.parse_args()
    if args.pin and not {*LOOP_CPUS, *EMULATOR_CPUS} <= os.sched_getaffinity(0):
        parser.error(f"--pin needs CPUs {sorted({*LOOP_CPUS, *EMULATOR_CPUS})}; this process may use "
                     f"{sorted(os.sched_getaffinity(0))}")
    loop_cpus, emulator_cpus = (LOOP_CPUS, EMULATOR_CPUS) if args.pin else (None, None)
    writer_cpus = emulator_cpus if args.pin == "emulator+writer" else loop_cpus
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, contextlib.ExitStack() as stack:
        rig = replace(load_rig("sim"), calibration_dir=Path(tmp))
        with cpus(emulator_cpus):  # the emulator's process starts there
            live = stack.enter_context(VirtualRigProcess(rig, leader_motion="sine"))
        stack.enter_context(cpus(loop_cpus))
        connected = stack.enter_context(connect(live, say=lambda _: None, read_deadline_s=0.05))
        print(f"50 Hz loop, 4 arms x 9 motors (virtual buses, own process), 4 cameras {SIZE[0]}x{SIZE[1]} at "
              f"60 fps, {args.seconds:g} s per run, files in {tmp}")
        if args.pin:
            print(f"pinned: the loop on CPU {min(LOOP_CPUS)}, the bus emulator on CPU {min(EMULATOR_CPUS)}, "
                  f"the writer on CPU {min(writer_cpus)}")
        else:
            print(f"not pinned: the loop, the writer and the bus emulator share CPUs {sorted(os.sched_getaffinity(0))}")
        print(f"{'run':<14} {'steps':>6} {'dropped':>7} {'queue max':>9} {'MB':>7} {'MB/s':>6} "
              f"{'err p50':>8} {'err p99':>8} {'err max':>8} {'overruns':>8} {'close s':>8} {'steal ms':>8} "
              f"{'cpu %':>6}")
        runs = (("no recording", None, False, False), ("+ display", None, False, True),
                ("raw", Path(tmp), False, False), ("JPEG q50", Path(tmp), True, False),
                ("JPEG+display", Path(tmp), True, True))
        for name, directory, compress, display in runs * args.repeat:
            try:
                r = run(connected, args.seconds, directory, compress, writer_cpus,
                        Path(tmp) / "live.rrd" if display else None)
            except NoResponseError as exc:
                print(f"{name:<14} failed: {exc}", flush=True)
                continue
            s = r["summary"]
            rec = (f"{r['steps']:>6} {r['dropped']:>7} {r['high_water']:>9} {r['mb']:>7.0f} {r['mb_s']:>6.1f}"
                   if directory else f"{s.steps:>6} {'-':>7} {'-':>9} {'-':>7} {'-':>6}")
            close = f"{r['close_s']:>8.3f}" if directory else f"{'-':>8}"
            steal = f"{r['steal_ms']:>8.0f}" if r["steal_ms"] is not None else f"{'-':>8}"
            print(f"{name:<14} {rec} {s.error_p50_ms:>8.3f} {s.error_p99_ms:>8.3f} {s.error_max_ms:>8.3f} "
                  f"{s.overruns:>8} {close} {steal} {r['cpu']:>6.0f}", flush=True)
            if "display" in r:
                print(f"{'':<14} display: {r['display']}", flush=True)


if __name__ == "__main__":
    main()
