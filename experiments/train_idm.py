"""wow-gym train-idm: train FM-IDM (video -> 7-DoF actions) and its ablation variants on LeRobot datasets.

Stages: arm masks from MuJoCo segmentation (cached) -> mask head -> one IDM per variant (plain, flow, mask,
fm-idm). Progress bars, TensorBoard in <out>/tensorboard, a resumable checkpoint every `checkpoint_every`
steps, each variant's model in <out>/<variant>/ and FM-IDM in <out>/checkpoint, the resolved config and git
commit in <out>. Rerun the same command to resume after an interruption.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from wow_gym.experiments.config_loading import load_config, to_dataclass
from wow_gym.provenance import write_run_metadata


def main(argv: list[str]) -> int:
    cfg = load_config("train_idm", argv, __doc__)
    if cfg is None:
        return 0
    from wow_gym.world_models.idm_training import IDMTrainer, TrainIDMConfig

    config = to_dataclass(TrainIDMConfig, cfg)
    trainer = IDMTrainer(config)
    write_run_metadata(trainer.out, OmegaConf.to_container(cfg, resolve=True))
    try:
        written = trainer.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; rerun the same command to resume from {trainer.stage_dir}")
        return 130
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
