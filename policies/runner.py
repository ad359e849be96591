"""The deployment runner: an exported policy drives an arm at a fixed rate, shielded, logged every step.

Each step observes, runs the policy (onnxruntime), filters the action (Shield) and sends it, then sleeps to
the next deadline of a time.monotonic() clock. A late step is counted and logged, and the clock re-anchors
so that one slow step never causes a burst of catch-up steps. Shadow mode does everything but send.

The step log is JSON lines, flushed after every line rather than written atomically per episode: when a
run dies (a crash, a power cut, a pulled cable) the steps up to that moment are the ones worth reading, and
an atomic episode file would lose them all. At worst the last line is torn; `read_log` skips it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from wow_gym.policies.arms import Arm, ArmError
from wow_gym.policies.shield import Shield, ShieldConfig, StopReason, Watchdog
from wow_gym.policies.spec import RobotConfig, SpecError, check_spec, load_spec


class ObservationError(ValueError):
    """An observation does not match what the exported policy reads."""


class ExportedPolicy:
    """policy.onnx + policy.json (export_policy) run by onnxruntime on the CPU; checks every observation."""

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.spec = load_spec(self.folder)
        path = self.folder / self.spec["onnx"]["file"]
        if not path.is_file():
            raise SpecError(f"{path} not found beside {self.folder / 'policy.json'}; re-export the policy")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # a small net at 20 Hz: more threads fight the control loop
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.keys: list[str] = list(self.spec["onnx"]["inputs"])

    def __call__(self, observation: Mapping[str, Any]) -> np.ndarray:
        """The action (7,) float32 for one observation (extra keys such as timestamp are ignored)."""
        inputs = self.check_observation(observation)
        return self.session.run(["action"], {k: v[None] for k, v in inputs.items()})[0][0]

    def predict_batch(self, observations: Mapping[str, np.ndarray]) -> np.ndarray:
        """Actions (B, 7) for observations stacked on a leading batch axis."""
        return self.session.run(["action"], self.check_observation(observations, batched=True))[0]

    def check_observation(self, observation: Mapping[str, Any],
                          batched: bool = False) -> dict[str, np.ndarray]:
        """The policy's inputs from an observation, or an ObservationError saying what was expected."""
        inputs = {}
        for key in self.keys:
            want = self.spec["observation"][key]
            if key not in observation:
                raise ObservationError(f"observation lacks {key!r}; the policy reads {self.keys}, got "
                                       f"{sorted(observation)}")
            value = np.asarray(observation[key])
            shape = value.shape[1:] if batched else value.shape
            if tuple(shape) != tuple(want["shape"]):
                layout = f" ({want['layout']})" if "layout" in want else ""
                where = " after the batch axis" if batched else ""
                raise ObservationError(f"{key} has shape {tuple(shape)}, the policy reads "
                                       f"{tuple(want['shape'])}{layout}{where}")
            if want["dtype"] == "uint8":
                if value.dtype != np.uint8:
                    raise ObservationError(f"{key} must be uint8 (0..255, as the camera gives it), got "
                                           f"{value.dtype}")
            elif not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
                raise ObservationError(f"{key} must be finite floats, got {value.dtype} "
                                       f"{value.reshape(-1)[:9]}")
            inputs[key] = value.astype(want["dtype"], copy=False)
        return inputs


@dataclass
class RunnerConfig:
    """Episodes and pacing of a run (the arm's limits are RobotConfig, the safety filter ShieldConfig)."""

    episodes: int = 1
    max_steps: int = 100
    seed: int = 0  # episode i starts the simulator from seed + i (real arms ignore it)
    shadow: bool = False  # compute and log actions, never send them
    max_deadline_misses: int | None = None  # stop an episode after more misses than this (None: never)
    stop_on_success: bool = True  # end an episode when the arm reports is_success (the simulator does)

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.max_steps < 1:
            raise ValueError(f"episodes and max_steps must be at least 1, got {self.episodes} and "
                             f"{self.max_steps}")


@dataclass
class ArmEpisode:
    """One episode on an arm, as returned and as logged in its episode_end line (the sim-only record is
    sim_eval.EpisodeResult)."""

    episode: int
    seed: int
    reason: StopReason
    steps: int
    sent: int
    deadline_misses: int
    success: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason.value}


Policy = Callable[[Mapping[str, Any]], np.ndarray]  # with a .spec dict, like ExportedPolicy


