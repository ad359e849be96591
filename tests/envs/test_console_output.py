"""What a user's console shows: robosuite's import-time warnings and the text encoder's weight-loading bar
stay off it, in our process and in collection workers; WOW_GYM_VERBOSE=1 brings them back."""

import os
import subprocess
import sys

from wow_gym.console import VERBOSE_VARIABLE

ROBOSUITE_WARNING = "[robosuite WARNING]"
LOADING_BAR = "Loading weights"
MAKE_ENVS = "import gymnasium as gym, wow_gym.envs; gym.make('WoW/Lift-Imagined-v0').reset(seed=0)"


def _stderr(args: list[str], cwd, verbose: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_VARIABLE}
    if verbose:
        env[VERBOSE_VARIABLE] = "1"
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def test_making_an_env_prints_no_robosuite_warnings_and_no_loading_bar(tmp_path):
    stderr = _stderr(["-c", MAKE_ENVS], tmp_path, verbose=False)
    assert ROBOSUITE_WARNING not in stderr and LOADING_BAR not in stderr, stderr[-2000:]


def test_verbose_shows_them(tmp_path):
    stderr = _stderr(["-c", MAKE_ENVS], tmp_path, verbose=True)
    assert "No private macro file found!" in stderr and LOADING_BAR in stderr, stderr[-2000:]


def test_collection_workers_are_quiet_too(tmp_path):
    stderr = _stderr(["-m", "wow_gym.cli", "collect", "task=lift", "policy=walk", "episodes=2", "max_steps=2",
                      "workers=2", "progress=false", f"root={tmp_path / 'ds'}"], tmp_path, verbose=False)
    assert ROBOSUITE_WARNING not in stderr, stderr[-2000:]
