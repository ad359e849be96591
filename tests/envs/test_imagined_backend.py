"""The imagined env driven by a backend other than the shipped DiT: a user's own world model steps the
vector env (autoreset restarts only its finished rows), plans through generate(), and a backend that cannot
drive the env is refused with the reason."""

import numpy as np
import pytest

from wow_gym.backends import BackendError, BackendStep, Capabilities, CopyLast
from wow_gym.envs.imagined_env import ImaginedEnv, ImaginedVectorEnv


class ArmOnly:
    """A user's kinematic world model: the arm's position follows the action, the picture does not change."""

    name = "arm-only"

    def __init__(self, task: str = "Lift") -> None:
        self.capabilities = Capabilities(steps_under_actions=True, plans_from_instruction=True,
                                         resolution=(64, 64), fps=20.0, predicts_state=True,
                                         state_dims=(9, 10), context_frames=2)
        self.frames = self.pose = None
        self.starts: list[np.ndarray | None] = []

    def seed(self, seed: int) -> None:
        self.last_seed = seed

    def start(self, pixels, agent_pos, actions, instructions, rows=None):
        self.starts.append(None if rows is None else np.asarray(rows).copy())
        if rows is None:
            self.frames, self.pose = pixels[:, -1].copy(), agent_pos[:, -1].copy()
        else:
            self.frames[rows], self.pose[rows] = pixels[:, -1], agent_pos[:, -1]

    def observe(self, rows=None):
        rows = slice(None) if rows is None else rows
        return self._output(self.frames[rows], self.pose[rows])

    def step(self, actions):
        self.pose = self.pose.copy()
        self.pose[:, :3] += 0.01 * actions[:, :3]
        return self._output(self.frames.copy(), self.pose.copy())

    @staticmethod
    def _output(frames, pose):
        """Its own reward: how high the gripper is; success above 1.2 m."""
        n = len(frames)
        return BackendStep(frames, pose, np.zeros((n, 10), np.float32), pose[:, 2] > 1.2, pose[:, 2].astype(np.float32))

    def plan(self, pixels, agent_pos, instructions, horizon):
        return np.repeat(pixels[:, -1:], horizon, axis=1)


def test_a_users_backend_steps_the_vector_env_and_autoreset_restarts_only_finished_rows():
    model = ArmOnly()
    venv = ImaginedVectorEnv(num_envs=2, backend=model, max_episode_steps=2, reward_model="heads")
    observation, _ = venv.reset(seed=5)
    assert model.starts == [None] and isinstance(model.last_seed, int)
    first = observation["agent_pos"].copy()
    actions = np.array([[1, 0, 0, 0, 0, 0, -1], [0, -1, 0, 0, 0, 0, 1]], np.float32)
    observation, reward, terminated, truncated, info = venv.step(actions)
    np.testing.assert_allclose(observation["agent_pos"][:, :3], first[:, :3] + 0.01 * actions[:, :3], atol=1e-6)
    np.testing.assert_allclose(reward, observation["agent_pos"][:, 2], atol=1e-6)  # the backend's own reward
    assert not truncated.any() and not info["is_success"].any()
    observation, _, _, truncated, info = venv.step(actions)
    assert truncated.all() and "final_obs" in info
    assert model.starts[-1] is None, "both rows ended together: every row restarts"
    venv.reset(options={"reset_mask": np.array([False, True])})
    np.testing.assert_array_equal(model.starts[-1], [1])
    venv.close()


def test_generate_plans_through_the_backend_and_unfit_backends_are_refused():
    env = ImaginedEnv(backend=ArmOnly(), reward_model="heads")
    env.reset(seed=1)
    plan = env.generate(3)
    assert plan.shape == (3, 64, 64, 3) and plan.dtype == np.uint8
    env.close()
    with pytest.raises(BackendError, match="does not predict them"):
        ImaginedEnv(backend=CopyLast())
    with pytest.raises(ValueError, match=r"gives \(64, 64\) frames, not the 96x96"):
        ImaginedEnv(backend=ArmOnly(), image_size=96)
    with pytest.raises(ValueError, match="either backend= or"):
        ImaginedEnv(backend=ArmOnly(), checkpoint="somewhere")
    with pytest.raises(ValueError, match="sampling_steps set the shipped DiT's sampler"):
        ImaginedEnv(backend=ArmOnly(), sampling_steps=1)
    with pytest.raises(ValueError, match="compile set the shipped DiT's sampler"):
        ImaginedVectorEnv(num_envs=2, backend=ArmOnly(), compile=True)
    with pytest.raises(BackendError, match="or 'module:Class'"):
        ImaginedEnv(backend="not-a-backend")
