"""The simulated tasks by name, without importing MuJoCo (for argument parsers and rig checks)."""

TASK_NAMES = ("transfer_cube", "insertion")
EPISODE_STEPS = {"transfer_cube": 400, "insertion": 400}  # ACT's simulated episode lengths at 50 Hz
