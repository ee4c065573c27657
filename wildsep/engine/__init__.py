"""The training engine shared by the pre-training and fine-tuning recipes."""

from wildsep.engine.checkpoint import latest_checkpoint, list_checkpoints
from wildsep.engine.run import (
    augmented_batches,
    config_changes,
    initialise_from,
    positioned_batches,
    prepare_run_dir,
    run_recipe,
    seed_everything,
    staged_batches,
)
from wildsep.engine.schedule import LRSchedule, ScheduleConfig, ScheduleKind
from wildsep.engine.trainer import (
    Objective,
    OptimConfig,
    Precision,
    Stage,
    TrainConfig,
    Trainer,
    keyed_generator,
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
    "augmented_batches",
    "config_changes",
    "initialise_from",
    "keyed_generator",
    "latest_checkpoint",
    "list_checkpoints",
    "make_accelerator",
    "positioned_batches",
    "prepare_run_dir",
    "run_recipe",
    "seed_everything",
    "staged_batches",
]
