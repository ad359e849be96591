"""`wow-gym demo` on a tiny budget: every stage runs and the report is one self-contained page."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from wow_gym.experiments.demo import policy_folder
from wow_gym.policies.shipped import shipped_policy
from wow_gym.tasks import register_task, task_info, unregister_task

TINY = ["episodes_per_task=1", "max_steps=10", "horizons=[1,4]", "idm_horizon=8",
        "refine_rounds=2", "threads=1", "workers=1", "progress=false", "fine_tune.total_timesteps=16",
        "fine_tune.n_envs=2", "fine_tune.ppo.n_steps=8", "fine_tune.ppo.batch_size=16",
        "fine_tune.eval_episodes=1", "fine_tune.eval_max_steps=5", "paired.episodes=1", "paired.max_steps=5",
        "paired.throughput_steps=2",
        "deploy.max_steps=5", "deploy.parity_observations=2", "wowbench.dit_steps=[1]", "wowbench.kinds=[expert]",
        "wowbench.episodes=1", "wowbench.episode_steps=6", "wowbench.horizons=[1,4]", "wowbench.plans=1",
        "wowbench.plan_horizon=4", "wowbench.bootstrap=20"]
SECTIONS = ("At a glance", "Expert episodes", "Imagined Lift beside the simulator", "Physics check (Lift)",
            "SOPHIA's critic (Lift)", "Which world model to trust (Lift): every backend against MuJoCo",
            "Fine-tuning in imagination (Lift)",
            "Policies in imagination and in the sim twin (Lift)", "Throughput, measured in this run",
            "Export and a shadow run on the simulated arm", "This run")


def _run_demo(tmp_path, tasks):
    assert shipped_policy("lift").is_dir(), "the demo runs policies/checkpoints/lift-policy"
    out = tmp_path / "run"
    command = [sys.executable, "-m", "wow_gym.cli", "demo", f"tasks=[{','.join(tasks)}]", *TINY, f"out={out}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    assert f"report: {(out / 'report.html').resolve()}" in done.stdout
    for stage in ("collecting expert episodes", "fine-tuning the policy in imagination", "paired rollouts",
                  "ONNX export and a shadow run"):
        assert stage in done.stdout, stage
    return out


def test_demo_tiny_budget(tmp_path):
    """One run (the demo is the slow part; one test, so that pytest-xdist never runs it twice): Lift alone."""
    out = _run_demo(tmp_path, ["lift"])
    page = _check_report(out)
    glance = (out / "report.md").read_text().split("## At a glance")[1].split("\n## ")[0]
    assert "| PSNR at h=4: world model / copy-last |" in glance  # one imagined task: no task in the names
    assert "Imagined Stack" not in page and not (out / "stack").exists()
    assert "Imagined Door" not in page and not (out / "door.gif").exists()  # only the tasks asked for
    _check_policy_outputs(out / "lift")


@pytest.mark.slow
def test_demo_imagines_every_task_with_a_shipped_world_model(tmp_path):
    """The four tasks imagined side by side (Lift on its own model, the others on the shared one): a column
    per figure and task in the headline, each task's sections, and each task's runs in their own folder."""
    out = _run_demo(tmp_path, ["lift", "stack", "door", "pickplacecan"])
    page = _check_report(out)
    for name in ("Stack", "Door", "PickPlaceCan"):
        for title in (f"Imagined {name} beside the simulator", f"Physics check ({name})"):
            assert f"<h2>{title}" in page, title
    glance = (out / "report.md").read_text().split("## At a glance")[1].split("\n## ")[0]
    for name in ("Lift", "Stack", "Door", "PickPlaceCan"):
        assert f"| PSNR at h=4: world model / copy-last ({name}) |" in glance, name
    for task in ("stack", "door", "pickplacecan"):
        for name in (f"{task}.gif", f"imagined_{task}_0.gif", f"physics_{task}_0.gif",
                     f"{task}/wowbench/leaderboard.md"):
            assert (out / name).exists(), name
    for task in ("lift", "stack", "door", "pickplacecan"):  # each imagined task's runs in its own folder
        _check_policy_outputs(out / task)


def _check_report(out):
    page = (out / "report.html").read_text()
    for title in SECTIONS:
        assert f"<h2>{title}" in page.replace("&#x27;", "'"), title
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(link.startswith(("data:", "#")) for link in links), [x[:60] for x in links if x[:5] != "data:"]
    assert len(re.findall(r'<video src="data:video/mp4;base64,', page)) >= 8  # sim | imagined | difference
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 6  # plots and the contact sheet
    markdown = (out / "report.md").read_text()
    for line in ("## Physics check (Lift)", "## SOPHIA's critic (Lift)", "| imagined 0 |",
                 "| 0 | lift the red cube |", "| solved from sim video, tracked |"):
        assert line in markdown, line
    assert "no pose head" not in markdown  # the shipped Lift FM-IDM has one, so the demo tracks its video
    for name in ("lift.gif", "contact_sheet.png", "physics_lift_0.gif", "refine_lift.gif",
                 "config.yaml", "run.json", "lift/wowbench/leaderboard.md", "lift/wowbench/results.json"):
        assert (out / name).exists(), name
    return page.replace("&#x27;", "'")


def _check_policy_outputs(task_out):
    curves = json.loads((task_out / "fine-tune" / "curves.json").read_text())
    assert [c["timesteps"] for c in curves] == [0, 16]  # the sim twin before and after the fine-tune
    paired = json.loads((task_out / "paired.json").read_text())
    assert [p["name"] for p in paired] == ["shipped", "fine-tuned"]
    assert all(len(p["episodes"]) == 1 and p["episodes"][0]["start_psnr"] > 30 for p in paired)  # same starts
    spec = json.loads((task_out / "export" / "policy.json").read_text())
    assert spec["source_checkpoint"].endswith("final.zip") and (task_out / "export" / "policy.onnx").is_file()
    steps = [json.loads(line) for line in (task_out / "export" / "steps.jsonl").read_text().splitlines()]
    moves = [s for s in steps if s["event"] == "step"]
    assert moves and "action" in moves[0] and not any(s["sent"] for s in moves)  # shadow: never sent


def test_policy_folder_takes_the_override_only_for_its_task(tmp_path):
    assert policy_folder("lift", None) == shipped_policy("lift")
    assert policy_folder("door", None) == shipped_policy("door")
    register_task(dataclasses.replace(task_info("lift"), name="LiftWithoutPolicy"))
    try:
        assert policy_folder("liftwithoutpolicy", None) is None  # a task with no shipped policy
    finally:
        unregister_task("LiftWithoutPolicy")
    (tmp_path / "config.json").write_text(json.dumps({"task": "Lift"}))
    assert policy_folder("lift", str(tmp_path)) == tmp_path and policy_folder("door", str(tmp_path)) is None
    with pytest.raises(SystemExit, match="holds no config.json"):
        policy_folder("lift", str(tmp_path / "nowhere"))
