"""One calibration file per arm: each motor's homing offset and direction, joint limits, gripper range.

The file is the source of truth: connecting to an arm writes its homing offsets
and drive modes into the motors (only where they differ, to spare the EEPROM),
so an interrupted calibration or a motor swapped from another arm cannot leave a
joint silently offset or reversed. The file records the motor IDs and models it
was made for, and loading refuses an arm whose motors differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot.arm import ArmSpec
from robot.dynamixel.bus import DynamixelBus
from robot.dynamixel.control_table import model_name
from robot.dynamixel.errors import NoResponseError

FORMAT = "tandem-calibration"
VERSION = 1


class CalibrationError(ValueError):
    """A calibration file that cannot be used: unreadable, for other motors, or a failed procedure."""


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
        """Atomically: a crash mid-write leaves the previous file, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ArmCalibration:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise CalibrationError(f"{path}: no such calibration file") from None
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{path}: not a tandem calibration file (no \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise CalibrationError(f"{path}: calibration version {data.get('version')} is not supported "
                                   f"(this tandem reads version {VERSION}); re-run tandem-calibrate")
        try:
            motors = tuple(MotorCalibration(int(m["motor_id"]), str(m["model"]), str(m["joint"]),
                                            int(m["homing_offset"]), bool(m["reverse"])) for m in data["motors"])
            limits = {str(j): (float(v[0]), float(v[1])) for j, v in data["limits"].items()}
            return cls(str(data["arm"]), str(data["kind"]), motors, limits, float(data["gripper_closed"]),
                       float(data["gripper_open"]), str(data.get("created", "")), VERSION)
        except KeyError as exc:
            raise CalibrationError(f"{path}: field {exc} is missing") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise CalibrationError(f"{path}: a field has the wrong type ({exc})") from None

    # -- checks against the rig and the live motors ------------------------------------------------
    def check_spec(self, spec: ArmSpec, source: str) -> None:
        """The rig's motors for this arm are the ones the file was made for."""
        want = {(m.motor_id, m.model.name, m.joint) for m in spec.motors()}
        have = {(m.motor_id, m.model, m.joint) for m in self.motors}
        if want != have:
            lines = [f"  rig has motor {i} {model} ({joint}), the file does not" for i, model, joint in
                     sorted(want - have)]
            lines += [f"  file has motor {i} {model} ({joint}), the rig does not" for i, model, joint in
                      sorted(have - want)]
            raise CalibrationError(f"{source}: made for other motors than arm {self.arm} has now:\n"
                                   + "\n".join(lines) + f"\nRe-run tandem-calibrate --arm {self.arm}.")
        missing = [j for j in spec.joint_names if j not in self.limits]
        if missing:
            raise CalibrationError(f"{source}: no limits for joint(s) {', '.join(missing)}")
        if self.gripper_open == self.gripper_closed:
            raise CalibrationError(f"{source}: gripper open and closed positions are equal")

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


def calibration_path(calibration_dir: Path, arm: str) -> Path:
    return Path(calibration_dir) / f"{arm}.json"


def gripper_limits(closed: float, open_: float) -> tuple[float, float]:
    return (min(closed, open_), max(closed, open_))

