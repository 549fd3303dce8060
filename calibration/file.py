"""One calibration file per arm: each motor's homing offset and direction, joint limits, gripper range.

The file is the source of truth: connecting to an arm writes its homing offsets
and drive modes into the motors (only where they differ, to spare the EEPROM),
so an interrupted calibration or a motor swapped from another arm cannot leave a
joint silently offset or reversed. The file records the arm, its kind and the
motor IDs and models it was made for, and loading refuses an arm that differs.
Every field is checked on load with its exact type ("false" is not false) and a
sane range (finite, within a turn, limits ordered), since its values reach the motors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot.arm import MIN_GRIPPER_TRAVEL_RAD, ArmSpec
from robot.arm_kinds import parse_limit
from robot.dynamixel.bus import DynamixelBus
from robot.dynamixel.control_table import TICKS_PER_TURN, model_name
from robot.dynamixel.errors import NoResponseError
from robot.rig import NAME, Fields

FORMAT = "tandem-calibration"
VERSION = 1
MAX_ANGLE_RAD = math.tau  # limits and gripper positions: more than a turn from zero is a broken file
MAX_HOMING_OFFSET = TICKS_PER_TURN  # the procedure never sets more than a turn
_TOP_FIELDS = ("format", "version", "arm", "kind", "motors", "limits", "gripper_closed", "gripper_open", "created")
_MOTOR_FIELDS = ("motor_id", "model", "joint", "homing_offset", "reverse")


class CalibrationError(ValueError):
    """A calibration file that cannot be used: unreadable, for other motors, or a failed procedure."""


def _error(path: str, where: str, problem: str) -> CalibrationError:
    return CalibrationError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


class _NonFinite:
    """What NaN/Infinity (which Python's json accepts) parse to, so that the field holding one is refused."""

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return f"{self.literal} (JSON numbers are finite)"


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise _DuplicateKey(k)
    return dict(pairs)


@dataclass(frozen=True)
class MotorCalibration:
    motor_id: int
    model: str
    joint: str  # "shoulder", "shoulder_shadow", ...
    homing_offset: int
    reverse: bool


@dataclass(frozen=True)
class ArmCalibration:
    arm: str
    kind: str
    motors: tuple[MotorCalibration, ...]
    limits: dict[str, tuple[float, float]]  # joint -> (min, max) rad, gripper included
    gripper_closed: float  # rad, as the calibrated motor reads it
    gripper_open: float
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    version: int = VERSION

    # -- the gripper's normalized value: 0 closed .. 1 open --------------------------------------
    def gripper_normalized(self, radians: float | np.ndarray) -> float | np.ndarray:
        return (radians - self.gripper_closed) / (self.gripper_open - self.gripper_closed)

    def gripper_radians(self, normalized: float | np.ndarray) -> float | np.ndarray:
        return self.gripper_closed + normalized * (self.gripper_open - self.gripper_closed)

    def limit_arrays(self, joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.limits[j][0] for j in joint_names])
        hi = np.array([self.limits[j][1] for j in joint_names])
        return lo, hi

    # -- files ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["motors"] = [asdict(m) for m in self.motors]
        data["limits"] = {j: list(v) for j, v in self.limits.items()}
        return {"format": FORMAT, **data}

    def digest(self) -> str:
        """Identifies what the motors were set to (creation time excluded), for dataset metadata."""
        data = self.to_json()
        data.pop("created")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: Path) -> None:
        """Atomically: a crash mid-write leaves the previous file, never half of one. A calibration that
        loading would refuse (NaN, limits out of order, ...) is refused here, and nothing is written."""
        data = self.to_json()
        self.from_json(json.loads(json.dumps(data), parse_constant=_NonFinite), str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies: shared as the episodes
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ArmCalibration:
        try:
            text = Path(path).read_bytes().decode("utf-8")
            data = json.loads(text, parse_constant=_NonFinite, object_pairs_hook=_unique_keys)
        except FileNotFoundError:
            raise CalibrationError(f"{path}: no such calibration file") from None
        except UnicodeDecodeError as exc:
            raise CalibrationError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                   f"{exc.start}); restore it or re-run tandem-calibrate") from None
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc})") from None
        except _DuplicateKey as exc:
            raise CalibrationError(f"{path}: key {exc.args[0]!r} is given twice in one object; keep one") from None
        return cls.from_json(data, str(path))

    @classmethod
    def from_json(cls, data: Any, path: str) -> ArmCalibration:
        """The calibration a file's parsed JSON holds, every field checked; errors name `path` and the field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{path}: not a tandem calibration file (no \"format\": \"{FORMAT}\")")
        version = data.get("version")
        if type(version) is not int or version != VERSION:
            raise CalibrationError(f"{path}: calibration version {version!r} is not supported "
                                   f"(this tandem reads version {VERSION}); re-run tandem-calibrate")
        return cls._parse(Fields(path, "", data, _TOP_FIELDS, _error))

    @classmethod
    def _parse(cls, top: Fields) -> ArmCalibration:
        arm = _name(top, "arm")
        kind = top.get("kind", str)
        motors = tuple(_parse_motor(Fields(top.source, f"motors[{i}]", m, _MOTOR_FIELDS, _error))
                       for i, m in enumerate(top.get("motors", list)))
        if not motors:
            raise top.error("motors", "no motors: re-run tandem-calibrate")
        for key, what in (("motor_id", "motor"), ("joint", "joint")):
            values = [getattr(m, key) for m in motors]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise top.error("motors", f"{what}(s) {', '.join(map(str, twice))} appear more than once")
        joints = tuple(dict.fromkeys(m.joint.removesuffix("_shadow") for m in motors))
        limits_section = top.section("limits", joints)
        missing = [j for j in joints if j not in limits_section.data]
        if missing:
            raise limits_section.error(missing[0], f"no limits for joint(s) {', '.join(missing)} of the motors")
        limits = {j: parse_limit(limits_section, j) for j in joints}
        closed = top.number("gripper_closed", MAX_ANGLE_RAD)
        open_ = top.number("gripper_open", MAX_ANGLE_RAD)
        if abs(open_ - closed) < MIN_GRIPPER_TRAVEL_RAD:
            raise top.error("gripper_open", f"{open_} rad is within {MIN_GRIPPER_TRAVEL_RAD} rad of gripper_closed "
                                            f"({closed}): re-run tandem-calibrate and open the gripper fully")
        return cls(arm, kind, motors, limits, closed, open_, top.get("created", str, ""), VERSION)

    # -- checks against the rig and the live motors ------------------------------------------------
    def check_spec(self, spec: ArmSpec, source: str, *, arm: str) -> None:
        """The file is arm `arm`'s, and the rig's motors and joints for that arm are the ones it was made for."""
        if self.arm != arm:
            raise CalibrationError(f"{source}: arm: the file is the calibration of arm {self.arm}, not of arm {arm}; "
                                   f"copy the right file or re-run tandem-calibrate --arm {arm}")
        want = {(m.motor_id, m.model.name, m.joint) for m in spec.motors()}
        have = {(m.motor_id, m.model, m.joint) for m in self.motors}
        if want != have:
            lines = [f"  rig has motor {i} {model} ({joint}), the file does not" for i, model, joint in
                     sorted(want - have)]
            lines += [f"  file has motor {i} {model} ({joint}), the rig does not" for i, model, joint in
                      sorted(have - want)]
            raise CalibrationError(f"{source}: motors: made for other motors than arm {arm} has now:\n"
                                   + "\n".join(lines) + f"\nRe-run tandem-calibrate --arm {arm}.")
        if self.kind != spec.kind:
            raise CalibrationError(f"{source}: kind: made for a {self.kind} arm, but arm {arm} is a {spec.kind} "
                                   f"in the rig; re-run tandem-calibrate --arm {arm}")
        if set(self.limits) != set(spec.joint_names):
            raise CalibrationError(f"{source}: limits: has joints {', '.join(self.limits)}, arm {arm} has "
                                   f"{', '.join(spec.joint_names)}; re-run tandem-calibrate --arm {arm}")

    def check_live(self, bus: DynamixelBus, source: str) -> None:
        """Every motor in the file answers with the model the file names."""
        problems = []
        for m in self.motors:
            try:
                number = bus.ping(m.motor_id)
            except NoResponseError:
                problems.append(f"  motor {m.motor_id} ({m.joint}) does not answer")
                continue
            if model_name(number) != m.model:
                problems.append(f"  motor {m.motor_id} ({m.joint}) is a {model_name(number)}, the file says {m.model}")
        if problems:
            raise CalibrationError(f"{source}: the motors on {bus.port_name} are not the ones arm {self.arm} "
                                   "was calibrated with:\n" + "\n".join(problems)
                                   + f"\nRe-run tandem-calibrate --arm {self.arm} if the motors were changed.")

    def apply(self, bus: DynamixelBus) -> list[int]:
        """Write homing offsets and drive modes where the motors differ; returns the IDs rewritten.

        Primaries before shadows: a write to a primary also reaches its shadow
        (Secondary ID), so each shadow is checked after its primary was written.
        """
        changed = []
        ordered = sorted(self.motors, key=lambda m: m.joint.endswith("_shadow"))
        for m in ordered:
            reverse = bool(bus.read(m.motor_id, "Drive Mode") & 1)
            if bus.read(m.motor_id, "Homing Offset") == m.homing_offset and reverse == m.reverse:
                continue
            bus.write(m.motor_id, "Torque Enable", 0)
            bus.configure(m.motor_id, reverse=m.reverse, homing_offset=m.homing_offset)
            changed.append(m.motor_id)
        return changed


def _name(fields: Fields, key: str) -> str:
    value = fields.get(key, str)
    if not NAME.fullmatch(value):
        raise fields.error(key, f"{value!r} is not a name (letters, digits and _, not starting with a digit)")
    return value


def _parse_motor(m: Fields) -> MotorCalibration:
    motor_id = m.get("motor_id", int)
    if not 0 <= motor_id <= 252:
        raise m.error("motor_id", f"motor ID {motor_id} is outside 0..252")
    homing = m.get("homing_offset", int)
    if not -MAX_HOMING_OFFSET <= homing <= MAX_HOMING_OFFSET:
        raise m.error("homing_offset", f"{homing} ticks is more than a turn ({MAX_HOMING_OFFSET}); "
                                       "re-run tandem-calibrate")
    return MotorCalibration(motor_id, m.get("model", str), _name(m, "joint"), homing, m.get("reverse", bool))


def calibration_path(calibration_dir: Path, arm: str) -> Path:
    return Path(calibration_dir) / f"{arm}.json"


def gripper_limits(closed: float, open_: float) -> tuple[float, float]:
    return (min(closed, open_), max(closed, open_))

