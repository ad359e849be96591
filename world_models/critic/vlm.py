"""SOPHIA backends on real checkpoints: a VLM critic and an LLM refiner through transformers, offline.

Both read a checkpoint from a local directory only (`local_files_only=True`, HF_HUB_OFFLINE=1): download it
once (`huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct --local-dir PATH`) and pass PATH. They fit the
`Critic` and `Refiner` protocols of wow_gym.sophia, so `refine_loop` takes them in place of the defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from wow_gym.checks import check_frames, check_instruction
from wow_gym.sophia import SCORE_NAMES, Critique, TemplateRefiner
from wow_gym.tasks import task_info
from wow_gym.world_models.checkpoint import CheckpointError

RUBRIC = (
    "You judge a robot video, shown as {count} frames in time order, against the instruction: "
    '"{instruction}".\n'
    "Answer with exactly these lines and nothing else:\n"
    "task_completion: N/5\n"
    "physical_plausibility: N/5\n"
    "kinematic_smoothness: N/5\n"
    "instruction_following: N/5\n"
    "success: yes|no\n"
    "progress: X\n"
    "critique: <one sentence naming what went wrong>\n"
    "N is an integer from 1 (worst) to 5 (best); X is the task progress at the last frame, from 0 to 1."
)

REFINE_PROMPT = (
    "A robot world model turned an instruction into a video of the task '{task}'; a critic judged it.\n"
    "Current instruction: {instruction}\n"
    "Critique: {text}\n"
    "Scores in [0, 1]: {scores}; success: {success}; progress: {progress:.2f}\n"
    "The task's sub-steps, in order: {steps}.\n"
    "Write one improved instruction that fixes what the critique names. Answer with the instruction only, "
    "on one line."
)

MAX_INSTRUCTION_CHARS = 300

# "key: value", the key in any case with spaces or dashes for underscores, markdown bullets or bold around.
_LINE = re.compile(r"^[\s>*#-]*([a-z][a-z _-]*?)[\s*]*[:=][\s*]*(.*?)[\s*]*$", re.IGNORECASE)
_SCORE = re.compile(r"^(\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?")
_PROGRESS = re.compile(r"^(\d*\.?\d+)\s*(%?)")
_WORD = re.compile(r"[^\W\d_]{2,}")  # a word of two letters or more: an instruction has at least one
_PREFIX = re.compile(r"^(?:(?:improved|new|refined|revised|better)\s+)?instruction\s*:\s*", re.IGNORECASE)


def local_checkpoint(path: str | Path, example: str) -> str:
    """The checkpoint directory, or a CheckpointError saying how to get one; switches the hub offline
    (before transformers is imported, where it reads the setting)."""
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise CheckpointError(
            f"no transformers checkpoint at {str(directory)!r} (expected a directory with config.json); "
            f"nothing is downloaded here. Download one once, e.g. `huggingface-cli download {example} "
            f"--local-dir {directory}`, and pass that directory")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(directory)


def parse_rubric(text: str) -> dict[str, Any]:
    """The rubric lines found in a VLM's answer: SCORE_NAMES as (N - 1) / 4 in [0, 1], "success" (bool),
    "progress" in [0, 1] and "critique" (str). Lines that are missing or out of range are left out, so the
    caller can tell an answer it cannot use from one it can."""
    found: dict[str, Any] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        key = re.sub(r"[\s-]+", "_", match.group(1).strip().lower())
        value = match.group(2).strip().strip("\"'`")
        if key in found:
            continue
        parsed = _parse_value(key, value)
        if parsed is not None:
            found[key] = parsed
    return found


def _parse_value(key: str, value: str) -> float | bool | str | None:
    if key in SCORE_NAMES:
        match = _SCORE.match(value)
        if match is None or (match.group(2) is not None and float(match.group(2)) != 5.0):
            return None
        score = float(match.group(1))
        return (score - 1.0) / 4.0 if 1.0 <= score <= 5.0 else None
    if key == "success":
        word = value.lower().split()[0].strip(".,;!") if value.split() else ""
        return {"yes": True, "true": True, "no": False, "false": False}.get(word)
    if key == "progress":
        match = _PROGRESS.match(value)
        if match is None:
            return None
        progress = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
        return progress if 0.0 <= progress <= 1.0 else None
    if key == "critique":
        return value or None
    return None


def critique_from_answer(answer: str) -> Critique:
    """The Critique a VLM's rubric answer gives; an answer missing a score, success or progress gives an
    all-zero Critique with failure "unparsed" rather than scores nobody gave."""
    found = parse_rubric(answer)
    if any(name not in found for name in (*SCORE_NAMES, "success", "progress")):
        return Critique(scores=dict.fromkeys(SCORE_NAMES, 0.0), success=False, progress=0.0, reward=0.0,
                        text=f"could not parse the VLM's answer: {answer[:200]}", failure="unparsed")
    success, progress = bool(found["success"]), float(found["progress"])
    return Critique(scores={name: float(found[name]) for name in SCORE_NAMES}, success=success,
                    progress=progress, reward=progress + float(success), text=found.get("critique", ""),
                    failure="" if success else "vlm")


def subsample(frames: np.ndarray, count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over the clip, first and last included (all of them if fewer)."""
    index = np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))
    return [frames[i] for i in index]


