"""The simulated rig's hardware, bound to the world: four virtual Dynamixel buses, four cameras, an operator.

Followers: each torqued motor's Goal Position becomes its joint's actuator
target (the gripper through ALOHA's conversion); after each control step the
simulated joint positions, velocities and forces become the motors' Present
registers. Leaders are not in the scene: the scripted operator moves them, as a
person's hand would, and a leader with torque on follows its own goal (that is
how deploy makes leaders track followers). Motor time is world time, so
everything runs in lockstep with the simulation.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from robot.arm import RAD_PER_TICK
from robot.arm_kinds import ALOHA_FOLLOWER, builtin_kinds
from robot.dynamixel.control_table import CENTER_TICK
from robot.rig import Rig
from robot.sim.expert import Contacts, Expert
from robot.sim.gate import Gate, GateInput, drift, parse_gate
from robot.sim.hand import ideal_mounting, pose_arm
from robot.sim.perturbation import ARM_JOINTS, SECONDS, Perturbation
from robot.sim.render_style import DEFAULT_RENDER
from robot.sim.shared_frames import SharedFrame
from robot.sim.tasks import sim_task
from robot.sim.virtual_arm import gripper_angle, virtual_arm_bus
from robot.sim.virtual_bus import VirtualBus
from robot.sim.world import World, gripper_normalized_from_angle

CURRENT_UNITS_PER_NM = 1 / (2.3 * 0.00269)  # X-series: ~2.3 N·m per A, Present Current in 2.69 mA units
# gated: the expert takes the leaders when its gate rule says so; labels: it only says what it would command
OPERATOR_MODES = ("expert", "gated", "labels", "off")
# labels mode: an expert whose plan is this far from where the policy took the arms plans again from there;
# its own commands lead its followers by at most ~0.16 rad (recorded demos)
LABEL_REANCHOR_RAD = 0.3


@dataclass
class WorldStatus:
    time: float
    steps: int
    seed: int | None
    reward: int
    max_reward: int
    success: bool
    phase: str  # the expert's task phase, "" when it is off
    pedal: bool  # the scripted operator's pedal (gated mode)
    presses: int
    objects: dict[str, list[float]]  # position and quaternion of each task object
    joints: dict[str, list[float]]  # per side: the follower's 6 joints and gripper motor angle, rad


def check_world_arms(rig: Rig) -> None:
    """The world's arms are ALOHA's ViperX followers: a virtual follower of another kind cannot be simulated."""
    aloha = builtin_kinds()[ALOHA_FOLLOWER]
    for arm in rig.arms:
        if arm.role == "follower" and arm.virtual and arm.spec.joint_names != aloha.joint_names:
            raise ValueError(f"{rig.source}: follower {arm.name} is a {arm.spec.kind} (joints "
                             f"{', '.join(arm.spec.joint_names)}); the simulated world holds {aloha.description} "
                             f"arms ({', '.join(aloha.joint_names)}): run simulated tasks on such a rig, or this "
                             "rig's virtual arms without a task")


class WorldRig:
    """Owns the world, the buses and the operator; one thread calls its methods (the process's server)."""

    def __init__(self, rig: Rig, task: str, stack: ExitStack, *, image_size: tuple[int, int] = (480, 640),
                 render: str = DEFAULT_RENDER,
                 frames: dict[str, str] | None = None, operator: str = "expert") -> None:
        if operator not in OPERATOR_MODES:
            raise ValueError(f"operator {operator!r} is not one of {', '.join(OPERATOR_MODES)}")
        check_world_arms(rig)
        self.world = World(task, image_size=image_size, render=render)
        stack.callback(self.world.close)
        self.followers = [a for a in rig.arms if a.role == "follower" and a.virtual]
        self.mountings = {a.name: ideal_mounting(a.spec) for a in self.followers}
        clock = lambda: self.world.time  # noqa: E731 - the motors' time is the world's
        self.buses: dict[str, VirtualBus] = {
            a.name: stack.enter_context(virtual_arm_bus(a.name, a.spec, baud=a.baud, clock=clock))
            for a in rig.arms if a.virtual
        }
        self.leader_of = {p.follower: (rig.arm(p.leader), p) for p in rig.pairs}
        self.slots = {cam: SharedFrame(name, *image_size) for cam, name in (frames or {}).items()}
        stack.callback(lambda: [slot.close() for slot in self.slots.values()])
        self.expert = Expert(self.world)
        self.operator = operator
        self._gate_spec = "never"
        self.gate: Gate = parse_gate(self._gate_spec)
        self.labels: dict[str, tuple[np.ndarray, float]] | None = None
        self.perturbation: Perturbation | None = None  # this episode's pushes
        self._perturbation_next: Perturbation | None = None  # from the next reset on
        self.steps = 0
        self.reset(0)

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, seed: int) -> WorldStatus:
        """New episode: the world from this seed; followers read the new pose and hold it; leaders match."""
        self.world.reset(seed)
        self.expert.reset()
        self.gate = parse_gate(self._gate_spec)  # a fresh count of presses
        self.perturbation = self._perturbation_next  # pushes drawn from this episode's seed, or none
        if self.perturbation is not None:
            self.perturbation.reset(seed)
        self.steps = 0
        self._show_followers()
        for arm in self.followers:
            self.buses[arm.name].hold_here()
        self._pose_leaders(None)
        self._label_step()
        self._render()
        return self.status()

    def advance(self, t: float) -> float:
        """Run control steps until world time reaches `t` (within half a physics step); returns the time."""
        ran = False
        for bus in self.buses.values():
            bus.settle()  # the host's last goal writes are in the motors before the world moves
        while self.world.time < t - 0.5 * self.world.model.opt.timestep:
            self._apply_follower_goals()
            self.world.step()
            self.steps += 1
            self._show_followers()
            if self.operator == "expert":
                self._pose_leaders(self.expert.act())
            elif self.operator == "gated":
                self._gated_step()
            elif self.operator == "labels":
                self._label_step()
            ran = True
        if ran:
            self._render()
        return self.world.time

    def set_operator(self, mode: str) -> None:
        if mode not in OPERATOR_MODES:
            raise ValueError(f"operator {mode!r} is not one of {', '.join(OPERATOR_MODES)}")
        if mode == self.operator:
            return
        if mode in ("expert", "labels"):
            self.expert.reset()  # take over from the state as it is
        self.operator = mode
        self._label_step()

    def set_gate(self, spec: str) -> None:
        """The rule for gated mode (see robot/sim/gate.py); starts afresh with each episode."""
        self.gate = parse_gate(spec)
        self._gate_spec = spec

    def set_perturbation(self, std_rad: float, seconds: float = SECONDS) -> None:
        """Push the followers' joints off their goals by a smooth random offset from the next episode on, while
        the scripted operator drives (robot/sim/perturbation.py); std 0: no pushes."""
        perturbation = Perturbation(std_rad, seconds)  # checks the numbers, 0 included
        self._perturbation_next = perturbation if std_rad > 0 else None

    def pedal(self) -> bool:
        """The scripted operator's pedal (gated mode): a cheap poll for every control step."""
        return self.operator == "gated" and self.gate.pedal

    def label(self) -> dict[str, tuple[list[float], float]] | None:
        """Labels mode: per side, the 6 joint targets and gripper opening the expert would command from the
        state the followers show now (None in other modes)."""
        if self.labels is None:
            return None
        return {side: (joints.tolist(), float(opening)) for side, (joints, opening) in self.labels.items()}

    def status(self) -> WorldStatus:
        w = self.world
        return WorldStatus(w.time, self.steps, w.seed, w.reward(), w.max_reward, w.success,
                           self.expert.phase if self.operator != "off" else "", self.gate.pedal, self.gate.presses,
                           {k: v.tolist() for k, v in w.object_poses().items()},
                           {side: w.read_arm(side).position.tolist() for side in ("left", "right")})

    def _gated_step(self) -> None:
        """The expert plans along (a shadow of the policy); its gate decides when it takes the leaders."""
        targets = self.expert.act()
        contacts = Contacts(self.world)
        obj = sim_task(self.world.task_name).main_object
        gap = self._drift(targets)
        was_down = self.gate.pedal
        down = self.gate.update(GateInput(
            self.world.reward(), self.world.max_reward, self.world.success, gap,
            object_lifted=not contacts.touching(obj, "table"),
            object_held=any(contacts.fingers_touch(side, obj) for side in ("left", "right"))))
        if down and not was_down:
            self.expert.reset()  # take over from the state the policy left
            targets = self.expert.act()
        if down:
            self._pose_leaders(targets)
        elif was_down:
            self.expert.reset()  # handed back: the shadow starts again from here

    def _label_step(self) -> None:
        """Plain DAgger's expert: plans along from the state the policy left, never touches the leaders."""
        if self.operator != "labels":
            self.labels = None
            return
        targets = self.expert.act()
        if self._drift(targets) > LABEL_REANCHOR_RAD:
            self.expert.reset()  # the policy took the arms elsewhere: plan again from where they are
            targets = self.expert.act()
        self.labels = targets

    def _drift(self, targets: dict[str, tuple[np.ndarray, float]]) -> float:
        return max(drift(targets[a.side][0], self.world.read_arm(a.side).position[:6]) for a in self.followers)

    # -- followers <-> world -----------------------------------------------------------------------
    def _apply_follower_goals(self) -> None:
        pushed = self.perturbation is not None and self.operator == "expert"  # only the scripted operator's demos
        pushes = self.perturbation.step(self.expert.free) if pushed else None
        for arm in self.followers:
            goals = self.buses[arm.name].goal_shafts()
            reading = self.world.read_arm(arm.side)
            angles = reading.position.copy()  # a joint with torque off stays where it is
            for i, joint in enumerate(arm.spec.joints):
                shaft = goals[joint.motor_id]
                if shaft is not None:
                    angles[i] = (shaft - CENTER_TICK) * RAD_PER_TICK
                    if pushes is not None and i < ARM_JOINTS:
                        angles[i] += pushes[arm.side][i]
            self.world.set_targets(arm.side, angles[:6], angles[6])

    def _show_followers(self) -> None:
        for arm in self.followers:
            reading = self.world.read_arm(arm.side)
            mounting = self.mountings[arm.name]
            motions = {}
            for i, joint in enumerate(arm.spec.joints):
                for motor_id in (joint.motor_id, joint.shadow_id):
                    if motor_id is None:
                        continue
                    sign = mounting[motor_id].sign
                    motions[motor_id] = (CENTER_TICK + sign * reading.position[i] / RAD_PER_TICK,
                                         sign * reading.velocity[i] / RAD_PER_TICK,
                                         sign * reading.effort[i] * CURRENT_UNITS_PER_NM)
            self.buses[arm.name].drive(motions)

    # -- the operator's hands on the leaders -------------------------------------------------------
    def _pose_leaders(self, targets: dict[str, tuple[np.ndarray, float]] | None) -> None:
        """Put each leader where its follower should go: the expert's targets, or (None) the follower's pose."""
        for follower in self.followers:
            if follower.name not in self.leader_of:
                continue
            leader, pairing = self.leader_of[follower.name]
            if targets is None:
                reading = self.world.read_arm(follower.side)
                joints, opening = reading.position[:6], gripper_normalized_from_angle(reading.position[6])
            else:
                joints, opening = targets[follower.side]
            pose = {}
            for j, angle in zip(follower.spec.joint_names[:6], joints, strict=True):
                pose[j] = (angle - pairing.offsets.get(j, 0.0)) * pairing.signs.get(j, 1)
            pose[leader.spec.gripper] = gripper_angle(leader.spec, float(np.clip(opening, 0.0, 1.0)))
            if leader.name in self.buses:
                pose_arm(self.buses[leader.name], leader.spec, pose)

    # -- cameras -----------------------------------------------------------------------------------
    def _render(self) -> None:
        for cam, slot in self.slots.items():
            slot.write(self.world.render(cam), self.world.time)

