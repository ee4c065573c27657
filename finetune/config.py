"""Typed config of the TUSS fine-tuning recipe (`finetune/tuss.py`); YAML files in `configs/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wildsep.data import DataConfig
from wildsep.engine import TrainConfig
from wildsep.objectives import SemiSupConfig, TUSSObjectiveConfig


@dataclass
class TUSSModelConfig:
    preset: str = "tuss-medium"  # used when training from scratch
    overrides: dict[str, Any] = field(default_factory=dict)
    # Initialise from a pre-trained backbone (a pre-training run directory or an exported
    # model folder) or continue from a TUSS; `--init` on the command line sets this.
    init: str | None = None
    # The prompt names; None = the preset's (the eight of the TUSS paper). Names missing from
    # an initialising TUSS are added as fresh prompts.
    prompts: list[str] | None = None
    # How the backbone's M-output mask head becomes TUSS's single-output head: "mean" of the
    # M heads, or the index of one of them.
    decoder_init: str = "mean"


@dataclass
class ValidationConfig:
    manifest: str | None = None  # labeled validation set (JSON lines, docs/data.md)
    max_examples: int = 32
    seconds: float | None = 6.0  # crop examples to this length (None: whole files)
    audio_examples: int = 2


@dataclass
class FinetuneConfig:
    run_dir: str = "runs/tuss"
    model: TUSSModelConfig = field(default_factory=TUSSModelConfig)
    data: DataConfig = field(default_factory=DataConfig)  # data.pools: labeled source pools
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: TUSSObjectiveConfig = field(default_factory=TUSSObjectiveConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Demucs-style remixes of mined segments (pretrain/mine.py) with prompts [class, background],
    # interleaved with the dynamic mixtures; off unless semisup.manifest is set.
    semisup: SemiSupConfig = field(default_factory=SemiSupConfig)
