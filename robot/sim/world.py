"""The simulated ALOHA workspace: gym-aloha's bimanual ViperX scene and tasks in MuJoCo.

The scene, the object randomization per seed and the task rewards (0..4,
success = 4) are the `gym-aloha` package's; this module only drives them. The
follower arms are position actuators: six joint targets in rad per arm, and the
gripper through ALOHA's conversion (motor angle -> normalized 0 closed..1 open ->
finger slide position). Cameras render off-screen in one of the styles of
robot/sim/render_style.py: `fast` with shadows, reflections and multisampling
off (about 10 ms per 480x640 frame on a CPU instead of 25), or `aloha` as
gym-aloha renders. Either shows the state the world is in now: the positions
MuJoCo keeps after a step are those from before its last integration, so they
are brought up to date first, as dm_control does after every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco  # off-screen through EGL: robot/sim/__init__.py
import numpy as np
from dm_control import mujoco as dm_mujoco
from gym_aloha import constants as aloha
from gym_aloha.tasks import sim as aloha_tasks
from gym_aloha.utils import sample_box_pose, sample_insertion_pose

from robot.sim.render_style import DEFAULT_RENDER, render_style
from robot.sim.tasks import sim_task

SIDES = ("left", "right")
CAMERAS = {"cam_high": "top", "cam_low": "angle", "cam_left_wrist": "left_wrist", "cam_right_wrist": "right_wrist"}
CONTROL_DT = aloha.DT  # 0.02 s: the scene's control step, 10 physics steps of 2 ms
FINGER_TO_GRIPPER_ANGLE = ((aloha.PUPPET_GRIPPER_JOINT_OPEN - aloha.PUPPET_GRIPPER_JOINT_CLOSE)
                           / (aloha.PUPPET_GRIPPER_POSITION_OPEN - aloha.PUPPET_GRIPPER_POSITION_CLOSE))  # rad per m


@dataclass(frozen=True)
class TaskDef:
    xml: str
    task: type
    objects: tuple[str, ...]  # free-joint bodies, in qpos order
    sample: object  # seed -> object poses (7 numbers each)


TASKS = {
    "transfer_cube": TaskDef("bimanual_viperx_transfer_cube.xml", aloha_tasks.TransferCubeTask, ("box",),
                             sample_box_pose),
    "insertion": TaskDef("bimanual_viperx_insertion.xml", aloha_tasks.InsertionTask, ("peg", "socket"),
                         lambda seed: np.concatenate(sample_insertion_pose(seed))),
}


def gripper_normalized_from_angle(angle: float) -> float:
    """Follower gripper motor angle (rad) -> 0 closed .. 1 open, ALOHA's puppet gripper joint range."""
    return float(aloha.normalize_puppet_gripper_joint(angle))


def gripper_angle_from_normalized(value: float) -> float:
    return float(aloha.unnormalize_puppet_gripper_joint(value))


@dataclass
class ArmReading:
    position: np.ndarray  # 6 joints rad + gripper motor angle rad
    velocity: np.ndarray  # rad/s, gripper in motor rad/s
    effort: np.ndarray  # actuator force of each joint (N·m; gripper: finger N)


class World:
    """One task's scene. Not thread-safe: one owner steps, reads and renders it."""

    def __init__(self, task: str, *, image_size: tuple[int, int] = (480, 640), render: str = DEFAULT_RENDER) -> None:
        sim_task(task)  # an unknown name is refused, listing the known tasks
        if task not in TASKS:
            raise ValueError(f"simulated task {task!r} has no scene in robot/sim/world.py's TASKS")
        self.task_name = task
        self.definition = TASKS[task]
        self.physics = dm_mujoco.Physics.from_xml_path(str(aloha.ASSETS_DIR / self.definition.xml))
        self.task = self.definition.task()
        self.model: mujoco.MjModel = self.physics.model.ptr
        self.data: mujoco.MjData = self.physics.data.ptr
        self.render_name = render
        self.style = render_style(render)
        if not self.style.multisampling:
            self.model.vis.quality.offsamples = 0  # half the render time
        self.substeps = round(CONTROL_DT / self.model.opt.timestep)
        self.image_size = image_size
        self._renderer: mujoco.Renderer | None = None
        self.seed: int | None = None
        self.max_reward = 0
        self.reset(0)

    # -- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Arms at ALOHA's start pose, objects placed as gym-aloha places them for this seed."""
        self.seed = seed
        aloha_tasks.BOX_POSE[0] = self.definition.sample(seed)
        self.task.initialize_episode(self.physics)
        mujoco.mj_forward(self.model, self.data)
        self.max_reward = 0

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reward(self) -> int:
        return int(self.task.get_reward(self.physics))

    def step(self) -> int:
        """One control step (20 ms of physics); returns the reward after it."""
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)
        reward = self.reward()
        self.max_reward = max(self.max_reward, reward)
        return reward

    @property
    def success(self) -> bool:
        return self.max_reward >= self.task.max_reward

    def object_poses(self) -> dict[str, np.ndarray]:
        """Each object's position (3) and quaternion (4)."""
        qpos = self.data.qpos[16:]
        return {name: qpos[7 * i: 7 * i + 7].copy() for i, name in enumerate(self.definition.objects)}

    # -- arms ------------------------------------------------------------------------------------
    @staticmethod
    def _slice(side: str) -> slice:
        return slice(0, 8) if side == "left" else slice(8, 16)

    def set_targets(self, side: str, joints: np.ndarray, gripper_angle: float) -> None:
        """Actuator targets for one arm: 6 joint angles (rad) and the gripper motor angle (rad)."""
        finger = aloha.unnormalize_puppet_gripper_position(gripper_normalized_from_angle(gripper_angle))
        self.data.ctrl[self._slice(side)] = [*joints[:6], finger, -finger]

    def read_arm(self, side: str) -> ArmReading:
        s = self._slice(side)
        qpos, qvel, force = self.data.qpos[s], self.data.qvel[s], self.data.actuator_force[s]
        angle = aloha.convert_puppet_from_position_to_join(qpos[6])
        return ArmReading(np.append(qpos[:6], angle), np.append(qvel[:6], qvel[6] * FINGER_TO_GRIPPER_ANGLE),
                          np.append(force[:6], force[6]))

    # -- cameras ---------------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """One camera (tandem name, e.g. cam_high) as (H, W, 3) uint8."""
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self.image_size)
        # positions, cameras and lights of the state as it is now (mj_step leaves those of the step before)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self._renderer.update_scene(self.data, camera=CAMERAS[camera])
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.style.shadows
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.style.reflections
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
