"""The simulated tasks by name, without importing MuJoCo (for argument parsers and rig checks)."""

TASK_NAMES = ("transfer_cube", "insertion")
EPISODE_STEPS = {"transfer_cube": 400, "insertion": 400}  # ACT's simulated episode lengths at 50 Hz
# What each reward level (1..4) means, as gym-aloha's tasks award them.
REWARD_STAGES = {"transfer_cube": ("touched", "lifted", "transferred", "held by the left"),
                 "insertion": ("touched both", "lifted both", "peg touches socket", "inserted")}
# Each task in words, as LeRobot's simulated ALOHA datasets state it (their per-episode `task`).
TASK_DESCRIPTIONS = {"transfer_cube": "Pick up the cube with the right arm and transfer it to the left arm.",
                     "insertion": "Insert the peg into the socket."}


def task_description(task: str, given: str | None = None) -> str:
    """An episode's description: `given` (--task-description) when set, else a simulated task's sentence, else
    the task as the dataset names it (on hardware often empty)."""
    return given if given is not None else TASK_DESCRIPTIONS.get(task, task)


def task_described_as(description: str) -> str:
    """The simulated task whose sentence `description` is (a LeRobot dataset's `task`), else ""."""
    return next((task for task, text in TASK_DESCRIPTIONS.items() if text == description), "")
