"""What every tandem command shares: its common arguments, logging, signals, stop keys and exit codes.

Each package's cli.py builds its parser from these helpers and runs its body
through `run_command`, so every command answers the same way:

  0    done
  1    a runtime error: the bus, a file's content, the disk, a policy (one line naming what failed)
  2    a usage error: a bad flag or value, a --rig that names neither a file nor a preset
  130  interrupted (Ctrl-C or SIGTERM); what was finished is kept and the arms are released
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robot.rig import Rig

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STOP_KEYS = ("q", "esc")
KEY_BACKENDS = ("auto", "pynput", "terminal", "none")
DISPLAY_AUTO, DISPLAY_SERVE = "auto", "serve"  # --display with no value; --display serve


class UsageError(ValueError):
    """What was typed on the command line cannot work (exit 2); found after parsing, before anything started."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default shown in --help; descriptions keep their paragraphs."""


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


# -- argument types -------------------------------------------------------------------------------------------------
def _number(text: str, kind: type, what: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} is not a number at least 0")
    return value


def jpeg_quality(text: str) -> int:
    """A JPEG quality, 1..100."""
    quality = positive_int(text)
    if quality > 100:
        raise argparse.ArgumentTypeError(f"{quality} is not within 1..100")
    return quality


def image_size(text: str) -> tuple[int, int]:
    """HEIGHTxWIDTH, e.g. 240x320."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, e.g. 240x320") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return h, w


def camera_map(text: str) -> dict[str, str]:
    """POLICY=RIG[,POLICY=RIG ...], e.g. top=cam_high: the policy's camera `top` is fed from the rig's `cam_high`."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        policy, sep, rig = (part.strip() for part in pair.partition("="))
        if not sep or not policy or not rig:
            raise argparse.ArgumentTypeError(f"{pair.strip()!r} is not POLICY_CAMERA=RIG_CAMERA, e.g. top=cam_high")
        if policy in mapping:
            raise argparse.ArgumentTypeError(f"camera {policy!r} is mapped twice ({policy}={mapping[policy]}, "
                                             f"{policy}={rig})")
        mapping[policy] = rig
    return mapping


def rig_argument(text: str) -> str:
    """A preset name or an existing file: anything else is a usage error before any bus opens."""
    from robot.rig import preset_names

    if text in preset_names() or Path(text).is_file():
        return text
    if Path(text).exists():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    raise argparse.ArgumentTypeError(f"{text}: no such rig file, and not a preset ({', '.join(preset_names())})")


# -- common arguments -----------------------------------------------------------------------------------------------
def add_rig_argument(parser: argparse.ArgumentParser, *, virtual: bool = True) -> None:
    """--rig, and for commands that open the rig's arms --virtual."""
    from robot.rig import preset_names

    parser.add_argument("--rig", default="sim", type=rig_argument,
                        help=f"rig YAML file, or a preset ({', '.join(preset_names())}); sim is the simulated rig "
                        "(MuJoCo), no hardware needed")
    if virtual:
        parser.add_argument("--virtual", action="store_true",
                            help="run the rig's arms on virtual Dynamixel buses (the rig file's models, IDs and baud) "
                            "and its cameras as synthetic sources: try a rig file end to end before the hardware "
                            "arrives; calibrations go to a 'virtual' folder inside the rig's calibration folder, "
                            "never over the hardware's")


def rig_from_args(args: argparse.Namespace) -> Rig:
    """The rig --rig names, made virtual by --virtual."""
    from robot.rig import load_rig

    rig = load_rig(args.rig)
    return rig.as_virtual() if getattr(args, "virtual", False) else rig


def add_motion_arguments(parser: argparse.ArgumentParser, *, what: str = "the followers") -> None:
    """The per-step clamp and the slow start: every command that moves arms takes the same three."""
    parser.add_argument("--max-step", type=positive_float, default=0.1, metavar="RAD",
                        help="largest change of a joint command per step, rad (0.1 = 5 rad/s at 50 Hz)")
    parser.add_argument("--approach-speed", type=positive_float, default=0.5, metavar="RAD_S",
                        help=f"joint speed of the slow move of {what} to their start pose, rad/s")
    parser.add_argument("--refuse-above", type=positive_float, default=1.5, metavar="RAD",
                        help="refuse to start when a joint is further than this from its start pose, rad")


@dataclass(frozen=True)
class Motion:
    max_step: float = 0.1
    approach_speed: float = 0.5
    refuse_above: float = 1.5

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Motion:
        return cls(args.max_step, args.approach_speed, args.refuse_above)


def add_keys_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", choices=KEY_BACKENDS, default="auto",
                        help="operator key backend (auto: pynput with a display, else this terminal)")


