"""gym-aloha's own frames of tandem world states, to hold tandem's rendering against.

gym-aloha's environment (and ACT's simulation, which it packages) renders with
dm_control's `Physics.render`. `gym_aloha_frames` puts each given state
(qpos, qvel) into a gym-aloha environment of the same task and renders the
cameras there, so the same state can be compared pixel for pixel
(bench/render_match.py, tests/test_render_match.py).

Each call makes its environment and frees it before returning: dm_control
remembers which OpenGL context it last made current, so once another renderer
(a tandem `World`'s) has made its own current, a dm_control context kept
across calls would render into the wrong one (black frames).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gym_aloha  # noqa: F401 - registers the gym_aloha/ environments
import gymnasium as gym
import numpy as np

from robot.sim.tasks import sim_task
from robot.sim.world import CAMERAS

OFF_BY = 20  # a pixel counts as different when a channel is off by more than this

State = tuple[np.ndarray, np.ndarray]  # a World's data.qpos and data.qvel


def gym_aloha_frames(task: str, states: Sequence[State], cameras: Sequence[str],
                     image_size: tuple[int, int]) -> tuple[list[dict[str, np.ndarray]], float]:
    """Per state, each camera (tandem's names) as gym-aloha renders it; and the seconds per frame its renderer
    took (the first frame, which sets the renderer up, left out)."""
    h, w = image_size
    env = gym.make(sim_task(task).gym_env, obs_type="pixels", observation_height=h, observation_width=w,
                   visualization_height=h, visualization_width=w)
    physics = env.unwrapped._env.physics
    frames, spent, timed = [], 0.0, 0
    try:
        env.reset(seed=0)  # renders its first observation: the renderer is set up
        for qpos, qvel in states:
            physics.data.qpos[:] = qpos
            physics.data.qvel[:] = qvel
            physics.forward()
            frame = {}
            for cam in cameras:
                start = time.perf_counter()
                frame[cam] = physics.render(h, w, camera_id=CAMERAS[cam])
                spent += time.perf_counter() - start
                timed += 1
            frames.append(frame)
    finally:
        env.close()
        physics.free()
    return frames, spent / max(timed, 1)


def frame_difference(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference in grey levels, and the share of pixels with a channel off by more than OFF_BY."""
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    return float(diff.mean()), float((diff.max(axis=-1) > OFF_BY).mean())
