"""Learned models: the video world model (autoencoder + DiT + pose dynamics + heads) and its training."""

from wow_gym.world_models.world_model import (
    CheckpointError,
    ImaginationState,
    StepOutput,
    WorldModel,
    WorldModelConfig,
    default_checkpoint,
)

__all__ = ["CheckpointError", "ImaginationState", "StepOutput", "WorldModel", "WorldModelConfig", "default_checkpoint"]
