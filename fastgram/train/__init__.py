"""Training: losses, data, the trainer, checkpoints."""

from fastgram.train.config import TrainConfig
from fastgram.train.data import ImageDataset
from fastgram.train.trainer import Trainer, TrainingDiverged

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "ImageDataset"]