class Runner:
    """Runs a policy on an arm; every episode ends with a StopReason and a stopped arm."""

    def __init__(self, policy: Policy, arm: Arm, robot: RobotConfig, config: RunnerConfig | None = None,
                 shield: ShieldConfig | None = None, log_path: str | Path | None = None,
                 estop: Callable[[], bool] | threading.Event | None = None) -> None:
        check_spec(policy.spec, robot)
        self.policy, self.arm, self.robot = policy, arm, robot
        self.config = config or RunnerConfig()
        self.shield_config = shield or ShieldConfig()
        if self.shield_config.watchdog_timeout <= robot.period:
            raise ValueError(f"shield.watchdog_timeout {self.shield_config.watchdog_timeout} s must exceed "
                             f"one control period ({robot.period:.3f} s at {robot.control_freq} Hz)")
        self.shield = Shield(self.shield_config, robot)
        self.log_path = Path(log_path) if log_path is not None else None
        self._estop = estop.is_set if isinstance(estop, threading.Event) else (estop or (lambda: False))

    def run(self) -> list[ArmEpisode]:
        """Connect, run the episodes (an interrupt ends the run after stopping the arm), close."""
        results: list[ArmEpisode] = []
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.arm.connect()
        try:  # the log is appended to: an earlier run's log in the same place is kept
            with open(self.log_path, "a") if self.log_path is not None else contextlib.nullcontext() as log:
                for index in range(self.config.episodes):
                    results.append(self._episode(index, log))
                    if results[-1].reason is StopReason.INTERRUPTED:
                        break
        finally:
            self.arm.close()
        return results

    def _episode(self, index: int, log: IO[str] | None) -> ArmEpisode:
        seed = self.config.seed + index
        self.arm.reset(seed)
        self.shield.reset()
        reason, steps, sent, misses, success = StopReason.MAX_STEPS, 0, 0, 0, False
        started = time.monotonic()
        deadline = started + self.robot.period
        watchdog = Watchdog(self.shield_config.watchdog_timeout, self._on_watchdog)
        watchdog.start()
        try:
            while steps < self.config.max_steps:
                watchdog.kick()
                record, stop = self._step(watchdog)
                steps += 1
                sent += record["sent"]
                success = success or record["success"]
                record["deadline_missed"], deadline = (False, deadline) if stop else self._pace(deadline)
                misses += record["deadline_missed"]
                limit = self.config.max_deadline_misses
                stop = stop or (StopReason.DEADLINE if limit is not None and misses > limit else None)
                _write(log, {"event": "step", "episode": index, "step": steps - 1,
                             "t": time.monotonic() - started, **record, "stop": stop and stop.value})
                if stop:
                    reason = stop
                    break
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        finally:
            watchdog.close()
            if not self.config.shadow:
                self.arm.stop()
        result = ArmEpisode(index, seed, reason, steps, sent, misses, success, time.monotonic() - started)
        _write(log, {"event": "episode_end", **result.to_json()}, sync=True)
        return result

    def _step(self, watchdog: Watchdog) -> tuple[dict[str, Any], StopReason | None]:
        """Observe, act, shield, send: the step's log record and why to stop, if so."""
        try:
            observation = self.arm.observe()
        except ArmError as error:
            return {"sent": False, "success": False, "error": str(error)}, StopReason.ARM_ERROR
        record: dict[str, Any] = {"agent_pos": _jsonable(observation.get("agent_pos")), "sent": False,
                                  "success": bool(observation.get("is_success", False))}
        if record["success"] and self.config.stop_on_success:
            return record, StopReason.SUCCESS
        began = time.monotonic()
        try:
            missing = [key for key in ("agent_pos", "timestamp") if key not in observation]
            if missing:  # the shield needs the end effector's position, the staleness check the time
                raise ObservationError(f"the arm's observation lacks {missing}; an Arm must give both")
            raw = np.asarray(self.policy(observation))
        except ObservationError as error:
            return {**record, "error": str(error)}, StopReason.BAD_OBSERVATION
        inference_ms = 1000 * (time.monotonic() - began)
        shielded = self.shield.filter(raw, observation["agent_pos"])
        age = time.monotonic() - float(observation["timestamp"])
        record.update(policy_action=_jsonable(raw), interventions=shielded.interventions, observation_age=age,
                      inference_ms=inference_ms)
        if watchdog.fired.is_set():
            return record, StopReason.WATCHDOG
        if self._estop():
            return record, StopReason.ESTOP
        if shielded.stop is not None:
            return record, shielded.stop
        if age > self.shield_config.max_observation_age:
            return record, StopReason.STALE_OBSERVATION
        record["action"] = _jsonable(shielded.action)
        if not self.config.shadow:
            try:
                self.arm.send(shielded.action)
            except ArmError as error:
                return {**record, "error": str(error)}, StopReason.ARM_ERROR
            record["sent"] = True
        return record, None

    def _pace(self, deadline: float) -> tuple[bool, float]:
        """Sleep to the deadline: (missed, the next deadline), re-anchored after a miss."""
        now = time.monotonic()
        if now > deadline:
            return True, now + self.robot.period
        time.sleep(deadline - now)
        return False, deadline + self.robot.period

    def _on_watchdog(self) -> None:
        if not self.config.shadow:
            self.arm.stop()


def summarize(results: list[ArmEpisode]) -> dict[str, Any]:
    """Success rate, stop reasons and deadline misses over a run's episodes."""
    steps = sum(r.steps for r in results)
    return {
        "episodes": len(results),
        "success_rate": sum(r.success for r in results) / max(len(results), 1),
        "stop_reasons": dict(Counter(r.reason.value for r in results)),
        "steps": steps,
        "sent": sum(r.sent for r in results),
        "deadline_misses": sum(r.deadline_misses for r in results),
        "episodes_detail": [r.to_json() for r in results],
    }


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a step log; a torn last line (the run died while writing it) is skipped."""
    lines = Path(path).read_text().splitlines()
    records = []
    for number, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines) - 1:
                raise ValueError(f"{path}:{number + 1} is not a JSON line; the log is damaged") from None
    return records


def _write(log: IO[str] | None, record: dict[str, Any], sync: bool = False) -> None:
    if log is None:
        return
    log.write(json.dumps(record) + "\n")
    log.flush()
    if sync:
        os.fsync(log.fileno())


def _jsonable(value: Any) -> Any:
    return None if value is None else np.asarray(value, dtype=np.float64).tolist()
