"""The package-dir mapping cannot break silently: build the wheel and import every subpackage from it."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ["wow_gym", "wow_gym.data", "wow_gym.envs", "wow_gym.envs.experts", "wow_gym.world_models",
               "wow_gym.policies", "wow_gym.experiments"]


def test_wheel_contains_and_imports_every_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("wow_gym-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "wow_gym/experiments/conf/collect.yaml" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    code = ("import importlib, sys; mods = [importlib.import_module(m) for m in sys.argv[1:]]; "
            "print('\\n'.join(m.__file__ for m in mods))")
    done = subprocess.run([sys.executable, "-c", code, *SUBPACKAGES], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(target), "MUJOCO_GL": "egl", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    files = done.stdout.split()
    assert len(files) == len(SUBPACKAGES)
    assert all(f.startswith(str(target)) for f in files), files
