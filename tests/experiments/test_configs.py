"""Every experiment config composes and runs a tiny budget end to end, as a user would run it."""

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from wow_gym.data import DatasetReader
from wow_gym.experiments.config_loading import CONF_DIR, load_config

CONFIGS = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


# Which dataclass each YAML config (or a section of it) becomes, as experiments/<name>.py maps it.
# (config, dotted section or "" for the whole file, "module:Class")
MAPPINGS = [
    ("bench_data", "", "wow_gym.envs.benchmark:DataBenchConfig"),
    ("bench_imagine", "", "wow_gym.world_models.video.benchmark:ImagineBenchConfig"),
    ("bench_sim", "", "wow_gym.envs.benchmark:SimBenchConfig"),
    ("collect", "", "wow_gym.envs.collection:CollectConfig"),
    ("convert_wow", "", "wow_gym.world_models.wow.convert:ConvertWoWConfig"),
    ("demo", "fine_tune.ppo", "wow_gym.policies.training:PPOConfig"),
    ("demo", "wowbench", "wow_gym.policies.wowbench:WowBenchConfig"),
    ("deploy", "", "wow_gym.policies.runner:RunnerConfig"),
    ("deploy", "robot", "wow_gym.policies.spec:RobotConfig"),
    ("deploy", "shield", "wow_gym.policies.shield:ShieldConfig"),
    ("eval_critic", "", "wow_gym.world_models.critic.evaluation:EvalCriticConfig"),
    ("eval_experts", "noise", "wow_gym.envs.experts:ExpertNoiseConfig"),
    ("eval_idm", "", "wow_gym.world_models.idm.evaluation:EvalIDMConfig"),
    ("eval_world_model", "", "wow_gym.world_models.video.evaluation:EvalWorldModelConfig"),
    ("evaluate", "", "wow_gym.policies.evaluation:EvaluateConfig"),
    ("wowbench", "", "wow_gym.policies.wowbench:WowBenchConfig"),
    ("replay_check", "", "wow_gym.policies.replay_check:ReplayCheckConfig"),
    ("train_critic", "", "wow_gym.world_models.critic.training:TrainCriticConfig"),
    ("train_idm", "", "wow_gym.world_models.idm.training:TrainIDMConfig"),
    ("train_policy", "", "wow_gym.policies.training:TrainPolicyConfig"),
    ("train_world_model", "", "wow_gym.world_models.video.training:TrainWorldModelConfig"),
]
# Configs that are scripts of their own, with no dataclass behind their keys.
UNMAPPED = {"export_policy": "experiments/export_policy.py reads its keys directly",
            "ship_policy": "experiments/ship_policy.py reads its keys directly",
            "compare_runs": "experiments/compare_runs.py reads its keys directly",
            "agreement": "experiments/agreement.py reads its keys directly"}
