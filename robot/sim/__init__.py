"""The simulated rig. MuJoCo renders off-screen through EGL unless the user chose otherwise: set before any
module here imports mujoco (the choice is read once, at that import)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
