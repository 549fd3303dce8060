"""The simulated tasks: one description each, by name, without importing MuJoCo (for argument parsers and rig
checks). The world's scene and reward (robot/sim/world.py) and the expert's plan (robot/sim/expert.py) are looked
up by the same name; a name that is not here is refused, listing the known ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimTask:
    name: str
    episode_steps: int  # ACT's simulated episode length at 50 Hz
    reward_stages: tuple[str, str, str, str]  # what each reward level (1..4) means, as gym-aloha awards them
    description: str  # in words, as LeRobot's simulated ALOHA datasets state it (their per-episode `task`)
    main_object: str  # the body the `dropped` gate watches
    gym_env: str  # gym-aloha's environment of the same task (bench/render_match.py compares frames with it)


TASKS: dict[str, SimTask] = {t.name: t for t in (
    SimTask("transfer_cube", 400, ("touched", "lifted", "transferred", "held by the left"),
            "Pick up the cube with the right arm and transfer it to the left arm.", "red_box",
            "gym_aloha/AlohaTransferCube-v0"),
    SimTask("insertion", 400, ("touched both", "lifted both", "peg touches socket", "inserted"),
            "Insert the peg into the socket.", "red_peg", "gym_aloha/AlohaInsertion-v0"),
)}

TASK_NAMES = tuple(TASKS)
EPISODE_STEPS = {t.name: t.episode_steps for t in TASKS.values()}
REWARD_STAGES = {t.name: t.reward_stages for t in TASKS.values()}
TASK_DESCRIPTIONS = {t.name: t.description for t in TASKS.values()}


class UnknownTaskError(ValueError):
    pass


def sim_task(name: str) -> SimTask:
    """The task called `name`, or an error that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown simulated task {name!r}; known tasks: {', '.join(TASKS)}") from None


def task_description(task: str, given: str | None = None) -> str:
    """An episode's description: `given` (--task-description) when set, else a simulated task's sentence, else
    the task as the dataset names it (on hardware often empty)."""
    return given if given is not None else TASK_DESCRIPTIONS.get(task, task)


def task_described_as(description: str) -> str:
    """The simulated task whose sentence `description` is (a LeRobot dataset's `task`), else ""."""
    return next((task for task, text in TASK_DESCRIPTIONS.items() if text == description), "")
