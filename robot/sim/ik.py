"""Inverse kinematics for the simulated ViperX arms: damped least squares on MuJoCo Jacobians.

The pose controlled is a grasp point between the fingertips of an arm, with the
gripper's frame (x: the way the fingers point, y: the axis the jaws close
along). Solved on a scratch copy of the state, so the world itself is never
touched.
"""

from __future__ import annotations

import mujoco
import numpy as np

GRASP_OFFSET = 0.13  # m along the gripper link's x axis: between the fingertip pads


def frame(approach: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """Rotation matrix with x = approach and y = jaw (made orthogonal to approach)."""
    x = approach / np.linalg.norm(approach)
    y = jaw - x * (jaw @ x)
    y /= np.linalg.norm(y)
    return np.column_stack([x, y, np.cross(x, y)])


class ArmIK:
    def __init__(self, model: mujoco.MjModel, side: str) -> None:
        self.model = model
        self.scratch = mujoco.MjData(model)
        self.body = model.body(f"vx300s_{side}/gripper_link").id
        first = 0 if side == "left" else 8
        self.qpos_index = np.arange(first, first + 6)
        self.dof_index = np.arange(first, first + 6)  # hinge joints: qpos and dof indices agree
        ranges = model.jnt_range[first: first + 6]
        self.lower, self.upper = ranges[:, 0], ranges[:, 1]
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _forward(self, qpos_all: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.scratch.qpos[:] = qpos_all
        self.scratch.qpos[self.qpos_index] = q
        mujoco.mj_kinematics(self.model, self.scratch)
        mujoco.mj_comPos(self.model, self.scratch)
        rot = self.scratch.xmat[self.body].reshape(3, 3)
        return self.scratch.xpos[self.body] + rot[:, 0] * GRASP_OFFSET, rot.copy()

    def pose(self, qpos_all: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grasp point and gripper rotation for the given full qpos."""
        return self._forward(qpos_all, qpos_all[self.qpos_index])

    def solve(self, qpos_all: np.ndarray, q0: np.ndarray, position: np.ndarray, rotation: np.ndarray, *,
              iterations: int = 30, damping: float = 0.05, rot_weight: float = 0.3) -> np.ndarray:
        """Joint angles (6) that put the grasp point at `position` with the gripper at `rotation`."""
        q = q0.copy()
        for _ in range(iterations):
            p, r = self._forward(qpos_all, q)
            err_p = position - p
            err_r = 0.5 * sum(np.cross(r[:, i], rotation[:, i]) for i in range(3))
            if np.linalg.norm(err_p) < 1e-4 and np.linalg.norm(err_r) < 1e-3:
                break
            mujoco.mj_jac(self.model, self.scratch, self._jacp, self._jacr, p, self.body)
            jac = np.vstack([self._jacp[:, self.dof_index], rot_weight * self._jacr[:, self.dof_index]])
            err = np.concatenate([err_p, rot_weight * err_r])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(6), err)
            q = np.clip(q + np.clip(dq, -0.3, 0.3), self.lower, self.upper)
        return q
