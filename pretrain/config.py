"""Typed config of the pre-training recipe (`pretrain/run.py`); YAML files in `configs/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wildsep.config import ConfigError
from wildsep.data import DataConfig
from wildsep.engine import TrainConfig
from wildsep.objectives import (
    MixITObjectiveConfig,
    RemixingObjectiveConfig,
    SemiSupConfig,
    SemiSupMixITConfig,
    StemsObjectiveConfig,
    SupervisedObjectiveConfig,
)


@dataclass
class ModelConfig:
    preset: str = "backbone-medium"
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the preset's config
    # Start from these weights: an exported model folder (config.json + model.safetensors) or
    # a run directory (its exported `model/`), e.g. Self-Remixing from a MixIT run.
    init: str | None = None


class ObjectiveKind(str, Enum):
    mixit = "mixit"  # mixtures of mixtures of the unlabeled corpus
    remixing = "remixing"  # single mixtures of the unlabeled corpus
    supervised = "supervised"  # dynamic mixtures of the labeled pools (GASS)
    semisup_mixit = "semisup_mixit"  # both: supervised and MoM batches (MixIT paper)
    # fixed stems, output s = stem s (Demucs): a folder of tracks (data.stems) or the pools
    stems = "stems"

    @property
    def reads_corpus(self) -> bool:
        return self not in (ObjectiveKind.supervised, ObjectiveKind.stems)

    @property
    def reads_pools(self) -> bool:
        return self in (ObjectiveKind.supervised, ObjectiveKind.semisup_mixit)


@dataclass
class StageConfig:
    name: str = "mixit"
    objective: ObjectiveKind = ObjectiveKind.mixit
    steps: int = 100_000
    mixit: MixITObjectiveConfig = field(default_factory=MixITObjectiveConfig)
    remixing: RemixingObjectiveConfig = field(default_factory=RemixingObjectiveConfig)
    supervised: SupervisedObjectiveConfig = field(default_factory=SupervisedObjectiveConfig)
    # semisup_mixit: how supervised batches (`supervised`) and MoM batches (`mixit`) combine
    semisup_mixit: SemiSupMixITConfig = field(default_factory=SemiSupMixITConfig)
    stems: StemsObjectiveConfig = field(default_factory=StemsObjectiveConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"stage {self.name!r}: steps must be >= 1, got {self.steps}")


@dataclass
class ValidationConfig:
    # Held-out mixtures of mixtures for the MixIT loss and MoMi: from `corpus` (a folder or
    # manifest of unlabeled audio) if set, else crops of the training corpus drawn with `seed`.
    corpus: str | None = None
    # Stages that read labeled pools also get held-out dynamic mixtures (the same number of
    # batches, drawn with `seed`) for the supervised loss: from `pools` (a folder of class
    # folders, or a manifest read with data.pools' settings) if set, else the training pools.
    pools: str | None = None
    # Stems stages get held-out batches of stems (the same number, drawn with `seed`) for the
    # per-stem loss, SNR, SI-SNR and BSS-eval SDR: from `stems` (a folder of tracks in the
    # data.stems layout, e.g. MUSDB18-HQ's test/) if set, else the training stems' source.
    stems: str | None = None
    mom_batches: int = 4
    seed: int = 1_000_003
    # A labeled validation set (JSON-lines manifest, see docs/data.md) for SI-SNRi (overall,
    # per number of sources and per class), the supervised loss and under/equal/over-separation;
    # examples cropped to `seconds` (None: whole files). Runs without an unlabeled corpus
    # (supervised stages only) validate on it alone.
    manifest: str | None = None
    # Single-source examples (same format) for the FUSS single-source SI-SNR (SS, overall and
    # per class) and the active outputs on one-source inputs; e.g. the demo corpus's
    # valid/single.jsonl.
    single_manifest: str | None = None
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


def reads_pools(config: PretrainConfig) -> bool:
    """Whether a stage reads the labeled pools: supervised and semi-supervised MixIT stages,
    and stems stages when no folder of tracks (data.stems.source) is given."""
    kinds = {stage.objective for stage in config.stages}
    stems_from_pools = ObjectiveKind.stems in kinds and not config.data.stems.source
    return stems_from_pools or any(kind.reads_pools for kind in kinds)


def check_model_fits_data(config: PretrainConfig, model) -> None:  # model: the preset config
    """The model separates the clips' channels (a stereo Demucs: data.clips.channels=stereo)
    and, in stems stages, has one output per stem in the stems' order."""
    channels = int(getattr(model, "audio_channels", 1))
    clips = config.data.clips
    if channels != clips.num_channels:
        raise ConfigError(
            f"the model takes {channels}-channel audio but data.clips.channels={clips.channels} "
            f"gives {clips.num_channels}: set data.clips.channels="
            f"{'stereo' if channels == 2 else 'mono'} or model.overrides.audio_channels="
            f"{clips.num_channels}"
        )
    if channels > 1 and (config.validation.manifest or config.validation.single_manifest):
        raise ConfigError(
            "validation.manifest / single_manifest are scored on mono mixtures but the model is "
            f"{channels}-channel: set them to null (stems and MoM validation work in stereo)"
        )
    for i, stage in enumerate(config.stages):
        if stage.objective != ObjectiveKind.stems:
            continue
        stems, where = list(stage.stems.stems), f"stages.{i} ({stage.name})"
        if model.n_outputs != len(stems):
            raise ConfigError(
                f"{where}: {len(stems)} stems {stems} but the model has {model.n_outputs} "
                f"outputs: set model.overrides.n_outputs={len(stems)}"
            )
        names = list(getattr(model, "sources", ()) or ())
        if names and names != stems:
            raise ConfigError(
                f"{where}: the model names its outputs {names} but the stage trains them as "
                f"{stems}: set model.overrides.sources to the stems in that order"
            )


