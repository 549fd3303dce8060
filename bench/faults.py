"""Every attack of the safety issue, run against the real stack; one table: attack, expected, observed, held.

Each row builds its own fault on the simulated rig or on real files in a
temporary folder and runs the real code path (the driver on virtual buses, the
50 Hz loop, the tandem-* commands in their own processes, a tiny ACT trained
here and then broken):

  NaN policy          every chunk NaN; the scripted operator takes over (gate stalled:10)
  NaN weights         a weight of the checkpoint set to NaN
  overflowing weights finite weights whose forward pass is not finite
  NaN offsets         a rig file with `offsets: {waist: .nan}`, and the same NaN forced past the parser
  motor fault at stop a hardware error on one follower motor, another follower motor silent
  two recorders       a second tandem-record on a folder another is recording into
  kill after rename   tandem-record killed between the episode's rename and the index update
  disk full           tandem-record into a 6 MB tmpfs (root; else under a file-size limit)
  bad calibration     "reverse": "false", inverted / 1e6 / NaN limits, inverted gripper, another arm's file
  bad rig             duplicate key, two arms on one port, two cameras on one device, `../..` name, not UTF-8
  bad episode files   garbage, truncated, missing, 13-column qpos, a NaN action; dataset.json "index": "one"
  sim rig under load  tandem-teleop --rig sim --seconds 20, and two scripted tandem-record episodes,
                      each with four busy processes
  Ctrl-C              SIGINT to tandem-teleop's process group

    python3 bench/faults.py [--only NAME ...] [--keep DIR]

It takes a few minutes (most of it the 20 s teleop under load and the tiny
training run). Nothing here asserts: a row that does not hold says so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402

BIN = Path(sys.executable).parent
SMALL = ["--image-size", "48x64"]


@dataclass
class Row:
    attack: str
    expected: str
    observed: str
    held: bool


def run(cmd: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **options)


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else name


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# -- the policy ----------------------------------------------------------------------------------------------------
def tiny_checkpoint(work: Path) -> Path:
    out = work / "run" / "last"
    if out.exists():
        return out
    demos = work / "demos"
    for cmd in ([tool("tandem-record"), "--dataset", str(demos), "--episodes", "1", "--seconds", "2", *SMALL],
                [tool("tandem-train"), "--dataset", str(demos), "--out", str(work / "run"), "--preset", "tiny",
                 "--steps", "2", "--workers", "0", "--no-progress", "--val-fraction", "0"]):
        done = run(cmd)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return out


def nan_policy(work: Path) -> Row:
    from calibration.connection import connect
    from deploy.inference import ChunkPredictor
    from deploy.rollout import DeployOptions, run_rollout
    from deploy.runner import PolicyStalledError
    from policies.checkpoint import load_checkpoint
    from robot.rig import load_rig
    from robot.sim.sim_clock import SimClock
    from robot.sim.world_process import SimWorldProcess
    from teleop.pedal import ScriptedPedal

    class NanPredictor(ChunkPredictor):
        def __call__(self, obs):
            return np.full_like(super().__call__(obs), np.nan)

    checkpoint = load_checkpoint(tiny_checkpoint(work))
    world = SimWorldProcess(load_rig("sim"), "transfer_cube", image_size=(48, 64), cameras=["cam_high"],
                            operator="gated")
    seen, error = [], ""
    with world as live, connect(live, say=lambda s: None, **world.bus_options) as connected:
        world.set_gate("stalled:10")
        status = world.reset(7)
        try:
            run_rollout(connected, NanPredictor(checkpoint), world.cameras, SimClock(world, status.time),
                        DeployOptions(max_uncovered_s=1.0), steps=400, pedal=ScriptedPedal(world),
                        observers=[seen.append])
        except PolicyStalledError as exc:
            error = str(exc)
    followers = ("follower_left", "follower_right")
    commands = np.array([np.concatenate([s.commands[f] for f in followers]) for s in seen])
    human = sum("leader_left" not in s.commands for s in seen)
    moved = float(np.abs(np.diff(commands, axis=0)[:, :]).sum())
    finite = bool(np.all(np.isfinite(commands)))
    observed = (f"{len(seen)} steps, all commands finite: {finite}; {human} steps under the operator moved the "
                f"followers {moved:.2f} rad in all; stopped: {error[:error.find(';')]}")
    return Row("NaN policy (every chunk NaN), gated", "nothing non-finite written, takeover drives, rollout "
               "stops with a named error", observed, finite and human > 0 and moved > 0.5 and bool(error))


def broken_checkpoint(work: Path, how: str) -> Row:
    from policies.checkpoint import MODEL_FILE, CheckpointError, load_checkpoint

    source = tiny_checkpoint(work)
    out = work / f"ckpt_{how}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    weights = safetensors.torch.load_file(str(out / MODEL_FILE))
    if how == "nan":
        name = next(k for k, v in weights.items() if v.is_floating_point() and v.dim() == 2)
        weights[name].view(-1)[0] = float("nan")
    else:
        for name, value in weights.items():
            if value.is_floating_point() and value.dim() == 2:
                weights[name] = value.sign() * 3e38 + 3e38 * (value == 0)
    safetensors.torch.save_file(weights, str(out / MODEL_FILE))
    try:
        load_checkpoint(out)
        observed, held = "loaded", False
    except CheckpointError as exc:
        observed, held = f"refused: {str(exc)[:90]}...", True
    attack = "NaN weights in the checkpoint" if how == "nan" else "finite weights, non-finite forward pass"
    return Row(attack, "refused at load", observed, held)


def nan_offsets(work: Path) -> Row:
    from calibration.connection import connect
    from robot.clock import RealClock
    from robot.loop import ControlLoop
    from robot.rig import RigFileError, load_rig
    from robot.sim.virtual_rig import virtual_buses
    from teleop.controller import TeleopController

    text = rig_text().replace("{leader: leader_left, follower: follower_left}",
                              "{leader: leader_left, follower: follower_left, offsets: {waist: .nan}}")
    path = work / "nan_offsets.yaml"
    path.write_text(text)
    try:
        load_rig(str(path))
        parsed = "accepted"
    except RigFileError as exc:
        parsed = f"refused ({str(exc)[:50]}...)"
    # The same NaN forced past the parser: the loop must still write nothing bad.
    rig = dataclasses.replace(load_rig("sim"), calibration_dir=work / "calibration_nan")
    with virtual_buses(rig) as (live, buses), connect(live, say=lambda _: None, read_deadline_s=0.2) as connected:
        maps = connected.joint_maps()
        for _, _, joint_map in maps:
            joint_map.offset = np.full_like(joint_map.offset, np.nan)
        loop = ControlLoop(connected.arms, TeleopController(maps), connected.limits(), RealClock())
        try:
            steps = [loop.step() for _ in range(10)]
        finally:
            loop.close()
        goals = [buses["follower_left"].get(i, "Goal Position") for i in range(1, 10)]
    finite = all(np.all(np.isfinite(c)) for s in steps for c in s.commands.values())
    sane = all(0 <= g < 4096 for g in goals)
    return Row("NaN pair offsets (rig file; forced past it)", "file refused; forced: followers hold",
               f"file {parsed}; forced: commands finite {finite}, goals {min(goals)}..{max(goals)} ticks, "
               f"{sum(loop.non_finite.values())} targets refused", parsed.startswith("refused") and finite and sane)


def motor_fault_at_stop(work: Path) -> Row:
    from calibration.connection import connect
    from robot.rig import load_rig
    from robot.sim.virtual_rig import virtual_buses

    rig = dataclasses.replace(load_rig("sim"), calibration_dir=work / "calibration_fault")
    said: list[str] = []
    with virtual_buses(rig) as (live, buses):
        with connect(live, say=said.append, read_deadline_s=0.05, transaction_attempts=2):
            buses["follower_right"].set_hardware_error(4, 0x20)
            buses["follower_left"].silence(6)
        torque = {name: [bus.get(i, "Torque Enable") for i in range(1, 10)] for name, bus in buses.items()}
    on = [f"{name} motor {i + 1}" for name, values in torque.items() for i, v in enumerate(values) if v]
    named = any("motor 6" in s and "may still be torqued" in s for s in said)
    return Row("motor fault at stop (hardware error + a silent motor)", "every other motor off, the silent one "
               "named", f"still torqued: {', '.join(on) or 'none'}; named in the warning: {named}",
               on == ["follower_left motor 6"] and named)


# -- datasets --------------------------------------------------------------------------------------------------------
def two_recorders(work: Path) -> Row:
    folder = work / "shared_dataset"
    shutil.rmtree(folder, ignore_errors=True)
    first = subprocess.Popen([tool("tandem-record"), "--dataset", str(folder), "--episodes", "2", "--seconds", "3",
                              *SMALL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(folder.glob(".episode_*.partial")):
        time.sleep(0.05)
    second = run([tool("tandem-record"), "--dataset", str(folder), "--episodes", "1", "--seconds", "1", *SMALL])
    out, _ = first.communicate(timeout=600)
    from recording.dataset import Dataset
    from recording.reader import EpisodeReader

    dataset = Dataset.open(folder)
    consistent = True
    for e in dataset.episodes():
        with EpisodeReader(dataset.path(e.index)) as ep:
            consistent &= ep.length == e.length
    refused = second.returncode != 0 and str(first.pid) in second.stderr + second.stdout
    return Row("two recorders on one dataset folder", "the second refused naming the first's pid; no episode lost",
               f"second exit {second.returncode}: {last_line(second.stderr or second.stdout)[:70]}; first exit "
               f"{first.returncode}, {len(dataset.episodes())} episodes, index matches files: {consistent}",
               refused and first.returncode == 0 and len(dataset.episodes()) == 2 and consistent)


KILL_AFTER_RENAME = """
import os, signal, sys
from recording import dataset
def killed(self, episode):
    os.kill(os.getpid(), signal.SIGKILL)  # the episode file is in place, the index not yet updated
