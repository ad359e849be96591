"""wow-gym train-world-model: train the world model on LeRobot datasets, in resumable stages.

Stages: autoencoder -> pose dynamics -> reward/probe heads -> DiT (EMA). Progress bars, TensorBoard in
<out>/tensorboard, a resumable checkpoint every `checkpoint_every` steps, the finished model in
<out>/checkpoint (model.safetensors + config.json), the resolved config and git commit in <out>.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config, to_dataclass
from wow_gym.provenance import write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("train_world_model", argv, __doc__)
    if cfg is None:
        return 0
    from wow_gym.world_models.training import Trainer, TrainWorldModelConfig

    config = to_dataclass(TrainWorldModelConfig, cfg)
    trainer = Trainer(config)
    write_run_metadata(trainer.out, OmegaConf.to_container(cfg, resolve=True))
    try:
        final = trainer.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume from {trainer.stage_dir}")
        return 130
    print(f"world model written to {final} ({trainer.model.num_parameters()} parameters)")
    return 0
