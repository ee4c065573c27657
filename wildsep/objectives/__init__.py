"""Training objectives built on `losses/`: what a recipe's stages optimise."""

from wildsep.objectives.mixit import MixITMethod, MixITObjective, MixITObjectiveConfig, SparsityKind
from wildsep.objectives.remixing import RemixingObjective, RemixingObjectiveConfig, ema_update
from wildsep.objectives.tuss import TUSSObjective, TUSSObjectiveConfig, drop_prompts, prompt_groups

__all__ = [
    "MixITMethod",
    "MixITObjective",
    "MixITObjectiveConfig",
    "RemixingObjective",
    "RemixingObjectiveConfig",
    "SparsityKind",
    "TUSSObjective",
    "TUSSObjectiveConfig",
    "drop_prompts",
    "ema_update",
    "prompt_groups",
]
