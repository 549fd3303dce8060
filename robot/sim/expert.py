"""A reactive scripted expert for the simulated tasks: what a skilled person does with the leaders.

Every control step it looks at the world as it is (object poses, contacts,
gripper openings), picks the task phase that state calls for (reach, grasp,
lift, hand over / insert, release), sets a grasp-point goal per arm, moves a
commanded point toward it at a bounded speed and turns that into joint targets
with inverse kinematics. Nothing depends on how the episode started, so it can
take over from whatever state a failing policy left behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot.sim.ik import ArmIK, frame
from robot.sim.world import CONTROL_DT, SIDES, World, gripper_normalized_from_angle

OPEN, CLOSED = 1.0, 0.0
HOLDING_BELOW = 0.75  # measured gripper opening (0..1) under which a closed gripper holds what it touches (cube: 0.6)
SPEED = 0.45  # m/s of the commanded grasp point
JOINT_SPEED = 3.0  # rad/s at most per joint
UP = np.array([0.0, 0.0, 1.0])
TABLE_Z = 0.0


@dataclass
class Goal:
    position: np.ndarray
    rotation: np.ndarray
    gripper: float  # 0 closed .. 1 open


def pick_rotation(base: np.ndarray, target: np.ndarray, pitch_down: float = np.deg2rad(60)) -> np.ndarray:
    """Fingers pointing down at `pitch_down` from horizontal, facing away from the arm's base."""
    h = target[:2] - base[:2]
    h = np.array([*h / np.linalg.norm(h), 0.0])
    approach = np.cos(pitch_down) * h - np.sin(pitch_down) * UP
    return frame(approach, np.cross(UP, h))


class Contacts:
    def __init__(self, world: World) -> None:
        model, data = world.model, world.data
        self.pairs = set()
        for i in range(data.ncon):
            c = data.contact[i]
            self.pairs.add(frozenset((model.geom(c.geom1).name, model.geom(c.geom2).name)))

    def touching(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.pairs

    def fingers_touch(self, side: str, geom: str) -> bool:
        return any(self.touching(geom, f"vx300s_{side}/10_{f}_gripper_finger") for f in ("left", "right"))


class Expert:
    """Joint targets for both follower arms, from the world's current state."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.ik = {side: ArmIK(world.model, side) for side in SIDES}
        self.base = {side: world.data.xpos[world.model.body(f"vx300s_{side}").id].copy() for side in SIDES}
        self.phase = ""
        self.reset()

    def reset(self) -> None:
        """Start from the world as it is now (a new episode, or taking over mid-episode)."""
        qpos = self.world.data.qpos
        self.q = {side: qpos[self.ik[side].qpos_index].copy() for side in SIDES}
        self.point = {side: self.ik[side].pose(qpos)[0] for side in SIDES}

    def gripper_opening(self, side: str) -> float:
        return gripper_normalized_from_angle(self.world.read_arm(side).position[6])

    def grasp_point(self, side: str) -> np.ndarray:
        return self.ik[side].pose(self.world.data.qpos)[0]

    def act(self) -> dict[str, tuple[np.ndarray, float]]:
        """Per arm: 6 joint targets (rad) and the gripper target (0 closed .. 1 open)."""
        goals = self.plan(Contacts(self.world))
        out = {}
        qpos = self.world.data.qpos.copy()
        for side, goal in goals.items():
            gap = goal.position - self.point[side]
            step = SPEED * CONTROL_DT
            self.point[side] = self.point[side] + gap * min(1.0, step / max(np.linalg.norm(gap), 1e-9))
            q = self.ik[side].solve(qpos, self.q[side], self.point[side], goal.rotation)
            self.q[side] = self.q[side] + np.clip(q - self.q[side], -JOINT_SPEED * CONTROL_DT,
                                                  JOINT_SPEED * CONTROL_DT)
            out[side] = (self.q[side].copy(), goal.gripper)
        return out

    def plan(self, contacts: Contacts) -> dict[str, Goal]:
        if self.world.task_name == "transfer_cube":
            return self._transfer_cube(contacts)
        return self._insertion(contacts)

    # -- transfer_cube: the right arm picks the cube, hands it to the left arm in mid-air -----------
    MEET = np.array([0.0, 0.5, 0.25])

    def _transfer_cube(self, contacts: Contacts) -> dict[str, Goal]:
        cube = self.world.object_poses()["box"][:3]
        right, left = self.grasp_point("right"), self.grasp_point("left")
        right_touch, left_touch = contacts.fingers_touch("right", "red_box"), contacts.fingers_touch("left", "red_box")
        on_table = contacts.touching("red_box", "table")
        right_holds = right_touch and self.gripper_opening("right") < HOLDING_BELOW
        left_holds = left_touch and self.gripper_opening("left") < HOLDING_BELOW
        right_rot = pick_rotation(self.base["right"], cube if not right_holds else self.MEET)
        left_rot = frame(np.array([1.0, 0, 0]), UP)
        pre_meet = self.MEET + np.array([-0.15, 0, 0])
        left_wait = Goal(pre_meet, left_rot, OPEN)

        if left_holds and not on_table:
            self.phase = "release"
            back = np.array([0.25, 0.5, 0.3])  # out of the way, above the table
            return {"right": Goal(back, right_rot, OPEN), "left": Goal(self.point["left"], left_rot, CLOSED)}
        if right_holds and not on_table:
            self.phase = "hand over"
            right_goal = Goal(right + (self.MEET - cube), right_rot, CLOSED)
            if np.linalg.norm(cube - self.MEET) > 0.03:
                return {"right": right_goal, "left": left_wait}
            into = cube + np.array([-0.025, 0, 0])
            lined_up = np.linalg.norm((left - into)[1:]) < 0.015
            close = np.linalg.norm(left - into) < 0.012
            left_goal = Goal(into if lined_up else np.array([left[0], *into[1:]]), left_rot,
                             CLOSED if close or left_touch else OPEN)
            if left_goal.gripper == OPEN and not lined_up:
                left_goal.position = np.array([min(left[0], into[0] - 0.06), *into[1:]])
            return {"right": right_goal, "left": left_goal}
        grip_at = cube + np.array([0, 0, 0.012])  # a little above centre: the fingertips clear the table
        near = np.linalg.norm((right - grip_at)[:2]) < 0.012 and abs(right[2] - grip_at[2]) < 0.012
        if right_holds:
            self.phase = "lift"
            return {"right": Goal(cube + np.array([0, 0, 0.12]), right_rot, CLOSED), "left": left_wait}
        if near or (right_touch and self.gripper_opening("right") < 0.9):
            self.phase = "grasp"
            return {"right": Goal(grip_at, right_rot, CLOSED), "left": left_wait}
        self.phase = "reach"
        above = grip_at + np.array([0, 0, 0.08])
        over = np.linalg.norm((right - grip_at)[:2]) < 0.012
        return {"right": Goal(grip_at if over else above, right_rot, OPEN), "left": left_wait}

    # -- insertion: each arm picks its part, they meet in the air, the peg goes into the socket ----
    def _insertion(self, contacts: Contacts) -> dict[str, Goal]:
        raise NotImplementedError
