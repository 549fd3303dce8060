"""The rig file: arms (ports, kinds, roles), leader->follower pairs, cameras, pedal, control rate.

Each arm names its kind: a built-in one (robot/arm_kinds.yaml) or one the file
defines under `kinds:` with the same fields.

A rig is a YAML file, or one of the presets shipped in robot/rigs/ (aloha, aloha2,
koch, koch_bimanual for hardware; sim for the simulated rig). Presets go through the same loader as any
user file, so `cp robot/rigs/aloha.yaml my_rig.yaml` is a good start. Every field
is checked on load; a bad one raises RigFileError naming the file, the field and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robot.arm import ArmSpec
from robot.arm_kinds import KINDS_FILE, builtin_kinds, check_motor_ids, parse_joint, parse_kind
from robot.cameras import CAMERA_KINDS, camera_kind, default_camera_type, opened_by_world
from robot.dynamixel.control_table import BAUD_RATES

VIRTUAL_PORT = "virtual"  # the sim rig's arms get their pseudo-terminal when the rig starts
VIRTUAL_READ_DEADLINE_MS, VIRTUAL_BUS_LATENCY_MS = 1000.0, 20.0  # bus timing for emulated motors (see sim.yaml)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # arm, camera and joint names: they become file and HDF5 names
RIG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a rig's name names its calibration folder
PRESET_DIR = Path(__file__).with_name("rigs")
ROLES = ("leader", "follower")
SIDES = ("left", "right")
PEDAL_BACKENDS = ("auto", "pynput", "evdev", "terminal", "scripted", "none")
DEFAULT_CALIBRATION_ROOT = Path("~/.local/share/tandem/calibration")


class RigFileError(ValueError):
    def __init__(self, path: str, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")
        self.path, self.where, self.problem = path, where, problem


ErrorType = Callable[[str, str, str], ValueError]  # (file, field, problem) -> the error to raise


@dataclass(frozen=True)
class RigArm:
    name: str
    role: str  # "leader" or "follower"
    spec: ArmSpec
    port: str
    baud: int = 1_000_000
    side: str = "left"
    gripper_current_limit: int = 300  # mA, converted to each motor's units; followers run the gripper in
    # current-based position mode
    virtual: bool = False  # a virtual bus of the sim rig (its port becomes a pseudo-terminal at start)


@dataclass(frozen=True)
class Pairing:
    """A leader drives a follower, joint for joint; offset (rad) and sign per joint where configured."""

    leader: str
    follower: str
    offsets: dict[str, float] = field(default_factory=dict)
    signs: dict[str, int] = field(default_factory=dict)


CAMERA_TYPES = tuple(CAMERA_KINDS)  # robot/cameras.py's registry: what each type's device is, how it opens


@dataclass(frozen=True)
class CameraConfig:
    name: str
    # opencv: "/dev/v4l/by-id/...", "/dev/video0", "0" or a video file; realsense: the camera's serial number;
    # synthetic: any label; sim: "sim" (CAMERA_KINDS says it for each type)
    device: str
    width: int = 640
    height: int = 480
    fps: int = 30
    fourcc: str = "MJPG"
    type: str = "opencv"  # one of CAMERA_TYPES
    depth: bool = False  # also deliver depth aligned to the colour image (the types with depth)


@dataclass(frozen=True)
class PedalConfig:
    backend: str = "auto"  # auto: pynput with a display, else terminal keys
    key: str = "space"
    device: str | None = None  # evdev: /dev/input/by-id/...


@dataclass(frozen=True)
class Rig:
    name: str
    source: str  # the file it came from, for messages
    arms: tuple[RigArm, ...]
    pairs: tuple[Pairing, ...]
    cameras: tuple[CameraConfig, ...] = ()
    pedal: PedalConfig = PedalConfig()
    control_hz: float = 50.0
    calibration_dir: Path = DEFAULT_CALIBRATION_ROOT
    read_deadline_ms: float | None = None  # None: the driver's default, right for hardware
    bus_latency_ms: float | None = None  # None: the adapter's latency timer, right for hardware

    @property
    def bus_options(self) -> dict[str, float]:
        """Options for every bus of this rig (DynamixelBus keywords), as the rig file sets them."""
        options = {}
        if self.read_deadline_ms is not None:
            options["read_deadline_s"] = self.read_deadline_ms / 1000
        if self.bus_latency_ms is not None:
            options["latency_ms"] = self.bus_latency_ms
        return options

    def arm(self, name: str) -> RigArm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ValueError(f"{self.source}: no arm named {name!r}; the arms are {', '.join(self.arm_names)}")

    @property
    def cli_arg(self) -> str:
        """What to pass as --rig to get this rig again."""
        return self.name if Path(self.source).parent == PRESET_DIR else self.source

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    @property
    def leaders(self) -> tuple[RigArm, ...]:
        return tuple(a for a in self.arms if a.role == "leader")

    @property
    def followers(self) -> tuple[RigArm, ...]:
        return tuple(a for a in self.arms if a.role == "follower")

    @property
    def virtual(self) -> bool:
        return any(a.virtual for a in self.arms)

    def as_virtual(self) -> Rig:
        """The same rig with every arm on a virtual bus (same models and IDs) and every camera synthetic (same
        names and sizes): a rig file checked end to end before the hardware arrives. Its calibrations live in a
        folder of their own, so a virtual run never reads or writes the hardware's."""
        arms = tuple(dataclasses.replace(a, port=VIRTUAL_PORT, virtual=True) for a in self.arms)
        cameras = tuple(c if opened_by_world(c) else dataclasses.replace(c, type="synthetic") for c in self.cameras)
        # A rig already all virtual (sim) keeps its folder; one with any hardware arm would otherwise write the
        # virtual arms' calibrations over that arm's.
        all_virtual = all(a.virtual for a in self.arms)
        calibration_dir = self.calibration_dir if all_virtual else self.calibration_dir / "virtual"
        # The emulator's timing, as the sim rig's file sets it (robot/rigs/sim.yaml says why), not the hardware's.
        return dataclasses.replace(self, arms=arms, cameras=cameras, calibration_dir=calibration_dir,
                                   read_deadline_ms=max(self.read_deadline_ms or 0.0, VIRTUAL_READ_DEADLINE_MS),
                                   bus_latency_ms=max(self.bus_latency_ms or 0.0, VIRTUAL_BUS_LATENCY_MS))

    def with_ports(self, ports: dict[str, str]) -> Rig:
        """The same rig with some arms' ports replaced (virtual arms get their pseudo-terminals)."""
        arms = tuple(dataclasses.replace(a, port=ports.get(a.name, a.port)) for a in self.arms)
        return dataclasses.replace(self, arms=arms)