def add_task_description_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-description", metavar="TEXT",
                        help="what the episodes show being done, in words, kept in each episode and in dataset.json "
                        "(LeRobot's `task`); unset: the simulated task's sentence, on hardware the dataset's task "
                        "(often empty)")


def display_target(text: str) -> str:
    """--display's value: serve, or a .rrd file in a folder that exists (auto: the flag alone)."""
    if text in (DISPLAY_AUTO, DISPLAY_SERVE):
        return text
    path = Path(text)
    if path.suffix != ".rrd":
        raise argparse.ArgumentTypeError(f"{text!r} is neither a .rrd file nor serve")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder {path.parent}")
    return text


def add_display_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--display", nargs="?", const=DISPLAY_AUTO, type=display_target, metavar="FILE.rrd|serve",
                        help="show the rig live in Rerun (cameras, joints, who drives, the loop's period error): "
                        "alone, the viewer where there is a display, else a .rrd file next to the data; FILE.rrd "
                        "saves there; serve serves it over gRPC for a viewer on another machine")


def add_render_argument(parser: argparse.ArgumentParser, *, default: str | None, unset: str = "") -> None:
    """--render fast|aloha: how the simulated rig renders its cameras (robot/sim/render_style.py)."""
    from robot.sim.render_style import RENDER_NAMES

    parser.add_argument("--render", choices=RENDER_NAMES, default=default,
                        help="simulated rig: how the cameras render; fast: no shadows, reflections or multisampling "
                        "(half the time per frame); aloha: as gym-aloha and ACT render the scene (their images, "
                        f"LeRobot's simulated ALOHA datasets){unset}")


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (bus retries and more)")


# -- running a command ------------------------------------------------------------------------------------------------
def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: the same orderly stop (arms held and released, finished work kept)."""
    raise KeyboardInterrupt


def redeliver_swallowed_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """An interrupt that lands while Python runs a finalizer or a weakref callback is printed as "Exception
    ignored" and lost, and the command would run on with the arms moving: send it again, as Ctrl-C, once this
    hook has returned (raised inside the hook, it would be lost too). Other unraisable exceptions are printed
    as Python prints them."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        threading.Thread(target=_interrupt_main_thread, name="redeliver-interrupt", daemon=True).start()
        return
    sys.__unraisablehook__(unraisable)


def _interrupt_main_thread() -> None:
    time.sleep(0.01)  # the hook returns meanwhile
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def setup_process(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, raise_interrupt)
    sys.unraisablehook = redeliver_swallowed_interrupt


def run_command(prog: str, body: Callable[[], int], *, interrupted: str = "interrupted; arms released") -> int:
    """Run a command's body with the one exit-code convention; errors become one line naming `prog`."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, RuntimeError, OSError) as exc:  # every tandem error derives from one of these
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def is_sim_world(rig: object) -> bool:
    """The simulated rig with its MuJoCo world (cameras rendered by it), as opposed to bare virtual arms."""
    from robot.cameras import opened_by_world

    return bool(getattr(rig, "virtual", False)) and any(opened_by_world(c) for c in rig.cameras)


def dataset_folder(text: str) -> Path:
    """A dataset folder that must already exist (to read or train on): anything else is a usage error."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; pass the dataset folder that holds it (the folder "
                                         "tandem-record wrote, with dataset.json and episode_*.hdf5)")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such dataset folder")
    return path


def keys_line(backend: str, listening: bool) -> str:
    """What the operator can press: the stop keys are offered only where a key backend listens for them."""
    if not listening:
        return f"keys: {backend}"
    return f"keys: {backend}; stop with {' or '.join(STOP_KEYS)} or Ctrl-C"


def open_rig_arms(rig: Rig, stack: ExitStack, *, leader_motion: str = "still") -> Rig:
    """The rig whose arms a command drives: a virtual rig's buses start in their own process (and it says so),
    closed with `stack`; a hardware rig is returned as it is."""
    if not rig.virtual:
        return rig
    from robot.sim.rig_process import VirtualRigProcess  # the emulator only where a rig has virtual arms

    live = stack.enter_context(VirtualRigProcess(rig, leader_motion=leader_motion))
    print(f"rig {rig.name}: virtual Dynamixel buses started (leaders: {leader_motion})")
    return live


def describe(*paragraphs: str, width: int = 100) -> str:
    """A command's --help description: its paragraphs wrapped (the formatter keeps them as they are), then the
    exit statuses every command shares."""
    import textwrap

    texts = [*paragraphs, "exit status: 0 done, 1 runtime error, 2 usage error, 130 interrupted"]
    return "\n\n".join(textwrap.fill(p, width) for p in texts)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back while a resource is made and handed to its owner, then delivered: an
    interrupt inside a constructor (e.g. while a writer thread starts) would leave a resource nobody can close.
    Threads started inside inherit the block, which is harmless: Python handles signals in the main thread."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
