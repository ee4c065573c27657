"""The training engine shared by the pre-training and fine-tuning recipes."""

from wildsep.engine.checkpoint import latest_checkpoint, list_checkpoints
from wildsep.engine.schedule import LRSchedule, ScheduleConfig, ScheduleKind
from wildsep.engine.trainer import (
    Objective,
    OptimConfig,
    Precision,
    Stage,
    TrainConfig,
    Trainer,
    make_accelerator,
)

__all__ = [
    "LRSchedule",
    "Objective",
    "OptimConfig",
    "Precision",
    "ScheduleConfig",
    "ScheduleKind",
    "Stage",
    "TrainConfig",
    "Trainer",
    "latest_checkpoint",
    "list_checkpoints",
    "make_accelerator",
]