# -- loading ------------------------------------------------------------------------------------
def load_rig(rig: str | Path) -> Rig:
    """A preset name ("aloha", "sim") or the path of a rig YAML file."""
    path = Path(rig)
    if not path.suffix and not path.is_file():  # a folder named like a preset (a dataset `koch`) is not a rig file
        preset = PRESET_DIR / f"{rig}.yaml"
        if not preset.exists():
            raise ValueError(f"unknown rig {str(rig)!r}: give a rig YAML file or a preset "
                             f"({', '.join(preset_names())})")
        path = preset
    if not path.is_file():
        raise ValueError(f"rig file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
    return parse_rig(read_yaml(path, RigFileError), str(path))


def read_yaml(path: Path, error: ErrorType) -> Any:
    """A YAML file's data; not UTF-8, not YAML or a key given twice raises `error` naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(str(path), "", f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                                   "save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise error(str(path), f"line {exc.line}", f"key {exc.key!r} is given twice (also on line {exc.first}); "
                                                   "keep one: YAML would silently use the last") from None
    except yaml.YAMLError as exc:
        raise error(str(path), "", f"not valid YAML: {exc}") from None


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        self.key, self.line, self.first = key, line, first


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a key twice (PyYAML keeps the last one without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` then overriding a key is allowed
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(key, line, seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: the SafeLoader reports it
                continue
        return super().construct_mapping(node, deep)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


class Fields:
    """Typed access to one mapping of a YAML or JSON file, with errors that say where the field is.

    Types are exact: a string is not true/false, true/false is not a number, an integer is a number
    but a number is not an integer, and a number is finite. `error` builds the exception to raise.
    """

    def __init__(self, source: str, where: str, data: Any, allowed: tuple[str, ...],
                 error: ErrorType = RigFileError) -> None:
        if not isinstance(data, dict):
            raise error(source, where or "top level", f"expected a mapping, got {_show(data)}")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise error(source, self._join(where, str(unknown[0])), f"unknown field; allowed: {', '.join(allowed)}")
        self.source, self.where, self.data, self._error = source, where, data, error

    @staticmethod
    def _join(where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def error(self, key: str, problem: str) -> ValueError:
        return self._error(self.source, self._join(self.where, key), problem)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING,
            choices: tuple | None = None) -> Any:
        if key not in self.data:
            if default is dataclasses.MISSING:
                raise self.error(key, "required field is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is not bool:  # YAML yes/no are not numbers or names
            raise self.error(key, f"expected {_kind_name(kind)}, got {_show(value)}")
        if kind is float and isinstance(value, int):
            value = float(value) if abs(value) <= 1e300 else math.inf  # float() of a huge integer raises
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_kind_name(kind)}, got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value}")
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def number(self, key: str, bound: float, default: Any = dataclasses.MISSING) -> float:
        """A finite number within -bound..bound."""
        value = self.get(key, float, default)
        if value is not None and not -bound <= value <= bound:
            raise self.error(key, f"{value} is outside {-bound:.4g}..{bound:.4g}")
        return value

    def section(self, key: str, allowed: tuple[str, ...], default: Any = dataclasses.MISSING) -> Fields:
        return Fields(self.source, self._join(self.where, key), self.get(key, dict, default), allowed, self._error)

    def names(self) -> tuple[str, ...]:
        """This mapping's keys, each a NAME (they become file names, HDF5 paths and CLI arguments)."""
        for key in self.data:
            if not isinstance(key, str) or not NAME.fullmatch(key):
                raise self.error(str(key), f"{key!r} is not a name: use letters, digits and _, not starting with "
                                           "a digit (names become file names)")
        return tuple(self.data)


def _show(value: Any) -> str:
    """A value as the file has it (true, not True), with its type when that is the point."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return "nothing" if value is None else repr(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({"str": "a name", "int": "an integer", "float": "a number", "dict": "a mapping",
                        "list": "a list", "bool": "true/false"}.get(k.__name__, k.__name__) for k in kinds)


_ARM_FIELDS = ("role", "side", "port", "baud", "kind", "joints", "gripper_current_limit")


def parse_rig(data: Any, source: str) -> Rig:
    top = Fields(source, "", data, ("name", "kinds", "arms", "pairs", "cameras", "pedal", "control_hz",
                                      "calibration_dir", "read_deadline_ms", "bus_latency_ms"))
    name = top.get("name", str, Path(source).stem)
    if not RIG_NAME.fullmatch(name):
        raise top.error("name", f"{name!r}{'' if 'name' in top.data else ' (the file name)'} is not a rig name: "
                                "use letters, digits, _, - and . (it names the rig's calibration folder)")
    arms_section = top.section("arms", _keys(top.data.get("arms")))
    if not arms_section.data:
        raise top.error("arms", "a rig needs at least one arm")
    kinds = _parse_kinds(top)
    arms = tuple(_parse_arm(arms_section, arm_name, kinds) for arm_name in arms_section.names())
    _one_each(arms_section, "port", {a.name: a.port for a in arms if not a.virtual}, "its own port (U2D2 adapter)")
    _one_follower_per_side(arms_section, arms)
    pairs = _parse_pairs(top, arms)
    cameras_section = top.section("cameras", _keys(top.data.get("cameras")), {})
    cameras = tuple(_parse_camera(cameras_section, cam) for cam in cameras_section.names())
    _one_each(cameras_section, "device", {c.name: _camera_device_path(c.device) for c in cameras
                                          if not opened_by_world(c)}, "its own device")
    p = top.section("pedal", ("backend", "key", "device"), {})
    pedal = PedalConfig(p.get("backend", str, "auto", PEDAL_BACKENDS), p.get("key", str, "space"),
                        p.get("device", str, None))
    control_hz = top.get("control_hz", float, 50.0)
    if not 1.0 <= control_hz <= 1000.0:
        raise top.error("control_hz", f"{control_hz} Hz is outside 1..1000")
    calibration_dir = Path(top.get("calibration_dir", str, str(DEFAULT_CALIBRATION_ROOT / name))).expanduser()
    if not calibration_dir.is_absolute():
        calibration_dir = Path(source).parent / calibration_dir
    read_deadline_ms = top.get("read_deadline_ms", float, None)
    if read_deadline_ms is not None and not 1.0 <= read_deadline_ms <= 5000.0:
        raise top.error("read_deadline_ms", f"{read_deadline_ms} ms is outside 1..5000")
    bus_latency_ms = top.get("bus_latency_ms", float, None)
    if bus_latency_ms is not None and not 0.0 <= bus_latency_ms <= 1000.0:
        raise top.error("bus_latency_ms", f"{bus_latency_ms} ms is outside 0..1000")
    return Rig(name, source, arms, pairs, cameras, pedal, control_hz, calibration_dir, read_deadline_ms,
               bus_latency_ms)


def _keys(section: Any) -> tuple[str, ...]:
    """A section's own keys are its allowed fields (arms, cameras); anything else fails as not a mapping."""
    return tuple(section) if isinstance(section, dict) else ()


def _one_each(section: Fields, key: str, values: dict[str, str], what: str) -> None:
    """No two entries share a value (two arms on one port would both drive one bus)."""
    owner: dict[str, str] = {}
    for name, value in values.items():
        same = os.path.realpath(value)  # two udev names of one adapter are one port
        if same in owner:
            raise section.error(f"{name}.{key}", f"{value} is also the {key} of {owner[same]}; each needs {what}")
        owner[same] = name


def _one_follower_per_side(section: Fields, arms: tuple[RigArm, ...]) -> None:
    """The state columns are named <side>_<joint>: two followers on one side would give two columns one name."""
    owner: dict[str, str] = {}
    for a in (a for a in arms if a.role == "follower"):
        if a.side in owner:
            given = "" if "side" in section.data[a.name] else " (unset: right where the name has 'right', else left)"
            raise section.error(f"{a.name}.side", f"{a.side}{given} is also the side of follower {owner[a.side]}; "
                                                  f"each follower needs its own side ({', '.join(SIDES)}): the "
                                                  "recorded state's columns are named <side>_<joint>")
        owner[a.side] = a.name


def _camera_device_path(device: str) -> str:
    """OpenCV opens camera index N as /dev/videoN."""
    return f"/dev/video{device}" if device.isdigit() else device


def _parse_kinds(top: Fields) -> dict[str, ArmSpec]:
    """The built-in kinds and the rig file's own (its `kinds:` section, the fields of arm_kinds.yaml), by name."""
    section = top.section("kinds", _keys(top.data.get("kinds")), {})
    builtin = builtin_kinds()
    kinds = dict(builtin)
    for name in section.names():
        if name in builtin:
            raise section.error(name, f"{name!r} is the name of a built-in kind ({builtin[name].description}, in "
                                      f"{KINDS_FILE}); give this rig's own kind another name")
        kinds[name] = parse_kind(section, name)
    return kinds


def _parse_arm(arms: Fields, name: str, kinds: dict[str, ArmSpec]) -> RigArm:
    a = arms.section(name, _ARM_FIELDS)
    role = a.get("role", str, choices=ROLES)
    side = a.get("side", str, "right" if "right" in name else "left", SIDES)
    baud = a.get("baud", int, 1_000_000, tuple(BAUD_RATES))
    if "kind" not in a.data:
        raise a.error("kind", f"required field is missing: name the arm's kind, a built-in one "
                              f"({', '.join(builtin_kinds())}), or define one under a top-level `kinds:` section of "
                              f"this file with the fields of {KINDS_FILE} and give its name")
    spec = _with_joint_overrides(a, kinds[a.get("kind", str, choices=tuple(kinds))])
    limit = a.get("gripper_current_limit", int, 300)
    if not 0 < limit <= 2000:
        raise a.error("gripper_current_limit", f"{limit} mA is outside 1..2000")
    port = a.get("port", str)
    return RigArm(name, role, spec, port, baud, side, limit, virtual=port == VIRTUAL_PORT)


def _with_joint_overrides(arm: Fields, kind: ArmSpec) -> ArmSpec:
    """The kind, with any joint the arm's `joints:` lists given other motors (id, model, shadow)."""
    _known_joints(arm, "joints", kind.joint_names, f"a {kind.kind} has joints")
    given = arm.section("joints", kind.joint_names, {})
    overrides = {joint: parse_joint(given, joint) for joint in given.data}
    for j in kind.joints:  # an override replaces the joint's motors: a shadow it leaves out would go unchecked
        if j.name in overrides and j.shadow_id is not None and "shadow" not in given.data[j.name]:
            raise given.error(f"{j.name}.shadow", f"a {kind.kind}'s {j.name} has a shadow motor (ID {j.shadow_id}): "
                                                  f"give it here too (shadow: {j.shadow_id}), or define a kind "
                                                  "without it under kinds:")
    joints = tuple(overrides.get(j.name, j) for j in kind.joints)
    check_motor_ids(arm, joints)
    return dataclasses.replace(kind, joints=joints)


def _known_joints(fields: Fields, key: str, joints: tuple[str, ...], whose: str) -> None:
    """Every key of the mapping `key` is one of `joints` (refused naming the joints there are)."""
    given = fields.data.get(key)
    for joint in given if isinstance(given, dict) else ():
        if joint not in joints:
            raise fields.error(f"{key}.{joint}", f"unknown joint; {whose} {', '.join(joints)}")


def _parse_pairs(top: Fields, arms: tuple[RigArm, ...]) -> tuple[Pairing, ...]:
    roles = {a.name: a.role for a in arms}
    specs = {a.name: a.spec for a in arms}
    items = top.get("pairs", list, [])
    pairs, used = [], set()
    for i, item in enumerate(items):
        p = Fields(top.source, f"pairs[{i}]", item, ("leader", "follower", "offsets", "signs"))
        for key, role in (("leader", "leader"), ("follower", "follower")):
            arm = p.get(key, str)
            if roles.get(arm) != role:
                choices = [n for n, r in roles.items() if r == role]
                raise p.error(key, f"{arm!r} is not a {role} arm of this rig; the {role}s are {', '.join(choices)}")
        if p.data["follower"] in used:
            raise p.error("follower", f"{p.data['follower']} is already driven by another leader")
        used.add(p.data["follower"])
        leader, follower = specs[p.data["leader"]], specs[p.data["follower"]]
        if (leader.joint_names, leader.gripper) != (follower.joint_names, follower.gripper):
            raise p.error("leader", f"{p.data['leader']} is a {leader.kind} ({_joints_text(leader)}) and "
                                    f"{p.data['follower']} a {follower.kind} ({_joints_text(follower)}): a leader "
                                    "drives its follower joint for joint, so both need the same joints in the same "
                                    "order")
        arm_joints = tuple(j for j in follower.joint_names if j != follower.gripper)
        for key in ("offsets", "signs"):
            if isinstance(p.data.get(key), dict) and follower.gripper in p.data[key]:
                raise p.error(f"{key}.{follower.gripper}", "the gripper maps through its opening (0 closed .. 1 "
                                                           "open); offsets and signs are for the other joints")
            _known_joints(p, key, arm_joints, f"follower {p.data['follower']} ({follower.kind}) has joints")
        offsets = p.section("offsets", arm_joints, {})
        signs = p.section("signs", arm_joints, {})
        pairs.append(Pairing(
            p.data["leader"], p.data["follower"],
            {j: offsets.number(j, math.tau) for j in offsets.data},  # rad; more than a turn is a typo
            {j: signs.get(j, int, choices=(1, -1)) for j in signs.data},
        ))
    return tuple(pairs)


def _joints_text(spec: ArmSpec) -> str:
    return f"joints {', '.join(spec.joint_names)}; gripper {spec.gripper}"


def _parse_camera(cameras: Fields, name: str) -> CameraConfig:
    c = cameras.section(name, ("type", "device", "width", "height", "fps", "fourcc", "depth"))
    device = c.get("device", (str, int))
    kind = c.get("type", str, default_camera_type(str(device)), CAMERA_TYPES)
    if isinstance(device, int) and device < 0:
        raise c.error("device", f"camera index {device} is negative; give /dev/videoN, a /dev/v4l/by-id path or N >= 0")
    depth = c.get("depth", bool, False)
    if depth and not camera_kind(kind).depth:
        with_depth = ", ".join(t for t, k in CAMERA_KINDS.items() if k.depth)
        raise c.error("depth", f"a camera of type {kind} delivers no depth; the types that do: {with_depth}")
    fourcc = c.get("fourcc", str, "MJPG")
    if len(fourcc) != 4:
        raise c.error("fourcc", f"{fourcc!r} is not a four-character code such as MJPG or YUYV")
    values = {k: c.get(k, int, d) for k, d in (("width", 640), ("height", 480), ("fps", 30))}
    for k, v in values.items():
        if v <= 0:
            raise c.error(k, f"{v} must be positive")
    return CameraConfig(name, str(device), values["width"], values["height"], values["fps"], fourcc, kind, depth)
