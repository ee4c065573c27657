"""Training objectives built on `losses/`: what a recipe's stages optimise."""

from wildsep.objectives.mixit import MixITConfig, MixITMethod, MixITObjective, SparsityKind
from wildsep.objectives.remixing import RemixingConfig, RemixingObjective, ema_update

__all__ = [
    "MixITConfig",
    "MixITMethod",
    "MixITObjective",
    "RemixingConfig",
    "RemixingObjective",
    "SparsityKind",
    "ema_update",
]
