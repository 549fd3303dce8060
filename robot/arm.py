"""An arm: named joints mapped to motors on one bus, in radians.

Tick 2048 is 0 rad and a turn is 4096 ticks (after calibration has set each
motor's homing offset and direction). What an arm is made of (joints, motors,
gripper, calibration poses) is its kind: data, in robot/arm_kinds.yaml or a rig
file. A joint may carry a shadow motor (ALOHA's shoulder and elbow) that follows
its primary through Secondary ID; the arm never commands a shadow, but reads it
every cycle and stops on a disagreement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np

from robot.dynamixel.bus import DynamixelBus, Motor
from robot.dynamixel.control_table import CENTER_TICK, TICKS_PER_TURN, get_model
from robot.dynamixel.errors import DynamixelError, ShadowMismatchError, TorqueReleaseError

RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_TURN
RAD_S_PER_VELOCITY_UNIT = 0.229 * 2.0 * math.pi / 60.0  # Present Velocity is in 0.229 rpm

MIN_GRIPPER_TRAVEL_RAD = 0.1  # open and closed closer than this would amplify any gripper noise


@dataclass(frozen=True)
class JointSpec:
    name: str
    motor_id: int
    model: str
    shadow_id: int | None = None  # a second motor on the same joint, set up with Secondary ID = motor_id
    shadow_reversed: bool = True  # mounted facing its primary, so it runs in reverse drive mode


class _ReadOnlyMappings:
    """For frozen dataclasses whose mapping fields must not change either (a kind is shared by every arm of that
    kind): they become read-only views, pickled as plain dicts (specs travel to the simulator's processes)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                object.__setattr__(self, f.name, MappingProxyType(dict(value)))

    def __reduce__(self) -> tuple:
        values = (getattr(self, f.name) for f in fields(self))
        return type(self), tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in values)


@dataclass(frozen=True)
class PoseJoint:
    """One joint in the two calibration poses: its angles (rad) and how a person gets it from one to the other."""

    reference: float
    second: float
    how: str


@dataclass(frozen=True)
class CalibrationPoses(_ReadOnlyMappings):
    """The two poses a person puts an arm in to calibrate it. Every joint but the gripper has an angle in each;
    the gripper is closed in the reference pose and fully open in the second."""

    reference_text: str  # the reference pose, described for a person
    joints: Mapping[str, PoseJoint] = field(hash=False)

    def reference_angles(self) -> dict[str, float]:
        return {joint: pose.reference for joint, pose in self.joints.items()}

    def second_angles(self) -> dict[str, float]:
        return {joint: pose.second for joint, pose in self.joints.items()}

    def reference_prompt(self) -> str:
        return f"REFERENCE POSE: {self.reference_text}"

    def second_prompt(self, gripper: str) -> str:
        lines = ["SECOND POSE, from the reference pose:"]
        lines += [f"  {joint}: {pose.how}" for joint, pose in self.joints.items()]
        lines.append(f"  {gripper}: fully OPEN")
        return "\n".join(lines)


@dataclass(frozen=True)
class ArmSpec(_ReadOnlyMappings):
    """What an arm kind says (robot/arm_kinds.yaml, or a rig file's own `kinds:`): its joints in order, which
    one is the gripper and the gripper's range, where it rests, its default limits and calibration poses."""

    kind: str
    joints: tuple[JointSpec, ...]  # in order: the state layout, calibration and the JointMap follow it
    gripper: str  # the gripper joint's name
    gripper_closed: float  # rad, as the factory-built (virtual) arm reads it
    gripper_open: float
    calibration: CalibrationPoses
    limits: Mapping[str, tuple[float, float]] = field(hash=False)  # rad, every joint but the gripper
    rest: Mapping[str, float] = field(default_factory=dict, hash=False)  # rad; joints not given rest at 0
    description: str = ""

    def motors(self) -> list[Motor]:
        """Every motor on the bus, primaries and shadows, in ID order."""
        out = []
        for j in self.joints:
            out.append(Motor(j.motor_id, get_model(j.model), j.name))
            if j.shadow_id is not None:
                out.append(Motor(j.shadow_id, get_model(j.model), f"{j.name}_shadow"))
        return sorted(out, key=lambda m: m.motor_id)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def gripper_index(self) -> int:
        return self.joint_names.index(self.gripper)

    def rest_angles(self) -> dict[str, float]:
        """Every joint but the gripper where the arm rests (rad)."""
        return {j: self.rest.get(j, 0.0) for j in self.joint_names if j != self.gripper}