class VLMCritic:
    """A SOPHIA critic that asks an image-text-to-text model (Qwen2.5-VL, LLaVA, ...) to fill in the rubric
    for a few frames of the clip. The raw answer stays in `last_answer` for debugging."""

    def __init__(self, model_path: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = None,
                 num_images: int = 4, max_new_tokens: int = 96) -> None:
        if num_images < 1 or max_new_tokens < 1:
            raise ValueError(f"num_images and max_new_tokens must be >= 1, got {num_images} and "
                             f"{max_new_tokens}")
        path = local_checkpoint(model_path, "Qwen/Qwen2.5-VL-3B-Instruct")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype)
        self.model.to(device).eval()
        self.num_images, self.max_new_tokens = num_images, max_new_tokens
        self.last_answer = ""

    def critique(self, frames: np.ndarray, instruction: str) -> Critique:
        frames = check_frames(np.asarray(frames), one_frame=True)
        instruction = check_instruction(instruction)
        images = [Image.fromarray(frame) for frame in subsample(frames, self.num_images)]
        self.last_answer = self.ask(images, instruction)
        return critique_from_answer(self.last_answer)

    def ask(self, images: list[Any], instruction: str) -> str:
        """The model's greedy answer to the rubric for these PIL images (new tokens only)."""
        content = [{"type": "image"} for _ in images]
        content.append({"type": "text", "text": RUBRIC.format(count=len(images), instruction=instruction)})
        prompt = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                    add_generation_prompt=True, tokenize=False)
        inputs = self.processor(images=images, text=prompt, return_tensors="pt")
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=_pad_id(tokenizer))
        return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


class LLMRefiner:
    """A SOPHIA refiner that asks a causal LM (Qwen2.5-Instruct, ...) for a better instruction. An answer it
    cannot use (no word in it, over 300 characters, or the old instruction) falls back to TemplateRefiner, so
    a refinement round always changes the instruction; `last_fallback` and `last_answer` say what happened."""

    def __init__(self, model_path: str | Path, device: str = "cpu", dtype: torch.dtype | str | None = None,
                 max_new_tokens: int = 64) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        path = local_checkpoint(model_path, "Qwen/Qwen2.5-0.5B-Instruct")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
        self.model.to(device).eval()
        self.max_new_tokens = max_new_tokens
        self.last_answer = ""
        self.last_fallback = False

    def refine(self, instruction: str, critique: Critique, task: str) -> str:
        instruction = check_instruction(instruction)
        steps = task_info(task).steps
        scores = ", ".join(f"{name} {critique.scores[name]:.2f}" for name in SCORE_NAMES)
        request = REFINE_PROMPT.format(task=task, instruction=instruction, scores=scores,
                                       text=critique.text or critique.failure, progress=critique.progress,
                                       success="yes" if critique.success else "no", steps="; ".join(steps))
        self.last_answer = self.ask(request)
        refined = clean_instruction(self.last_answer)
        unusable = (_WORD.search(refined) is None or len(refined) > MAX_INSTRUCTION_CHARS
                    or re.findall(r"\w+", refined.lower()) == re.findall(r"\w+", instruction.lower()))
        self.last_fallback = unusable
        return TemplateRefiner().refine(instruction, critique, task) if unusable else refined

    def ask(self, request: str) -> str:
        """The model's greedy answer (new tokens only), through the tokenizer's chat template if any."""
        if self.tokenizer.chat_template:
            prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": request}],
                                                        add_generation_prompt=True, tokenize=False)
            inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        else:
            inputs = self.tokenizer(f"{request}\nImproved instruction:", return_tensors="pt")
        inputs = inputs.to(self.model.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=_pad_id(self.tokenizer))
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _pad_id(tokenizer: Any) -> int | None:
    """The pad token, else end-of-sequence: generate warns without one and many chat models ship none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def clean_instruction(answer: str) -> str:
    """The first non-empty line of an LLM's answer without bullets, quotes or an "Instruction:" prefix."""
    line = next((line.strip() for line in answer.splitlines() if line.strip()), "")
    line = _PREFIX.sub("", line.lstrip("-*#> ").replace("**", "").strip())
    return line.strip().strip("\"'`\u201c\u201d").strip()