# YAML values that are deliberately run-level choices, not the library's defaults: (config, key path) -> why.
_DATA = "where the data lives is a run-level choice; the dataclass asks for it (empty or None)"
RUN_LEVEL = {
    **{("train_idm", "datasets"): _DATA, ("train_critic", "datasets"): _DATA,
       ("train_world_model", "datasets"): _DATA, ("train_policy", "bc.datasets"): _DATA,
       ("eval_critic", "datasets"): _DATA, ("eval_critic", "unseen_datasets"): _DATA,
       ("eval_critic", "refine_dataset"): _DATA,
       ("eval_idm", "datasets"): _DATA, ("eval_idm", "replay_datasets"): _DATA,
       ("eval_idm", "imagine_dataset"): _DATA, ("eval_idm", "variants_dir"): _DATA},
    ("deploy", "shadow"): "the CLI starts in shadow mode so a first run sends nothing to an arm; "
                          "RunnerConfig acts unless asked not to",
    **{("demo", f"fine_tune.ppo.{key}"): "the demo fine-tunes a warm-started policy for two minutes with "
       "gentler PPO steps than training from scratch"
       for key in ("n_steps", "batch_size", "n_epochs", "learning_rate", "target_kl")},
    **{("demo", f"wowbench.{key}"): "the demo ranks the world models on a budget of about a minute; "
       "`make wowbench` runs the full one"
       for key in ("dit_steps", "kinds", "episodes", "unseen_episodes", "episode_steps", "windows", "plans",
                   "plan_horizon", "bootstrap")},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_composes_and_is_checked(name):
    cfg = load_config(name, [], "")
    assert cfg is not None and len(cfg) > 0
    assert name in UNMAPPED or name in {m[0] for m in MAPPINGS}, f"add {name}.yaml to MAPPINGS"


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _defaults(cls, instance=None):
    """Field name -> default of cls (or the values of instance); fields without a default are left out."""
    out = {}
    for f in dataclasses.fields(cls):
        if instance is not None:
            out[f.name] = getattr(instance, f.name)
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _drift(values, cls, where, instance=None):
    """'path: yaml X, dataclass Y' for every key of values whose default in cls differs."""
    found = []
    for key, value in values.items():
        defaults = _defaults(cls, instance)
        if key not in defaults:
            continue
        default, path = defaults[key], f"{where}.{key}".lstrip(".")
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            found += _drift(value, type(default), path, default)
        elif _plain(value) != _plain(default):
            found.append(f"{path}: yaml {value!r}, {cls.__name__} {_plain(default)!r}")
    return found


def _all_drift(name, section, target):
    module, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    values = OmegaConf.to_container(load_config(name, [], ""), resolve=True)
    for part in filter(None, section.split(".")):
        values = values[part]
    return _drift(values, cls, section)


@pytest.mark.parametrize(("name", "section", "target"), MAPPINGS, ids=[f"{m[0]}:{m[1] or '-'}" for m in MAPPINGS])
def test_yaml_defaults_match_the_dataclass(name, section, target):
    """One source for every config: a YAML value that differs from its dataclass default is drift, unless it
    is listed in RUN_LEVEL with the reason."""
    drift = [d for d in _all_drift(name, section, target) if (name, d.split(":")[0]) not in RUN_LEVEL]
    assert not drift, f"{name}.yaml and {target} disagree:\n" + "\n".join(drift)


def test_every_run_level_exception_still_differs():
    differing = {(m[0], d.split(":")[0]) for m in MAPPINGS for d in _all_drift(*m)}
    stale = sorted(set(RUN_LEVEL) - differing)
    assert not stale, f"RUN_LEVEL lists keys whose YAML now equals the dataclass; remove them: {stale}"


def _wow_gym(args, cwd):
    done = subprocess.run([sys.executable, "-m", "wow_gym.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_collect_tiny_budget_then_resume(tmp_path):
    args = ["collect", "task=lift", "policy=walk", "max_steps=8", "workers=2", "progress=false",
            f"root={tmp_path / 'ds'}"]
    _wow_gym([*args, "episodes=2"], tmp_path)
    out = _wow_gym([*args, "episodes=3"], tmp_path)
    assert "1 episodes written" in out and "2 already there" in out
    reader = DatasetReader(tmp_path / "ds")
    assert len(reader) == 3
    assert [reader[i].seed for i in range(3)] == [0, 1, 2]
    assert reader[2].num_steps == 8 and reader[2].truncated[-1]
    run = next((tmp_path / "ds" / "runs").iterdir())
    assert (run / "config.yaml").exists() and "commit" in json.loads((run / "run.json").read_text())


def test_bench_sim_tiny_budget(tmp_path):
    out = _wow_gym(["bench", "sim", "tasks=[Lift]", "settings=[none,64px-fast]", "vector_settings=[none]",
                    "steps=5", "warmup_steps=1", "progress=false"], tmp_path)
    assert "| Lift | none | 1 |" in out and "| Lift | none | 2 |" in out
    assert list(Path(tmp_path, "outputs", "bench-sim").glob("*/bench_sim.json"))


def test_eval_experts_tiny_budget(tmp_path):
    out = _wow_gym(["eval-experts", "tasks=[lift]", "seeds=1"], tmp_path)
    assert "| lift | 1 |" in out


def test_bench_data_tiny_budget(tmp_path):
    out = _wow_gym(["bench", "data", "episodes=2", "steps=6", "seconds=0.5", "batch_size=4",
                    f"out={tmp_path / 'bench'}"], tmp_path)
    assert "action exact" in out and "sim_state exact" in out and "DIFFERS" not in out
    assert "samples/s" in out
    for name in ("bench_data.txt", "bench_data.json", "config.yaml", "run.json"):  # into `out`, as asked
        assert (tmp_path / "bench" / name).is_file(), name
    assert not Path(tmp_path, "outputs", "bench-data").exists()


def _tiny_world_model_and_heldout(tmp_path):
    """A random dit-test checkpoint and two tiny held-out datasets (expert, walk) of 64x64 random frames."""
    import torch

    from wow_gym.data import DatasetWriter
    from wow_gym.data.fakes import random_rollout
    from wow_gym.world_models import WorldModel

    checkpoint = WorldModel.random("dit-test", env_state_dim=10).save(tmp_path / "wm", dtype=torch.float32)
    roots = []
    for source in ("expert", "walk"):
        writer = DatasetWriter(tmp_path / f"heldout-{source}")
        writer.write(random_rollout(seed=len(roots), steps=4, image_size=(64, 64)))
        roots.append(str(tmp_path / f"heldout-{source}"))
    return checkpoint, roots


def test_eval_world_model_tiny_budget(tmp_path):
    checkpoint, roots = _tiny_world_model_and_heldout(tmp_path)
    args = ["eval-world-model", f"checkpoint={checkpoint}", "horizons=[1,2]", "reference_horizon=2",
            "starts_per_episode=1", "steps_sweep=[1]", "plan_horizon=2", "examples=1", "progress=false"]
    out = _wow_gym([*args, f"datasets=[{','.join(roots)}]", f"interaction_datasets=[{','.join(roots)}]",
                    f"out={tmp_path / 'eval'}"], tmp_path)
    assert "| eef error h=2, true vs shuffled actions (mm) |" in out and "| plan PSNR" in out
    assert "| lifts seen in imagination" in out and "| false lifts" in out
    for name in ("report.md", "results.json", "psnr_vs_horizon.png", "example_0.gif", "config.yaml",
                 "run.json"):
        assert (tmp_path / "eval" / name).exists(), name
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["open_loop"]["starts"]["all"] == 2
    assert list((tmp_path / "eval" / "tensorboard").glob("events.out.tfevents.*"))
    missing = subprocess.run([sys.executable, "-m", "wow_gym.cli", *args,
                              f"datasets=[{tmp_path / 'nowhere'}]"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "nowhere'] not found" in missing.stderr and "wow-gym collect" in missing.stderr


def test_bench_imagine_tiny_budget(tmp_path):
    checkpoint, _ = _tiny_world_model_and_heldout(tmp_path)
    out = _wow_gym(["bench", "imagine", f"checkpoint={checkpoint}", "batch_sizes=[1,2]", "sampling_steps=[1]",
                    "steps=2", "warmup_steps=1", "sim_steps=3", "sim_warmup_steps=1", "sim_num_envs=1",
                    "repeats=2", "progress=false", "world_model_options.residual_deadband=8"], tmp_path)
    assert "the median of 2 alternating rounds" in out
    assert "switches on: residual_deadband" in out  # timed with the switch given, and says so
    assert "| 64px-fast, 1 proc |" in out
    assert "| WorldModel.step | 2 | 1 |" in out and "| ImaginedVectorEnv | 2 | 1 |" in out
    written = next(Path(tmp_path, "outputs", "bench-imagine").glob("*/bench_imagine.json"))
    result = json.loads(written.read_text())
    assert [r["batch_size"] for r in result["imagined"]] == [1, 1, 2, 2] and result["max_rss_mb"] > 0
    assert [r["reset_ms_per_env"] is not None for r in result["imagined"]] == [False, True] * 2
    assert result["compiled"] is False and result["repeats"] == 2 and result["switches"] == ["residual_deadband"]
    unknown = subprocess.run([sys.executable, "-m", "wow_gym.cli", "bench", "imagine", f"checkpoint={checkpoint}",
                              "world_model_options.finger_rule=true", "progress=false"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr  # a switch this model cannot honour
    assert "finger_rule" in unknown.stderr


def test_train_world_model_tiny_budget_then_eval(tmp_path, lift_data):
    """Train every stage on a tiny real dataset from the CLI, then evaluate the result."""
    data = lift_data  # collect's own CLI test is test_collect_tiny_budget_then_resume
    stages = ["autoencoder={steps: 4, batch_size: 4}", "pose={steps: 3, batch_size: 4}",
              "heads={steps: 3, batch_size: 4}", "dit={steps: 4, batch_size: 4}", "objects={steps: 3, batch_size: 4}",
              "probe={steps: 3, batch_size: 4}"]
    out = _wow_gym(["train-world-model", f"datasets=[{{root: {data}}}]", f"out={tmp_path / 'wm'}",
                    "preset=dit-test", "latent_channels=4", *stages, "checkpoint_every=2", "progress=false"],
                   tmp_path)
    assert "world model written to" in out
    for name in ("checkpoint/model.safetensors", "checkpoint/config.json", "config.yaml", "run.json"):
        assert (tmp_path / "wm" / name).exists(), name
    assert list((tmp_path / "wm" / "tensorboard").glob("events.out.tfevents.*"))
    out = _wow_gym(["eval-world-model", f"checkpoint={tmp_path / 'wm' / 'checkpoint'}", f"datasets=[{data}]",
                    "horizons=[1,2]", "reference_horizon=2", "starts_per_episode=1", "steps_sweep=[1]",
                    "plan_horizon=2", "examples=1", "progress=false", f"interaction_datasets=[{data}]",
                    f"out={tmp_path / 'eval'}"], tmp_path)
    assert "| plan PSNR" in out


def test_train_idm_then_eval_idm_tiny_budget(tmp_path):
    """FM-IDM from the CLI: train every variant on a tiny real dataset, then the whole evaluation with a
    random world model; loose thresholds make every imagined rollout verified, so the dataset is written."""
    from wow_gym.world_models import WorldModel

    data = tmp_path / "heldout-expert"
    _wow_gym(["collect", "task=lift", "policy=expert", "episodes=1", "max_steps=10", "workers=1",
              "progress=false", f"root={data}"], tmp_path)
    out = _wow_gym(["train-idm", f"datasets=[{data}]", f"out={tmp_path / 'idm'}", "width=8",
                    "mask_head={steps: 2, batch_size: 2}", "idm={steps: 2, batch_size: 2}",
                    "pose_head={steps: 2, batch_size: 2}", "progress=false"],
                   tmp_path)
    assert "checkpoint:" in out and (tmp_path / "idm" / "run.json").exists()
    world_model = WorldModel.random("dit-test", env_state_dim=10).save(tmp_path / "wm")
    out = _wow_gym(["eval-idm", f"checkpoint={tmp_path / 'idm' / 'checkpoint'}", f"variants_dir={tmp_path / 'idm'}",
                    f"world_model={world_model}", f"datasets=[{data}]", f"replay_datasets=[{data}]",
                    f"imagine_dataset={data}", "imagine_episodes=1", "imagine_horizon=4",
                    "thresholds={require_success: false, object_mm: 1.0e6, eef_mm: 1.0e6}", "progress=false",
                    f"out={tmp_path / 'eval'}"], tmp_path)
    assert "replay success from ground-truth video (expert, 1 episodes)" in out
    assert "tracking the video with the pose head" in out  # the checkpoint has one, so fm-idm-tracked runs
    assert "normalised action RMSE" in out and "plain" in out and "fm-idm" in out
    for name in ("report.md", "results.json", "action_nrmse.png", "actions_0.gif", "plan_0.gif", "run.json"):
        assert (tmp_path / "eval" / name).exists(), name
    assert list((tmp_path / "eval" / "tensorboard").glob("events.out.tfevents.*"))
    verified = DatasetReader(tmp_path / "eval" / "imagined_verified")
    assert len(verified) == 2 and {verified[i].source for i in range(2)} == {"imagined_verified"}
    assert verified[0].num_steps == 4


def test_train_critic_then_eval_critic_tiny_budget(tmp_path, lift_data):
    """SOPHIA's critic from the CLI: corrupted and imagined clips, a few training steps, a resume, then the
    whole calibration (sim and imagined success, AUC, refinement with FM-IDM replays) on tiny real data."""
    from wow_gym.world_models import WorldModel

    data = lift_data  # two 12-step expert episodes
    world_model = WorldModel.random("dit-test", env_state_dim=10).save(tmp_path / "wm")
    args = ["train-critic", f"datasets=[{{root: {data}}}]", f"out={tmp_path / 'critic'}", f"world_model={world_model}",
            "width=32", "layers=1", "per_kind=2", "checkpoint_every=2", "progress=false"]
    _wow_gym([*args, "train={steps: 2, batch_size: 4}"], tmp_path)
    out = _wow_gym([*args, "train={steps: 4, batch_size: 4}"], tmp_path)  # resumes at step 2
    assert "critic:" in out and (tmp_path / "critic" / "run.json").exists()
    assert list((tmp_path / "critic" / "clips").glob("corrupted-*.npz"))
    assert list((tmp_path / "critic" / "clips").glob("imagined-*.npz"))
    out = _wow_gym(["eval-critic", f"checkpoint={tmp_path / 'critic' / 'checkpoint'}", f"world_model={world_model}",
                    f"datasets=[{data}]", f"unseen_datasets=[{data}]", f"refine_dataset={data}", "refine_starts=1",
                    "refine_rounds=2",
                    "plan_horizon=4", "corrupt_per_kind=1", "real_clips=4", "progress=false",
                    f"out={tmp_path / 'eval'}"], tmp_path)
    assert "success detection on 2 held-out sim rollouts" in out and "plausibility AUC" in out
    assert "refinement, 1 start states" in out
    # the same episodes scored again as an action kind absent from training: apart, with the same figures
    assert "success detection on 2 sim rollouts of action kinds absent from training (expert)" in out
    for name in ("report.md", "results.json", "progress.png", "refine_0.gif", "run.json"):
        assert (tmp_path / "eval" / name).exists(), name
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["held_out_kinds"] == ["sink", "pass_through", "shuffle"]
    assert results["unseen_sources"] == ["expert"] and results["unseen_kinds"] == results["sim_episodes"]
    assert "| sim, action kinds absent from training (episodes) | 2 |" in (tmp_path / "eval" / "report.md").read_text()
    assert list((tmp_path / "eval" / "tensorboard").glob("events.out.tfevents.*"))


def test_train_policy_then_evaluate_export_and_deploy_tiny_budget(tmp_path, lift_data):
    """The policy pipeline from the CLI: BC + PPO in imagination, its checkpoints evaluated in both worlds,
    the final policy exported and run live by the deployment runner on the sim arm beside the in-process one."""
    data = lift_data
    run = tmp_path / "policy"
    out = _wow_gym(["train-policy", f"out={run}", f"bc.datasets=[{data}]", "bc.epochs=1", "bc.successful_only=false",
                    "total_timesteps=8", "n_envs=2", "ppo.n_steps=4", "ppo.batch_size=8", "ppo.n_epochs=1",
                    "checkpoint_every=4", "eval.every_steps=0", "eval.episodes=1", "eval.max_steps=3",
                    "progress=false"], tmp_path)
    assert "ppo on WoW/Lift-Imagined-v0: 8 RL steps" in out and f"policy: {run / 'final.zip'}" in out
    out = _wow_gym(["evaluate", "policies=[]", f"+run={run}", "n_episodes=1", "max_steps=3", "gifs=false",
                    "progress=false", f"out={tmp_path / 'eval'}"], tmp_path)
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    names = [p["name"] for p in results["policies"]]
    assert names == ["policy@bc", "policy@rl_4_steps", "policy@rl_8_steps", "policy@final"], names
    _wow_gym(["export-policy", f"checkpoint={run / 'final.zip'}", f"out={tmp_path / 'exported'}",
              "parity_observations=2"], tmp_path)
    out = _wow_gym(["deploy", f"policy={tmp_path / 'exported'}", "shadow=false", "episodes=1", "max_steps=3",
                    f"out={tmp_path / 'deploy'}"], tmp_path)
    assert "runner and in-process agree on 100% of episodes" in out
