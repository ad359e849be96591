"""wow-gym train-idm: train FM-IDM (video -> 7-DoF actions) and its ablation variants on LeRobot datasets.

Stages: arm masks from MuJoCo segmentation (cached) -> mask head -> one IDM per variant (plain, flow, mask,
fm-idm). Progress bars, TensorBoard in <out>/tensorboard, a resumable checkpoint every `checkpoint_every`
steps, each variant's model in <out>/<variant>/ and FM-IDM in <out>/checkpoint, the resolved config and git
commit in <out>. Rerun the same command to resume after an interruption.

Data parallel on N processes (gloo on CPUs, nccl on GPUs; batch sizes are global, split over the processes):
  torchrun --standalone --nproc_per_node=N -m wow_gym.cli train-idm [key=value ...]
"""

from __future__ import annotations

from wow_gym.experiments.config_loading import run_trainer, to_dataclass


def _trainer(cfg):
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.world_models.idm.training import IDMTrainer, TrainIDMConfig

    return IDMTrainer(to_dataclass(TrainIDMConfig, cfg), RobosuiteEnv)


def main(argv: list[str]) -> int:
    done = run_trainer("train_idm", argv, __doc__, _trainer)
    if done is not None and done[0].shard.is_main:
        for name, path in done[1].items():
            print(f"{name}: {path}")
    return 0
