"""wow-gym train-critic: train SOPHIA's default critic on simulator-labelled clips.

Real clips of the datasets (success, progress, stage, contact labels from simulator state), corrupted clips
rendered by MuJoCo (object teleports, vanishes, levitates, sinks, passes through the gripper, arm frozen,
time reversed or shuffled) and world-model clips labelled by their agreement with the simulator. Progress
bars, TensorBoard in <out>/tensorboard, a resumable checkpoint every `checkpoint_every` steps, the critic in
<out>/checkpoint, the resolved config and git commit in <out>. Rerun the same command to resume.

Data parallel on N processes (gloo on CPUs, nccl on GPUs; batch sizes are global, split over the processes):
  torchrun --standalone --nproc_per_node=N -m wow_gym.cli train-critic [key=value ...]
"""

from __future__ import annotations

from wow_gym.experiments.config_loading import run_trainer, to_dataclass


def _trainer(cfg):
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.world_models.critic.training import CriticTrainer, TrainCriticConfig

    return CriticTrainer(to_dataclass(TrainCriticConfig, cfg), RobosuiteEnv)


def main(argv: list[str]) -> int:
    done = run_trainer("train_critic", argv, __doc__, _trainer)
    if done is not None and done[0].shard.is_main:
        print(f"critic: {done[1]['checkpoint']}")
    return 0
