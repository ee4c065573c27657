"""Typed config of the pre-training recipe (`pretrain/run.py`); YAML files in `configs/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wildsep.data import DataConfig
from wildsep.engine import TrainConfig
from wildsep.objectives import MixITObjectiveConfig, RemixingObjectiveConfig, SemiSupConfig


@dataclass
class ModelConfig:
    preset: str = "backbone-medium"
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the preset's config
    # Start from these weights: an exported model folder (config.json + model.safetensors) or
    # a run directory (its exported `model/`), e.g. Self-Remixing from a MixIT run.
    init: str | None = None


class ObjectiveKind(str, Enum):
    mixit = "mixit"
    remixing = "remixing"


@dataclass
class StageConfig:
    name: str = "mixit"
    objective: ObjectiveKind = ObjectiveKind.mixit
    steps: int = 100_000
    mixit: MixITObjectiveConfig = field(default_factory=MixITObjectiveConfig)
    remixing: RemixingObjectiveConfig = field(default_factory=RemixingObjectiveConfig)


@dataclass
class ValidationConfig:
    # Held-out mixtures of mixtures for the MixIT loss and MoMi: from `corpus` (a folder or
    # manifest of unlabeled audio) if set, else crops of the training corpus drawn with `seed`.
    corpus: str | None = None
    mom_batches: int = 4
    seed: int = 1_000_003
    # A labeled validation set (JSON-lines manifest, see docs/data.md) for SI-SNRi and
    # under/equal/over-separation; examples cropped to `seconds` (None: whole files).
    manifest: str | None = None
    max_examples: int = 32
    seconds: float | None = 6.0
    audio_examples: int = 2


@dataclass
class PretrainConfig:
    run_dir: str = "runs/pretrain"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # Demucs-style remixes of mined segments (pretrain/mine.py), interleaved with the MoM
    # batches; off unless semisup.manifest is set. docs/pretraining.md, last section.
    semisup: SemiSupConfig = field(default_factory=SemiSupConfig)
