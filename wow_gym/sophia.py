"""SOPHIA: a critic that judges robot video against an instruction, and a refiner that rewrites the instruction.

- `Critic.critique(frames, instruction) -> Critique`: named scores in [0, 1] (task completion, physical
  plausibility, kinematic smoothness, instruction following), `success`, task `progress`, a scalar `reward`
  and a critique text that names what went wrong. The default critic is a small network trained on
  simulator labels (world_models/critic/model.py); a VLM backend reads a real image-text-to-text
  checkpoint (world_models/critic/vlm.py).
- `Refiner.refine(instruction, critique, task) -> str`: a better instruction. The default rewrites from the
  critique's failure mode and the task's known sub-steps (wow_gym/tasks); an LLM backend sits in
  world_models/critic/vlm.py.
- `refine_loop`: generate (instruction-conditioned world model) -> critique -> refine, for a bounded number
  of rounds, stopping when the critic is satisfied; every round is kept.
- `CriticRewardModel` makes the critic the reward and termination of the imagined env;
  `CriticReward` (envs/wrappers.py) puts the same critic reward beside the simulator's on a sim env.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from wow_gym.checks import check_frames, check_instruction
from wow_gym.tasks import task_info

SCORE_NAMES: tuple[str, ...] = ("task_completion", "physical_plausibility", "kinematic_smoothness",
                                "instruction_following")


@dataclass
class Critique:
    """A critic's judgement of one clip.

    scores: each of SCORE_NAMES in [0, 1]. success: the task is done by the clip's last frame. progress:
    task progress at the last frame in [0, 1] (the simulator's shaped reward is its training label).
    reward: the scalar an RL agent gets. failure: a short key of what went wrong ("" when nothing did).
    text: a sentence for people. per_frame: optional per-frame readings ([T] arrays, e.g. progress).
    """

    scores: dict[str, float]
    success: bool
    progress: float
    reward: float
    text: str
    failure: str = ""
    per_frame: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [name for name in SCORE_NAMES if name not in self.scores]
        if missing:
            raise ValueError(f"a Critique needs every score of {SCORE_NAMES}; missing {missing}")
        for name, value in self.scores.items():
            if not np.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"Critique score {name!r} must be in [0, 1], got {value!r}")

    def satisfied(self, plausibility: float = 0.5) -> bool:
        """The clip does the task and looks physically right."""
        return bool(self.success and self.scores["physical_plausibility"] >= plausibility)

    def to_dict(self) -> dict[str, Any]:
        return {"scores": {k: round(float(v), 4) for k, v in self.scores.items()}, "success": bool(self.success),
                "progress": round(float(self.progress), 4), "reward": round(float(self.reward), 4),
                "failure": self.failure, "text": self.text}


class Critic(Protocol):
    """Judges a clip: frames [T, H, W, 3] uint8 (oldest first) against an instruction."""

    def critique(self, frames: np.ndarray, instruction: str) -> Critique: ...


class Refiner(Protocol):
    """Rewrites an instruction from a critique of the video it produced."""

    def refine(self, instruction: str, critique: Critique, task: str) -> str: ...


# -- the default refiner -------------------------------------------------------------------------------------

SMOOTH_HINT = "move the arm slowly and smoothly"  # the last resort when a rewrite would repeat the instruction


class TemplateRefiner:
    """The default refiner: decompose the task into its known sub-steps (Task.steps), then stress what the
    critique says went wrong (Task.failure_hints, with spatial detail). Deterministic, so refinement rounds
    can be compared."""

    def refine(self, instruction: str, critique: Critique, task: str) -> str:
        instruction = check_instruction(instruction)
        info = task_info(task)
        hint = info.failure_hints.get(critique.failure, "")
        parts = [", then ".join(info.steps)]
        if hint and hint not in instruction:
            parts.append(hint)
        refined = "; ".join(parts)
        return refined if refined != instruction else f"{refined}; {SMOOTH_HINT}"


# -- the loop ------------------------------------------------------------------------------------------------


@dataclass
class RefinementRound:
    """One round: the instruction asked, the frames generated and the critic's judgement."""

    round: int
    instruction: str
    frames: np.ndarray  # [T, H, W, 3] uint8
    critique: Critique


def refine_loop(generate: Callable[[str], np.ndarray], critic: Critic, refiner: Refiner | None,
                instruction: str, task: str, rounds: int = 3,
                log: Callable[[RefinementRound], None] | None = None) -> list[RefinementRound]:
    """generate(instruction) -> frames, critique, refine; at most `rounds` generations, stopping as soon as
    the critic is satisfied. `refiner=None` runs one round (the unrefined baseline). Every round is
    returned (and passed to `log` as it finishes)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    instruction = check_instruction(instruction)
    history: list[RefinementRound] = []
    for index in range(rounds if refiner is not None else 1):
        frames = check_frames(np.asarray(generate(instruction)), "generated frames", one_frame=True)
        entry = RefinementRound(index, instruction, frames, critic.critique(frames, instruction))
        history.append(entry)
        if log is not None:
            log(entry)
        if entry.critique.satisfied() or refiner is None:
            break
        instruction = check_instruction(refiner.refine(instruction, entry.critique, task))
    return history


def final_round(history: Sequence[RefinementRound]) -> RefinementRound:
    """The round the loop settled on: the first satisfied one, else the last."""
    if not history:
        raise ValueError("no refinement rounds")
    return next((r for r in history if r.critique.satisfied()), history[-1])
