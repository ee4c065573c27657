"""Training objectives built on `losses/`: what a recipe's stages optimise."""

from wildsep.objectives.mixit import MixITMethod, MixITObjective, MixITObjectiveConfig, SparsityKind
from wildsep.objectives.remixing import RemixingObjective, RemixingObjectiveConfig, ema_update
from wildsep.objectives.semisup import (
    Assignment,
    PresenceObjective,
    PresenceObjectiveConfig,
    RemixObjective,
    SemiSupConfig,
    SemiSupervisedObjective,
    interleave_batches,
    weak_remix_loss,
    with_remix_batches,
)
from wildsep.objectives.stems import (
    MUSIC_STEMS,
    StemLoss,
    StemsObjective,
    StemsObjectiveConfig,
    stem_losses,
)
from wildsep.objectives.tuss import TUSSObjective, TUSSObjectiveConfig, drop_prompts, prompt_groups

__all__ = [
    "MUSIC_STEMS",
    "Assignment",
    "MixITMethod",
    "MixITObjective",
    "MixITObjectiveConfig",
    "PresenceObjective",
    "PresenceObjectiveConfig",
    "RemixObjective",
    "RemixingObjective",
    "RemixingObjectiveConfig",
    "SemiSupConfig",
    "SemiSupervisedObjective",
    "SparsityKind",
    "StemLoss",
    "StemsObjective",
    "StemsObjectiveConfig",
    "TUSSObjective",
    "TUSSObjectiveConfig",
    "drop_prompts",
    "ema_update",
    "interleave_batches",
    "prompt_groups",
    "stem_losses",
    "weak_remix_loss",
    "with_remix_batches",
]