def ticks_to_rad(ticks: np.ndarray) -> np.ndarray:
    return (np.asarray(ticks, dtype=np.float64) - CENTER_TICK) * RAD_PER_TICK


class NonFiniteCommandError(ValueError):
    """A NaN or infinite position was about to be converted into a motor command."""


def rad_to_ticks(radians: np.ndarray) -> np.ndarray:
    """Radians to ticks; refuses NaN and infinity, the last line of defence before a motor
    (NaN would become tick -2147483648)."""
    radians = np.asarray(radians, dtype=np.float64)
    if not np.all(np.isfinite(radians)):
        raise NonFiniteCommandError(f"non-finite position(s) {radians.tolist()} refused: nothing was written")
    return np.rint(radians / RAD_PER_TICK + CENTER_TICK).astype(np.int32)


@dataclass
class ArmState:
    """One reading of an arm, in joint order: rad, rad/s, and effort (mA, or % load on XL430)."""

    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    stamp: float


class Arm:
    def __init__(self, name: str, spec: ArmSpec, bus: DynamixelBus, *, shadow_tolerance_ticks: int = 60) -> None:
        self.name = name
        self.spec = spec
        self.bus = bus
        self.shadow_tolerance_ticks = shadow_tolerance_ticks
        index = {motor_id: i for i, motor_id in enumerate(bus.ids)}
        try:
            self._primary = np.array([index[j.motor_id] for j in spec.joints])
            self._shadows = [(j, index[j.motor_id], index[j.shadow_id]) for j in spec.joints
                            if j.shadow_id is not None]  # ID 0 is a motor too
        except KeyError as missing:
            raise ValueError(f"arm {name}: motor {missing} is not on the bus {bus.port_name}") from None
        self.primary_ids = [j.motor_id for j in spec.joints]
        models = [get_model(j.model) for j in spec.joints]
        self._effort_unit = np.array([m.effort_unit for m in models])

    @classmethod
    def on_port(cls, name: str, spec: ArmSpec, port: str, baud: int = 1_000_000, **bus_options: object) -> Arm:
        return cls(name, spec, DynamixelBus(port, spec.motors(), baud=baud, **bus_options))

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.spec.joint_names

    def open(self) -> Arm:
        self.bus.open()
        return self

    def close(self) -> None:
        self.bus.close()

    def __enter__(self) -> Arm:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def configure_shadows(self) -> None:
        """Set each shadow to follow its primary (Secondary ID) in its mounted direction. Torque off."""
        for j in self.spec.joints:
            if j.shadow_id is not None:
                self.bus.configure(j.shadow_id, secondary_id=j.motor_id, reverse=j.shadow_reversed)

    def read(self) -> ArmState:
        raw = self.bus.read_state()
        self._check_shadows(raw.position)
        p = self._primary
        return ArmState(
            ticks_to_rad(raw.position[p]),
            raw.velocity[p] * RAD_S_PER_VELOCITY_UNIT,
            raw.effort[p] * self._effort_unit,
            raw.stamp,
        )

    def _check_shadows(self, ticks: np.ndarray) -> None:
        for joint, primary, shadow in self._shadows:
            if abs(int(ticks[shadow]) - int(ticks[primary])) > self.shadow_tolerance_ticks:
                raise ShadowMismatchError(self.bus.port_name, joint.name, joint.motor_id, joint.shadow_id,
                                          int(ticks[primary]), int(ticks[shadow]), self.shadow_tolerance_ticks)

    def write_positions(self, radians: np.ndarray) -> None:
        """Goal positions for every joint (shadows follow through Secondary ID)."""
        radians = np.asarray(radians, dtype=np.float64)
        bad = [name for name, value in zip(self.joint_names, radians, strict=True) if not math.isfinite(value)]
        if bad:
            raise NonFiniteCommandError(f"arm {self.name} on {self.bus.port_name}: non-finite goal for "
                                        f"{', '.join(bad)} refused; nothing was written")
        self.bus.write_goal_positions(self.primary_ids, rad_to_ticks(radians))

    def hold(self) -> None:
        """Every motor keeps where it is: one group read and write, or motor by motor when that fails.

        Raises TorqueReleaseError naming the motors that could not be told (they may move to an old goal).
        """
        try:
            self.write_positions(self.read().position)
            return
        except (DynamixelError, OSError):  # OSError: the adapter itself failed (unplugged)
            pass
        failures = self.bus.hold_each(self.primary_ids)
        if failures:
            raise TorqueReleaseError(self.bus.port_name, failures, command="hold")

    def set_torque(self, on: bool) -> None:
        """Motor by motor, shadows included (TorqueReleaseError names any that did not take it)."""
        self.bus.set_torque(on)