dataset.Dataset.add = killed
from recording.cli import main
sys.exit(main(sys.argv[1:]))
"""


def kill_after_rename(work: Path) -> Row:
    folder = work / "killed_dataset"
    shutil.rmtree(folder, ignore_errors=True)
    killed = run([sys.executable, "-c", KILL_AFTER_RENAME, "--dataset", str(folder), "--episodes", "1",
                  "--seconds", "1", *SMALL])
    files = sorted(p.name for p in folder.glob("episode_*.hdf5"))
    listed_before = json.loads((folder / "dataset.json").read_text())["episodes"]
    again = run([tool("tandem-record"), "--dataset", str(folder), "--episodes", "1", "--seconds", "1", "--seed", "1",
                 *SMALL])
    listed_after = [e["index"] for e in json.loads((folder / "dataset.json").read_text())["episodes"]]
    said = next((line for line in (again.stdout + again.stderr).splitlines() if "episode_0" in line), "")
    return Row("kill between the rename and the index update", "the episode is added back when the folder is "
               "next opened, and said so",
               f"killed by signal {-killed.returncode}; files {files}, indexed {len(listed_before)}; next record: "
               f"indexed {listed_after}; '{said.strip()[:60]}'",
               files == ["episode_0.hdf5"] and not listed_before and listed_after == [0, 1] and bool(said))


@contextlib.contextmanager
def small_disk(work: Path, megabytes: int):
    """A folder on a tmpfs of `megabytes` (root), else None: the caller uses a file-size limit instead."""
    mount = work / "small_disk"
    mount.mkdir(exist_ok=True)
    if os.geteuid() == 0 and run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs",
                                  str(mount)]).returncode == 0:
        try:
            yield mount
        finally:
            run(["umount", str(mount)])
    else:
        yield None


def disk_full(work: Path) -> Row:
    base = [tool("tandem-record"), "--episodes", "1", *SMALL, "--raw"]
    with small_disk(work, 6) as disk:
        folder = (disk or work) / "full_dataset"
        shutil.rmtree(folder, ignore_errors=True)
        first = run([*base, "--dataset", str(folder), "--seconds", "1"])
        size = (folder / "episode_0.hdf5").stat().st_size
        limit = None

        def file_size_limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (3 * size, 3 * size))

        if disk is None:
            limit = file_size_limit
        full = run([*base, "--dataset", str(folder), "--seconds", "30", "--seed", "1"], preexec_fn=limit)
        from recording.reader import EpisodeReader

        with EpisodeReader(folder / "episode_0.hdf5") as ep:
            kept = ep.length
        leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith(".episode"))
        err_lines = [line for line in full.stderr.splitlines() if line.strip()]
    how = "6 MB tmpfs" if disk else f"file-size limit {3 * size} B"
    return Row(f"disk full ({how})", "exit 1 with one line naming the folder and free space; earlier episodes "
               "kept; no partial left",
               f"exit {full.returncode}, {len(err_lines)} stderr line(s): '{last_line(full.stderr)}'; "
               f"episode 0 kept ({kept} steps); leftovers {leftovers}",
               first.returncode == 0 and full.returncode == 1 and len(err_lines) <= 3 and kept > 0
               and not leftovers)


def bad_episode_files(work: Path) -> Row:
    folder = work / "bad_episodes"
    shutil.rmtree(folder, ignore_errors=True)
    done = run([tool("tandem-record"), "--dataset", str(folder), "--episodes", "5", "--seconds", "1", *SMALL])
    if done.returncode != 0:
        return Row("bad episode files", "tandem-inspect exits 1 naming each", f"recording failed: {done.stderr}",
                   False)
    (folder / "episode_0.hdf5").write_bytes(os.urandom(4096))  # garbage
    data = (folder / "episode_1.hdf5").read_bytes()
    (folder / "episode_1.hdf5").write_bytes(data[: len(data) // 2])  # truncated
    (folder / "episode_2.hdf5").unlink()  # missing
    with h5py.File(folder / "episode_3.hdf5", "r+") as f:  # 13 columns
        qpos = f["/observations/qpos"][:, :13]
        del f["/observations/qpos"]
        f["/observations/qpos"] = qpos
    with h5py.File(folder / "episode_4.hdf5", "r+") as f:
        f["/action"][5, 3] = np.nan
    inspected = run([tool("tandem-inspect"), "--dataset", str(folder)])
    text = inspected.stdout + inspected.stderr
    named = [i for i in range(5) if f"episode_{i}" in text]
    index = json.loads((folder / "dataset.json").read_text())
    index["episodes"][0]["index"] = "one"
    bad_index = work / "bad_index"
    shutil.rmtree(bad_index, ignore_errors=True)
    bad_index.mkdir()
    (bad_index / "dataset.json").write_text(json.dumps(index))
    from recording.dataset import Dataset, DatasetError

    try:
        Dataset.open(bad_index)
        index_said = "opened"
    except DatasetError as exc:
        index_said = str(exc)
    index_ok = "dataset.json" in index_said and "index" in index_said
    return Row("bad episode files and index", "tandem-inspect exits 1 naming each bad file; a bad index field "
               "named", f"inspect exit {inspected.returncode}, named episodes {named}; \"index\": \"one\" -> "
               f"'{index_said[:60]}'", inspected.returncode == 1 and named == [0, 1, 2, 3, 4] and index_ok)


# -- input files -----------------------------------------------------------------------------------------------------
def rig_text() -> str:
    import robot.rig

    return (Path(robot.rig.__file__).parent / "rigs" / "sim.yaml").read_text()


def bad_rig_files(work: Path) -> Row:
    from robot.rig import RigFileError, load_rig

    text = rig_text()
    hardware = text.replace("port: virtual", "port: /dev/ttyUSB0", 2)
    attacks = {
        "duplicate key": text.replace("control_hz: 50", "control_hz: 50\ncontrol_hz: 5"),
        "two arms on one port": hardware,
        "two cameras on one device": text.replace("cam_high: {device: sim", "cam_high: {device: /dev/video0").replace(
            "cam_low: {device: sim", "cam_low: {device: /dev/video0"),
        "name ../..": text.replace("cam_high:", "../..:"),
        "not UTF-8": None,
    }
    refused = []
    for what, content in attacks.items():
        path = work / f"bad_rig_{what.replace(' ', '_').replace('/', '_').replace('.', '_')}.yaml"
        if content is None:
            path.write_bytes(text.encode() + b"\n# caf\xe9\n")
        else:
            path.write_text(content)
        try:
            load_rig(str(path))
        except RigFileError as exc:
            if str(path) in str(exc) or path.name in str(exc):
                refused.append(what)
    return Row("bad rig files (5 attacks)", "each refused, naming the file", f"refused {len(refused)}/5: "
               f"{', '.join(refused)}", len(refused) == len(attacks))


def bad_calibration_files(work: Path) -> Row:
    from calibration.file import ArmCalibration, CalibrationError
    from calibration.store import factory_calibration
    from robot.rig import load_rig

    rig = load_rig("sim")
    arm = next(a for a in rig.arms if a.name == "follower_left")
    good = factory_calibration(arm).to_json()

    def edited(change: Callable[[dict], None]) -> dict:
        data = json.loads(json.dumps(good))
        change(data)
        return data

    def first_limit(data: dict) -> list:
        return next(iter(data["limits"].values()))

    attacks = {
        '"reverse": "false"': lambda d: d["motors"][0].__setitem__("reverse", "false"),
        "inverted limits": lambda d: first_limit(d).reverse(),
        "1e6 rad limits": lambda d: first_limit(d).__setitem__(1, 1e6),
        "NaN limit": lambda d: first_limit(d).__setitem__(0, float("nan")),
        "gripper closed = open": lambda d: d.__setitem__("gripper_open", d["gripper_closed"]),
        "another arm's file": lambda d: d.__setitem__("arm", "leader_right"),
    }
    refused = []
    for what, change in attacks.items():
        path = work / "bad_calibration" / what.replace(" ", "_").replace('"', "").replace(":", "") / "arm.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.write_text(json.dumps(edited(change)))
        except (KeyError, TypeError, IndexError, StopIteration) as exc:
            return Row("bad calibration files", "each refused", f"could not build '{what}': {exc!r}", False)
        try:
            ArmCalibration.load(path).check_spec(arm.spec, str(path), arm=arm.name)
        except CalibrationError as exc:
            if str(path) in str(exc):
                refused.append(what)
    return Row(f"bad calibration files ({len(attacks)} attacks)", "each refused, naming the file and field",
               f"refused {len(refused)}/{len(attacks)}: {', '.join(refused)}", len(refused) == len(attacks))


# -- the simulated rig -------------------------------------------------------------------------------------------------
def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_machine(processes: int = 4):
    busy = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for p in busy:
        p.start()
    try:
        yield
    finally:
        for p in busy:
            p.terminate()


def sim_under_load(work: Path) -> Row:
    with busy_machine():
        done = run([tool("tandem-teleop"), "--rig", "sim", "--seconds", "20"], timeout=300)
    text = done.stdout + done.stderr
    period = next((line.strip() for line in text.splitlines() if "period" in line), last_line(text))
    return Row("sim rig: 20 s teleop with 4 busy processes", "exit 0, no bus timeout, period statistics printed",
               f"exit {done.returncode}: {period[:90]}", done.returncode == 0 and "no status packet" not in text)


def scripted_under_load(work: Path) -> Row:
    folder = work / "loaded_dataset"
    shutil.rmtree(folder, ignore_errors=True)
    with busy_machine():
        done = run([tool("tandem-record"), "--dataset", str(folder), "--episodes", "2", "--task", "transfer_cube",
                    *SMALL], timeout=900)
    text = done.stdout + done.stderr
    return Row("sim rig: 2 scripted transfer_cube episodes with 4 busy processes", "exit 0, no bus timeout",
               f"exit {done.returncode}: {last_line(done.stdout)[:90]}",
               done.returncode == 0 and "no status packet" not in text)


def ctrl_c(work: Path) -> Row:
    child = subprocess.Popen([tool("tandem-teleop"), "--rig", "sim", "--seconds", "60"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    time.sleep(12)  # connected and in the loop
    os.killpg(child.pid, signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    return Row("Ctrl-C to the process group", "exit 130, 'interrupted', no misleading bus error",
               f"exit {child.returncode}: '{last_line(out)[:70]}'",
               child.returncode == 130 and "interrupted" in out and "readiness to read" not in out)


ATTACKS: dict[str, Callable[[Path], Row]] = {
    "nan_policy": nan_policy,
    "nan_weights": lambda w: broken_checkpoint(w, "nan"),
    "overflow_weights": lambda w: broken_checkpoint(w, "overflow"),
    "nan_offsets": nan_offsets,
    "motor_fault": motor_fault_at_stop,
    "two_recorders": two_recorders,
    "kill_after_rename": kill_after_rename,
    "disk_full": disk_full,
    "bad_calibration": bad_calibration_files,
    "bad_rig": bad_rig_files,
    "bad_episodes": bad_episode_files,
    "sim_under_load": sim_under_load,
    "scripted_under_load": scripted_under_load,
    "ctrl_c": ctrl_c,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(ATTACKS), help="run only these attacks")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (default: a temp folder)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tandem-faults-")))
        work.mkdir(parents=True, exist_ok=True)
        for name in args.only or ATTACKS:
            start = time.perf_counter()
            try:
                row = ATTACKS[name](work)
            except Exception as exc:  # an attack that breaks the bench is a row that did not hold
                row = Row(name, "-", f"the attack itself failed: {exc!r}"[:160], False)
            rows.append(row)
            print(f"[{time.perf_counter() - start:5.1f} s] {'held' if row.held else 'NOT HELD'}: {row.attack}",
                  flush=True)
    print()
    print("| attack | expected | observed | held |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r.attack} | {r.expected} | {r.observed.replace('|', '/')} | {'yes' if r.held else 'NO'} |")
    held = sum(r.held for r in rows)
    print(f"\n{held}/{len(rows)} held")
    return 0 if held == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
