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
from wildsep.objectives.supervised import (
    SemiSupervisedMixIT,
    SemiSupMixITConfig,
    SemiSupMode,
    SupervisedObjective,
    SupervisedObjectiveConfig,
    semisup_mixit_batches,
    supervised_pit,
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
    "SemiSupMixITConfig",
    "SemiSupMode",
    "SemiSupervisedMixIT",
    "SemiSupervisedObjective",
    "SparsityKind",
    "StemLoss",
    "StemsObjective",
    "StemsObjectiveConfig",
    "SupervisedObjective",
    "SupervisedObjectiveConfig",
    "TUSSObjective",
    "TUSSObjectiveConfig",
    "drop_prompts",
    "ema_update",
    "interleave_batches",
    "prompt_groups",
    "semisup_mixit_batches",
    "stem_losses",
    "supervised_pit",
    "weak_remix_loss",
    "with_remix_batches",
]
