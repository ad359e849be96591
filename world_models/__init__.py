"""Learned models, one sub-package each of the same shape: video/ (the world model), idm/ (FM-IDM), critic/
(SOPHIA's critic). Pieces more than one model uses are public modules here: staged (the trainer), checkpoint
(formats and the shipped-model finder), text (instruction embeddings), plots."""

from wow_gym.world_models.checkpoint import CheckpointError, shipped_checkpoint
from wow_gym.world_models.video.config import WorldModelConfig
from wow_gym.world_models.video.model import ImaginationState, StepOutput, WorldModel

__all__ = ["CheckpointError", "ImaginationState", "StepOutput", "WorldModel", "WorldModelConfig",
           "shipped_checkpoint"]
