"""wow-gym train-world-model: train the world model on LeRobot datasets, in resumable stages.

Stages: autoencoder -> pose dynamics -> reward/probe heads -> DiT (EMA). Progress bars, TensorBoard in
<out>/tensorboard, a resumable checkpoint every `checkpoint_every` steps, the finished model in
<out>/checkpoint (model.safetensors + config.json), the resolved config and git commit in <out>.

One model for several tasks (shared autoencoder, DiT and pose dynamics; each task's camera, statistics and
heads): tasks=[stack,door,pickplacecan] with every task's datasets; it imagines each task as its own model.

Data parallel on N processes (gloo on CPUs, nccl on GPUs; batch sizes are global, split over the processes):
  torchrun --standalone --nproc_per_node=N -m wow_gym.cli train-world-model [key=value ...]
"""

from __future__ import annotations

from wow_gym.experiments.config_loading import run_trainer, to_dataclass


def _trainer(cfg):
    from wow_gym.envs.robosuite_env import RobosuiteEnv
    from wow_gym.world_models.video.training import SharedTrainer, Trainer, TrainWorldModelConfig

    try:  # bad input (an empty dataset list, a dataset of another task, ...): its message, no traceback
        config = to_dataclass(TrainWorldModelConfig, cfg)
        return (Trainer if config.tasks is None else SharedTrainer)(config, RobosuiteEnv)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"wow-gym train-world-model: {error}") from None


def main(argv: list[str]) -> int:
    done = run_trainer("train_world_model", argv, __doc__, _trainer)
    if done is not None and done[0].shard.is_main:
        trainer, final = done
        print(f"world model written to {final} ({trainer.num_parameters()} parameters)")
    return 0