def check_stages(config: PretrainConfig) -> None:
    """Refuse, at start, a curriculum whose later stages could not run (hours in otherwise):
    a remixing stage needs K ≤ M sources and, with the constrained shuffle, a per-process
    batch of at least K mixtures."""
    from wildsep.models import preset_config

    if not config.stages:
        raise ConfigError("stages is empty: the curriculum needs at least one stage")
    model = preset_config(config.model.preset, **config.model.overrides)
    outputs, batch = model.n_outputs, config.data.batch_size
    check_model_fits_data(config, model)
    check_data_sources(config, outputs)
    for i, stage in enumerate(config.stages):
        uses_mixit = stage.objective in (ObjectiveKind.mixit, ObjectiveKind.semisup_mixit)
        if uses_mixit and stage.mixit.semantic_weight > 0:
            check_classifier(config, i)
        if stage.objective != ObjectiveKind.remixing:
            continue
        remixing, where = stage.remixing, f"stages.{i} ({stage.name})"
        if remixing.num_sources > outputs or remixing.num_sources < 0:
            raise ConfigError(
                f"{where}: remixing.num_sources={remixing.num_sources} must be in [0, "
                f"{outputs}] (0 = all of the model's {outputs} outputs)"
            )
        sources = remixing.num_sources or outputs
        if remixing.constrained and batch < sources:
            raise ConfigError(
                f"{where}: the constrained shuffle draws each pseudo-mixture's {sources} sources "
                f"from {sources} different mixtures, but data.batch_size={batch}: set "
                f"data.batch_size>={sources}, stages.{i}.remixing.num_sources<={batch}, or "
                f"stages.{i}.remixing.constrained=false"
            )


def check_data_sources(config: PretrainConfig, outputs: int) -> None:
    """Stages that read labeled pools have them, with no more sources per mixture than the
    model has outputs; stages that read the unlabeled corpus have it."""
    kinds = {stage.objective for stage in config.stages}
    names = ", ".join(sorted(k.value for k in kinds))
    if reads_pools(config):
        if not config.data.pools.source:
            raise ConfigError(
                f"stages ({names}) read labeled pools: set data.pools.source (class folders, "
                "or a manifest with data.pools.class_column; stems stages may read a folder of "
                "tracks, data.stems.source, instead), see docs/data.md"
            )
    if any(k.reads_pools for k in kinds):
        most = max(config.data.dynamic_mixing.num_sources)
        if most > outputs:
            raise ConfigError(
                f"data.dynamic_mixing.num_sources draws up to {most} sources but the model has "
                f"{outputs} outputs: lower num_sources or raise model.overrides.n_outputs"
            )
    if any(k.reads_corpus for k in kinds) and not config.data.corpus.source:
        raise ConfigError(
            f"stages ({names}) read the unlabeled corpus: set data.corpus.source (a folder or "
            "a manifest with a `path` column)"
        )


def check_classifier(config: PretrainConfig, index: int) -> None:
    """The semantic classifier of stage `index` exists and runs at the clips' rate and length."""
    from wildsep.models import PresenceClassifier
    from wildsep.models.pretrained import read_config, resolve_model_dir

    stage = config.stages[index]
    path = stage.mixit.semantic_classifier
    kind, model = read_config(resolve_model_dir(path))
    where = f"stages.{index} ({stage.name}): mixit.semantic_classifier={path}"
    if kind is not PresenceClassifier:
        raise ConfigError(f"{where} is a {kind.__name__}, not a PresenceClassifier")
    clips = config.data.clips
    if model.sample_rate != clips.sample_rate:
        raise ConfigError(
            f"{where} runs at {model.sample_rate} Hz but data.clips.sample_rate="
            f"{clips.sample_rate}: train the classifier at the pre-training rate"
        )
    if clips.num_frames < model.window:
        raise ConfigError(
            f"{where} needs clips of at least {model.window_seconds} s (one window); "
            f"data.clips.duration={clips.duration}"
        )
