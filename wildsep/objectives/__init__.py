"""Training objectives built on `losses/`: what a recipe's stages optimise."""

from wildsep.objectives.mixit import MixITMethod, MixITObjective, MixITObjectiveConfig, SparsityKind
from wildsep.objectives.remixing import RemixingObjective, RemixingObjectiveConfig, ema_update

__all__ = [
    "MixITMethod",
    "MixITObjective",
    "MixITObjectiveConfig",
    "RemixingObjective",
    "RemixingObjectiveConfig",
    "SparsityKind",
    "ema_update",
]
