"""The simulated tasks by name, without importing MuJoCo (for argument parsers and rig checks)."""

TASK_NAMES = ("transfer_cube", "insertion")
EPISODE_STEPS = {"transfer_cube": 400, "insertion": 400}  # ACT's simulated episode lengths at 50 Hz
# What each reward level (1..4) means, as gym-aloha's tasks award them.
REWARD_STAGES = {"transfer_cube": ("touched", "lifted", "transferred", "held by the left"),
                 "insertion": ("touched both", "lifted both", "peg touches socket", "inserted")}
