"""A reactive scripted expert for the simulated tasks: what a skilled person does with the leaders.

Every control step it looks at the world as it is (object poses, contacts,
gripper openings), picks the task phase that state calls for (reach, grasp,
lift, hand over / insert, release), sets a grasp-point goal per arm, moves a
commanded point toward it at a bounded speed and turns that into joint targets
with inverse kinematics. Nothing depends on how the episode started, so it can
take over from whatever state a failing policy left behind. What it remembers
between steps, until reset(): which parts its grippers held a moment ago (finger
contact breaks for a step when a held part is pressed on something), and that the
task is done (a finished insertion is held to the episode's end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot.sim.ik import ArmIK, frame
from robot.sim.world import CONTROL_DT, SIDES, World, gripper_normalized_from_angle

OPEN, CLOSED = 1.0, 0.0
HOLDING_BELOW = 0.85  # measured gripper opening (0..1) under which a closed gripper holds what it touches (cube: 0.6)
GRIP_MEMORY = 5  # steps a closed gripper still counts as holding a part after its fingers last touched it
SPEED = 0.45  # m/s of the commanded grasp point
JOINT_SPEED = 3.0  # rad/s at most per joint
UP = np.array([0.0, 0.0, 1.0])
TABLE_Z = 0.0
PLANS = {"transfer_cube": "_transfer_cube", "insertion": "_insertion"}  # task -> the Expert method that plans it


@dataclass
class Goal:
    position: np.ndarray
    rotation: np.ndarray
    gripper: float  # 0 closed .. 1 open
    speed: float = SPEED  # m/s toward it


def pick_rotation(base: np.ndarray, target: np.ndarray, pitch_down: float = np.deg2rad(60),
                  yaw: float | None = None) -> np.ndarray:
    """Fingers pointing down at `pitch_down` from horizontal, facing away from the arm's base.

    With `yaw` (an object's heading), the approach turns to face the object's side
    nearest that direction, so the jaws close on two parallel faces.
    """
    h = target[:2] - base[:2]
    h = np.array([*h / np.linalg.norm(h), 0.0])
    if yaw is not None:
        sides = [np.array([np.cos(yaw + k * np.pi / 2), np.sin(yaw + k * np.pi / 2), 0.0]) for k in range(4)]
        h = max(sides, key=lambda d: d @ h)
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
        if world.task_name not in PLANS:  # never plan another task's moves for it
            raise ValueError(f"the scripted expert has no plan for task {world.task_name!r}; it plans "
                             f"{', '.join(PLANS)}")
        self.world = world
        self.ik = {side: ArmIK(world.model, side) for side in SIDES}
        self.base = {side: world.data.xpos[world.model.body(f"vx300s_{side}").id].copy() for side in SIDES}
        self.phase = ""
        self.reset()

    def reset(self) -> None:
        """Start from the world as it is now (a new episode, or taking over mid-episode): no part counts as held
        until touched, and a finished task is held again only once the world shows it finished."""
        qpos = self.world.data.qpos
        self.q = {side: qpos[self.ik[side].qpos_index].copy() for side in SIDES}
        self.point = {side: self.ik[side].pose(qpos)[0] for side in SIDES}
        self.steps = 0
        self.touched_at: dict[tuple[str, tuple[str, ...]], int] = {}  # (arm, part's geoms) -> last step touched
        self.rotation = {side: self.ik[side].pose(qpos)[1] for side in SIDES}  # last commanded gripper rotation
        self.hold: dict[str, Goal] | None = None  # the task is done: these goals until reset
        self.free = {side: False for side in SIDES}  # per arm: moving freely now, where millimetres do not matter

    def gripper_opening(self, side: str) -> float:
        return gripper_normalized_from_angle(self.world.read_arm(side).position[6])

    def grasp_point(self, side: str) -> np.ndarray:
        return self.ik[side].pose(self.world.data.qpos)[0]

    def act(self) -> dict[str, tuple[np.ndarray, float]]:
        """Per arm: 6 joint targets (rad) and the gripper target (0 closed .. 1 open)."""
        self.steps += 1
        self.free = {side: False for side in SIDES}  # the plan says which arms move freely this step
        goals = self.plan(Contacts(self.world))
        out = {}
        qpos = self.world.data.qpos.copy()
        for side, goal in goals.items():
            gap = goal.position - self.point[side]
            step = goal.speed * CONTROL_DT
            self.point[side] = self.point[side] + gap * min(1.0, step / max(np.linalg.norm(gap), 1e-9))
            self.rotation[side] = goal.rotation
            q = self.ik[side].solve(qpos, self.q[side], self.point[side], goal.rotation)
            self.q[side] = self.q[side] + np.clip(q - self.q[side], -JOINT_SPEED * CONTROL_DT,
                                                  JOINT_SPEED * CONTROL_DT)
            out[side] = (self.q[side].copy(), goal.gripper)
        return out

    def plan(self, contacts: Contacts) -> dict[str, Goal]:
        return getattr(self, PLANS[self.world.task_name])(contacts)

    # -- shared: reach above a point, go down, close; the caller takes over once it is held ----------
    def _pick(self, side: str, at: np.ndarray, touching: bool, rotation: np.ndarray, height: float = 0.032) -> Goal:
        """`height`: of the grasp point above the table, so that the fingertips just clear it."""
        hand = self.grasp_point(side)
        at = np.array([at[0], at[1], height])
        over = np.linalg.norm((hand - at)[:2]) < 0.012
        self.free[side] = not over  # on its way above the part; from there down, millimetres count
        if (over and abs(hand[2] - at[2]) < 0.012) or (touching and self.gripper_opening(side) < 0.9):
            return Goal(at, rotation, CLOSED)
        return Goal(at if over else at + np.array([0, 0, 0.08]), rotation, OPEN)

    def _holds(self, contacts: Contacts, side: str, geoms: tuple[str, ...]) -> bool:
        """Closed jaws hold a part they touch now or touched within GRIP_MEMORY steps: a part pressed against
        something loses finger contact for a step or two while still gripped, and that is no reason to pick it
        up again. Opening the jaws lets go at once; after a reset a part is held only once touched."""
        if any(contacts.fingers_touch(side, g) for g in geoms):
            self.touched_at[side, geoms] = self.steps
        last = self.touched_at.get((side, geoms))
        return last is not None and self.steps - last < GRIP_MEMORY and self.gripper_opening(side) < HOLDING_BELOW

    # -- transfer_cube: the right arm picks the cube, hands it to the left arm in mid-air -----------
    MEET = np.array([0.0, 0.5, 0.25])

    def _transfer_cube(self, contacts: Contacts) -> dict[str, Goal]:
        box = self.world.object_poses()["box"]
        cube = box[:3]
        right, left = self.grasp_point("right"), self.grasp_point("left")
        left_touch = contacts.fingers_touch("left", "red_box")
        on_table = contacts.touching("red_box", "table")
        right_holds = self._holds(contacts, "right", ("red_box",))
        left_holds = self._holds(contacts, "left", ("red_box",))
        right_rot = (pick_rotation(self.base["right"], self.MEET) if right_holds else
                     pick_rotation(self.base["right"], cube, yaw=quat_yaw(box[3:])))
        left_rot = frame(np.array([1.0, 0, 0]), UP)
        left_wait = Goal(self.MEET + np.array([-0.15, 0, 0]), left_rot, OPEN)
        self.free["left"] = True  # waiting out of the way, until the hand over sets it otherwise

        if left_holds and not on_table:
            self.phase = "release"
            self.free["left"] = False
            back = np.array([0.25, 0.5, 0.3])  # out of the way, above the table
            return {"right": Goal(back, right_rot, OPEN), "left": Goal(self.point["left"], left_rot, CLOSED)}
        if right_holds and not on_table:
            self.phase = "hand over"
            self.free["left"] = False
            right_goal = Goal(right + (self.MEET - cube), right_rot, CLOSED)
            if np.linalg.norm(cube - self.MEET) > 0.03:
                return {"right": right_goal, "left": left_wait}
            into = cube + np.array([-0.025, 0, 0])
            lined_up = np.linalg.norm((left - into)[1:]) < 0.015
            close = np.linalg.norm(left - into) < 0.012
            left_goal = Goal(into if lined_up else np.array([min(left[0], into[0] - 0.06), *into[1:]]), left_rot,
                             CLOSED if close or left_touch else OPEN)
            return {"right": right_goal, "left": left_goal}
        if right_holds:
            self.phase = "lift"
            self.free["right"] = True
            return {"right": Goal(cube + np.array([0, 0, 0.12]), right_rot, CLOSED), "left": left_wait}
        right_goal = self._pick("right", cube, contacts.fingers_touch("right", "red_box"), right_rot)
        self.phase = "grasp" if right_goal.gripper == CLOSED else "reach"
        return {"right": right_goal, "left": left_wait}

    # -- insertion: each arm picks its part, they meet in the air, the peg goes into the socket ----
    SOCKET_AT = np.array([-0.05, 0.5, 0.2])  # where the left arm holds the socket's centre for the insertion
    SOCKET_WALLS = ("socket-1", "socket-2", "socket-3", "socket-4")
    PIN_END = 0.04  # m from the socket's centre along its axis: the pin's face that the peg's end touches
    NEAR_PIN = 0.005  # m short of that face the peg's end counts as home (the contact comes and goes)
    BORE_SLACK = 0.008  # m the peg's end can be off the socket's axis in its bore (walls at 0.018, peg 0.01 wide)
    HOLD_PRESS = 0.006  # m past the pin's face the held peg's end is aimed, so it keeps pressing on the pin

    def _peg_home(self, contacts: Contacts, tip: np.ndarray, socket: np.ndarray, socket_axis: np.ndarray) -> bool:
        """The task's success (the peg touches the pin), or the peg's end in the socket's bore just short of the
        pin: a takeover may start on a step where the contact is off."""
        if contacts.touching("red_peg", "pin"):
            return True
        rel = tip - socket
        along = float(rel @ socket_axis)
        off_axis = float(np.linalg.norm(rel - along * socket_axis))
        return self.PIN_END < along < self.PIN_END + self.NEAR_PIN and off_axis < self.BORE_SLACK

    def _insertion(self, contacts: Contacts) -> dict[str, Goal]:
        poses = self.world.object_poses()
        peg, socket = poses["peg"][:3], poses["socket"][:3]
        peg_axis, socket_axis = quat_x_axis(poses["peg"][3:]), quat_x_axis(poses["socket"][3:])
        tip = peg - 0.06 * peg_axis  # the peg's end that goes in
        mouth = socket + 0.06 * socket_axis  # the socket's open end facing the peg
        right, left = self.grasp_point("right"), self.grasp_point("left")
        if self.hold is None and self._peg_home(contacts, tip, socket, socket_axis):
            # Done, for the rest of the episode (reset() ends it): the left arm stays where it was sent and the
            # right one keeps the peg pressed on the pin, both grippers closed. Pressed 6 mm rather than the
            # insert's 3: an arm sent to where it is, as after a takeover, sags a few mm under its load.
            press = socket + (self.PIN_END - self.HOLD_PRESS) * socket_axis
            self.hold = {"left": Goal(self.point["left"], self.rotation["left"], CLOSED),
                         "right": Goal(right + (press - tip), self.rotation["right"], CLOSED, 0.12)}
        if self.hold is not None:
            self.phase = "inserted"
            return self.hold
        peg_lifted = not contacts.touching("red_peg", "table")
        socket_lifted = not any(contacts.touching(w, "table") for w in self.SOCKET_WALLS)
        right_holds = self._holds(contacts, "right", ("red_peg",)) and peg_lifted
        left_holds = self._holds(contacts, "left", self.SOCKET_WALLS) and socket_lifted
        right_rot = pick_rotation(self.base["right"], peg if not right_holds else self.SOCKET_AT, np.deg2rad(75))
        left_rot = pick_rotation(self.base["left"], socket if not left_holds else self.SOCKET_AT)
        goals = {}
        if left_holds:
            goals["left"] = Goal(left + (self.SOCKET_AT - socket), left_rot, CLOSED)
            self.free["left"] = True  # carrying the socket to where the peg meets it (not once the peg lines up)
        else:
            touching = any(contacts.fingers_touch("left", w) for w in self.SOCKET_WALLS)
            goals["left"] = self._pick("left", socket - 0.03 * socket_axis, touching, left_rot)
            if self._holds(contacts, "left", self.SOCKET_WALLS):  # held, still on the table: lift
                goals["left"] = Goal(left + np.array([0, 0, 0.1]), left_rot, CLOSED)
                self.free["left"] = True
        if right_holds:
            socket_ready = left_holds and np.linalg.norm(socket - self.SOCKET_AT) < 0.02
            line_up = mouth + 0.03 * socket_axis
            if not socket_ready:
                tip_goal, self.phase = line_up + np.array([0.05, 0, 0]), "carry"
            elif np.linalg.norm((tip - line_up)[1:]) < 0.006 or np.linalg.norm(tip - mouth) < 0.03:
                tip_goal, self.phase = socket + 0.037 * socket_axis, "insert"  # the pin ends at +0.04
            else:
                tip_goal, self.phase = line_up, "line up"
            careful = self.phase in ("line up", "insert")
            self.free["right"] = not careful
            self.free["left"] = self.free["left"] and not careful
            goals["right"] = Goal(right + (tip_goal - tip), right_rot, CLOSED, 0.12 if careful else SPEED)
        else:
            self.phase = "pick"
            goals["right"] = self._pick("right", peg + 0.03 * peg_axis, contacts.fingers_touch("right", "red_peg"),
                                        right_rot, height=0.031)
            if self._holds(contacts, "right", ("red_peg",)):
                goals["right"] = Goal(right + np.array([0, 0, 0.1]), right_rot, CLOSED)
                self.free["right"] = True
        return goals


def quat_yaw(quat: np.ndarray) -> float:
    """Heading of the body's x axis in the horizontal plane."""
    x = quat_x_axis(quat)
    return float(np.arctan2(x[1], x[0]))


def quat_x_axis(quat: np.ndarray) -> np.ndarray:
    """The body's x axis in the world, from its (w, x, y, z) quaternion."""
    w, x, y, z = quat
    return np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])
